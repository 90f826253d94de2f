"""Pairing code text, and pairing that checks the CAS pin before the token leaves the kiosk."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.errors import NotPaired, PairingCodeError, PairingFailed
from atm.cas.pairing import PairingOffer, encode_pairing_code, pair, parse_pairing_code
from atm.cas.signing import generate_operator_key, public_key_text
from atm.cas.state import load_pairing
from simulators.cas.harness import SimulatedOperator

OP_KEY = public_key_text(generate_operator_key())
OFFER = PairingOffer(cas_url="https://127.0.0.1:8443", cas_pin="0f" * 32, token="t" * 32, operator_key=OP_KEY,
                     kiosk_id="kiosk-7")


def test_pairing_code_round_trips_through_its_text():
    text = encode_pairing_code(OFFER)
    assert text.startswith("atmpair:1:")
    assert parse_pairing_code(text) == OFFER


@pytest.mark.parametrize("text, words", [
    ("bitcoin:bc1q", "must start with 'atmpair:'"),
    ("atmpair:9:abc", "format '9' unknown"),
    ("atmpair:1:!!!", "base64url"),
    ("atmpair:1:" + "QQ", "not valid JSON"),
])
def test_pairing_code_refusals_say_what_is_wrong(text, words):
    with pytest.raises(PairingCodeError, match=words):
        parse_pairing_code(text)


def test_pairing_code_with_plain_http_url_is_refused():
    with pytest.raises(PairingCodeError, match="https"):
        encode_pairing_code(PairingOffer(**{**OFFER.__dict__, "cas_url": "http://127.0.0.1:80"}))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300) | st.text(max_size=300).map(lambda t: "atmpair:1:" + t) |
       st.dictionaries(st.sampled_from(["url", "pin", "token", "op", "kiosk"]),
                       st.none() | st.integers() | st.text(max_size=70)).map(
           lambda d: "atmpair:1:" + __import__("base64").urlsafe_b64encode(json.dumps(d).encode()).decode()))
def test_pairing_code_parser_garbage_raises_only_pairing_code_error(text):
    try:
        offer = parse_pairing_code(text)
    except PairingCodeError:
        return
    assert offer.cas_url.startswith("https://")


async def test_pairing_stores_both_trust_anchors_and_a_private_kiosk_key(tmp_path):
    async with SimulatedOperator(tmp_path) as op:
        record = load_pairing(op.state_dir)
        assert record.cas_pins == (op.cas.pin,)
        assert record.operator_key == public_key_text(op.operator_key)
        assert stat.S_IMODE((op.state_dir / "kiosk.key").stat().st_mode) == 0o600
        assert op.cas.kiosks["kiosk-1"].cert_pin == record.kiosk_cert_pin


async def test_pairing_token_is_one_time(tmp_path):
    async with SimulatedOperator(tmp_path) as op:
        with pytest.raises(PairingFailed, match="403"):
            await pair(op.pairing_code, tmp_path / "second-kiosk")


async def test_server_with_another_key_never_receives_the_token(tmp_path):
    async with SimulatedOperator(tmp_path, pair_kiosk=False) as op:
        op.cas.set_hostile("other-certificate")
        with pytest.raises(PairingFailed, match="token was not sent"):
            await pair(op.pairing_code, op.state_dir)
        assert op.cas.request_log == []
        with pytest.raises(NotPaired):
            load_pairing(op.state_dir)
        # The real CAS, once reachable again, still accepts the unused token.
        op.cas.clear_hostile()
        await pair(op.pairing_code, op.state_dir)
        assert [entry["path"] for entry in op.cas.request_log] == ["/v1/pair"]


class TlsInterceptor:
    """A man in the middle with a valid certificate of its own: it terminates TLS
    towards the kiosk and would forward every decrypted byte to the real CAS."""

    def __init__(self, cert_path, key_path, upstream_port: int) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert_path, key_path)
        self.upstream_port = upstream_port
        self.decrypted = bytearray()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            await writer.start_tls(self.ctx)
        except (OSError, ssl.SSLError):
            # The kiosk dropped the handshake as soon as it saw this certificate.
            writer.close()
            return
        upstream_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        upstream_ctx.check_hostname = False
        upstream_ctx.verify_mode = ssl.CERT_NONE
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port, ssl=upstream_ctx)
        except OSError:
            writer.close()
            return

        async def pump(src, dst, record):
            try:
                while data := await src.read(65536):
                    if record:
                        self.decrypted.extend(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_man_in_the_middle_with_a_valid_certificate_gets_no_token(tmp_path):
    async with SimulatedOperator(tmp_path, pair_kiosk=False) as op:
        interceptor = TlsInterceptor(op.cas.workdir / "other.crt", op.cas.workdir / "other.key", op.cas.port)
        port = await interceptor.start()
        try:
            code = parse_pairing_code(op.pairing_code)
            diverted = encode_pairing_code(PairingOffer(**{**code.__dict__, "cas_url": f"https://127.0.0.1:{port}"}))
            with pytest.raises(PairingFailed, match="token was not sent"):
                await pair(diverted, op.state_dir)
        finally:
            await interceptor.stop()
        assert interceptor.connections >= 1
        assert bytes(interceptor.decrypted) == b""
        assert op.cas.request_log == []
        assert code.token.encode() not in bytes(interceptor.decrypted)


def test_payload_from_the_scanner_parser_without_prefix_is_accepted():
    from atm.payloads import parse_payload
    scanned = parse_payload(encode_pairing_code(OFFER), network="regtest")
    assert parse_pairing_code(scanned.payload) == OFFER
