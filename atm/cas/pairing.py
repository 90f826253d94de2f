"""Pairing: the text of the operator's pairing code, and the kiosk's one-time pairing
step that installs the two trust anchors (CAS SPKI pin, operator Ed25519 key).

Code text: "atmpair:1:" + base64url(canonical JSON {"url","pin","token","op","kiosk"}).
The kiosk makes its own key pair and certificate, connects with the pin checked in
the TLS handshake, and only then sends the one-time token with its certificate.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atm.cas.errors import PairingCodeError, PairingFailed, PinMismatch
from atm.cas.interface import CasError
from atm.cas.signing import DocumentError, b64url, canonical, key_id, parse_public_key, strict_json, unb64url
from atm.cas.state import CERT_FILE, KEY_FILE, PairingRecord, save_pairing
from atm.cas.tls import write_key_and_certificate
from atm.cas.transport import CasTransport
from atm.cas.wire import PROTOCOL_VERSION, parse_pair_answer

PAIRING_PREFIX = "atmpair:"
CODE_VERSION = "1"
MAX_CODE_CHARS = 2048
_KIOSK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PIN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PairingOffer:
    """What the operator's tool puts in a pairing code."""

    cas_url: str
    cas_pin: str
    token: str
    operator_key: str
    kiosk_id: str


@dataclass(frozen=True)
class PairingResult:
    kiosk_id: str
    cas_url: str
    cas_pin: str
    operator_key_id: str
    state_dir: Path


def check_kiosk_id(kiosk_id: Any) -> str:
    if not isinstance(kiosk_id, str) or not _KIOSK_ID.match(kiosk_id):
        raise PairingCodeError(f"kiosk id {kiosk_id!r}: expected 1-64 letters, digits, '.', '_' or '-'")
    return kiosk_id


def check_cas_url(url: Any) -> str:
    if not isinstance(url, str):
        raise PairingCodeError("CAS URL: expected text like https://cas.example:8443")
    try:
        parts = urlsplit(url)
        parts.port  # reading it raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise PairingCodeError(f"CAS URL {url[:100]!r}: {exc}") from None
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise PairingCodeError(f"CAS URL {url[:100]!r}: expected https://HOST[:PORT] with nothing after it")
    return url.rstrip("/")


def encode_pairing_code(offer: PairingOffer) -> str:
    check_kiosk_id(offer.kiosk_id)
    check_cas_url(offer.cas_url)
    if not _PIN.match(offer.cas_pin):
        raise PairingCodeError(f"CAS pin {offer.cas_pin!r}: expected 64 lower-case hex digits (SHA-256 of the SPKI)")
    body = {"url": offer.cas_url, "pin": offer.cas_pin, "token": offer.token, "op": offer.operator_key,
            "kiosk": offer.kiosk_id}
    return f"{PAIRING_PREFIX}{CODE_VERSION}:{b64url(canonical(body))}"


def parse_pairing_code(text: Any) -> PairingOffer:
    """The offer in a pairing code's text (with or without the "atmpair:" prefix), or
    PairingCodeError saying what is wrong."""
    if not isinstance(text, str):
        raise PairingCodeError(f"pairing code: expected text, got {type(text).__name__}")
    text = text.strip()
    if len(text) > MAX_CODE_CHARS:
        raise PairingCodeError(f"pairing code: {len(text)} characters, more than {MAX_CODE_CHARS}")
    if not text.lower().startswith(PAIRING_PREFIX) and re.match(r"^[0-9]{1,3}:", text):
        # The kiosk's scanner parser hands over the text after "atmpair:" (PairingCode.payload).
        text = PAIRING_PREFIX + text
    if not text.lower().startswith(PAIRING_PREFIX):
        raise PairingCodeError(f"pairing code: must start with {PAIRING_PREFIX!r} (is this the operator's pairing code?)")
    version, sep, encoded = text[len(PAIRING_PREFIX):].partition(":")
    if not sep or version != CODE_VERSION:
        raise PairingCodeError(f"pairing code: format {version[:10]!r} unknown; this kiosk reads format {CODE_VERSION}")
    try:
        body = strict_json(unb64url(encoded, "pairing code"), "pairing code")
    except DocumentError as exc:
        raise PairingCodeError(str(exc)) from None
    if not isinstance(body, dict) or set(body) != {"url", "pin", "token", "op", "kiosk"}:
        raise PairingCodeError("pairing code: expected exactly the fields url, pin, token, op, kiosk")
    pin, token = body["pin"], body["token"]
    if not isinstance(pin, str) or not _PIN.match(pin):
        raise PairingCodeError("pairing code: 'pin' must be 64 lower-case hex digits (SHA-256 of the CAS SPKI)")
    if not isinstance(token, str) or not 16 <= len(token) <= 128 or not token.isascii() or not token.isprintable():
        raise PairingCodeError("pairing code: 'token' must be 16-128 printable ASCII characters")
    try:
        parse_public_key(body["op"], "pairing code 'op'")
    except DocumentError as exc:
        raise PairingCodeError(str(exc)) from None
    return PairingOffer(cas_url=check_cas_url(body["url"]), cas_pin=pin, token=token,
                        operator_key=body["op"], kiosk_id=check_kiosk_id(body["kiosk"]))


async def pair(code_text: str, state_dir: Path, *, timeout_s: float = 15.0) -> PairingResult:
    """Pair this kiosk from the operator's pairing code; store both trust anchors in state_dir.

    Order matters: the pin is checked inside the TLS handshake, so a server that is not
    the pinned CAS never receives the token (PairingFailed says so)."""
    offer = parse_pairing_code(code_text)
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = state_dir / KEY_FILE, state_dir / CERT_FILE
    # New key and certificate go to side files until the CAS has registered them, so a
    # failed attempt (wrong server, used token) leaves an existing pairing working.
    new_key, new_cert = state_dir / (KEY_FILE + ".new"), state_dir / (CERT_FILE + ".new")
    cert_pin = write_key_and_certificate(new_key, new_cert, f"atm-kiosk {offer.kiosk_id}")
    # No client certificate on this one request: the CAS does not know it yet; the
    # one-time token is what authenticates the kiosk, the pin the server.
    transport = CasTransport(offer.cas_url, [offer.cas_pin], kiosk_id=offer.kiosk_id, timeout_s=timeout_s)
    registered = False
    try:
        answer = await transport.request("POST", "/v1/pair", {
            "protocol": PROTOCOL_VERSION, "kiosk_id": offer.kiosk_id, "token": offer.token,
            "certificate": new_cert.read_text("ascii")})
        parse_pair_answer(answer, offer.kiosk_id)
        registered = True
    except PinMismatch as exc:
        raise PairingFailed(f"pairing refused: {exc}. The token was not sent. Check the network: something "
                            f"other than the operator's CAS answered at {offer.cas_url}") from None
    except CasError as exc:
        raise PairingFailed(f"pairing with {offer.cas_url} failed: {exc}") from None
    finally:
        await transport.close()
        if not registered:
            new_key.unlink(missing_ok=True)
            new_cert.unlink(missing_ok=True)
    new_key.replace(key_path)
    new_cert.replace(cert_path)
    record = PairingRecord(kiosk_id=offer.kiosk_id, cas_url=offer.cas_url, cas_pins=(offer.cas_pin,),
                           operator_key=offer.operator_key, paired_at=int(time.time()), kiosk_cert_pin=cert_pin)
    save_pairing(state_dir, record)
    return PairingResult(kiosk_id=offer.kiosk_id, cas_url=offer.cas_url, cas_pin=offer.cas_pin,
                         operator_key_id=key_id(parse_public_key(offer.operator_key)), state_dir=state_dir)


def pair_blocking(code_text: str, state_dir: Path) -> PairingResult:
    """pair() for callers without an event loop (command line tools)."""
    return asyncio.run(pair(code_text, state_dir))
