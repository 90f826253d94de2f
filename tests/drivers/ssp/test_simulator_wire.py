"""The SSP simulator seen from raw bytes on a TCP socket, without the driver: it must behave
like the device (sequence-bit repeats, generic replies, eSSP refusals) for any host."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import given, strategies as st

from drivers.ssp import crypto
from drivers.ssp.frames import (
    Command,
    Event,
    ENCRYPTED_PACKET,
    FrameDecoder,
    MessageError,
    decode_frame,
    Reply,
    encode_frame,
    parse_inhibits,
    parse_poll_events,
    parse_serial_number,
    parse_setup_reply,
)
from simulators.ssp import SspSimulator


class RawHost:
    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=2)
        self.decoder = FrameDecoder()

    def send(self, seq: int, data: bytes) -> bytes:
        self.sock.sendall(encode_frame(seq, 0, data))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            frames = self.decoder.feed(self.sock.recv(512))
            if frames:
                assert frames[0].seq == seq
                return frames[0].data
        raise AssertionError("simulator did not answer")

    def send_wire(self, raw: bytes) -> bytes:
        """Send a whole frame exactly as given (a manual's example) and return the reply data."""
        seq = decode_frame(raw).seq
        self.sock.sendall(raw)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            frames = self.decoder.feed(self.sock.recv(512))
            if frames:
                assert frames[0].seq == seq
                return frames[0].data
        raise AssertionError("simulator did not answer")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def host():
    sim = SspSimulator(currency="GBP", channels=(500, 1000, 2000), serial_number=0x01020304)
    url = sim.start("tcp")
    raw = RawHost(url)
    yield sim, raw
    raw.close()
    sim.stop()


def test_repeated_sequence_bit_gets_the_last_reply_without_executing_again(host) -> None:
    sim, raw = host
    assert raw.send(1, bytes([Command.SYNC])) == bytes([Reply.OK])
    assert raw.send(0, bytes([Command.ENABLE])) == bytes([Reply.OK])
    assert raw.send(1, bytes([Command.DISABLE])) == bytes([Reply.OK])
    assert sim.state()["enabled"] is False
    # Same bit again with a different command: the unit takes it for a resend of DISABLE.
    assert raw.send(1, bytes([Command.ENABLE])) == bytes([Reply.OK])
    assert sim.state()["enabled"] is False
    assert [c["repeat"] for c in sim.state()["rx_log"]] == [False, False, False, True]


def test_sync_resets_the_sequence_so_any_bit_executes(host) -> None:
    sim, raw = host
    raw.send(1, bytes([Command.SYNC]))
    raw.send(0, bytes([Command.ENABLE]))
    raw.send(1, bytes([Command.SYNC]))
    raw.send(0, bytes([Command.DISABLE]))
    assert sim.state()["enabled"] is False


def test_identity_answers_carry_the_configured_unit(host) -> None:
    _, raw = host
    raw.send(1, bytes([Command.SYNC]))
    raw.send(0, bytes([Command.HOST_PROTOCOL_VERSION, 6]))
    setup = raw.send(1, bytes([Command.SETUP_REQUEST]))
    info = parse_setup_reply(setup[1:])
    assert info.currency == "GBP" and info.channel_values == (500, 1000, 2000) and info.protocol_version == 6
    serial = raw.send(0, bytes([Command.SERIAL_NUMBER]))
    assert parse_serial_number(serial[1:]) == 0x01020304


@pytest.mark.parametrize("data, reply", [
    (bytes([0x99]), Reply.UNKNOWN_COMMAND),
    (bytes([Command.HOST_PROTOCOL_VERSION]), Reply.WRONG_PARAMETERS),
    (bytes([Command.HOST_PROTOCOL_VERSION, 9]), Reply.FAIL),
    (bytes([Command.SET_INHIBITS, 1]), Reply.WRONG_PARAMETERS),
    (bytes([Command.HOLD]), Reply.FAIL),                      # GA138 "Hold": FAIL if no note in escrow
    (bytes([Command.REJECT]), Reply.CANNOT_PROCESS),
    (bytes([Command.SET_MODULUS]) + crypto.u64(100), Reply.PARAMETER_OUT_OF_RANGE),
    # GA138 "Request Key Exchange": FAIL when generator and modulus are not set.
    (bytes([Command.REQUEST_KEY_EXCHANGE]) + crypto.u64(5), Reply.FAIL),
    (bytes([0x7E]) + bytes(16), Reply.KEY_NOT_SET),
])
def test_generic_refusals(host, data: bytes, reply: int) -> None:
    _, raw = host
    raw.send(1, bytes([Command.SYNC]))
    assert raw.send(0, data) == bytes([reply])


def test_disabled_idle_unit_says_disabled_on_poll(host) -> None:
    _, raw = host
    raw.send(1, bytes([Command.SYNC]))
    reply = raw.send(0, bytes([Command.POLL]))
    assert reply[0] == Reply.OK
    assert [e.code for e in parse_poll_events(reply[1:])] == [Event.DISABLED]


@given(st.binary(min_size=2, max_size=8))
def test_inhibit_parser_round_trips_any_mask(mask: bytes) -> None:
    channels = parse_inhibits(mask)
    assert all(1 <= ch <= len(mask) * 8 for ch in channels)
    assert sum(1 << (ch - 1) for ch in channels) == int.from_bytes(mask, "little")


@given(st.binary(max_size=8))
def test_serial_parser_raises_only_message_errors(payload: bytes) -> None:
    try:
        number = parse_serial_number(payload)
    except MessageError:
        assert len(payload) != 4
    else:
        assert number.to_bytes(4, "big") == payload


def test_bezel_refuses_a_second_note_while_one_is_on_its_way(host) -> None:
    sim, _ = host
    assert sim.insert_note(500) is True
    assert sim.insert_note(1000) is False
    assert sim.state()["note_channel"] == 1


def test_jammed_unit_takes_no_note(host) -> None:
    sim, _ = host
    sim.jam("acceptor")
    assert sim.insert_counterfeit() is False
    sim.clear_jam()
    assert sim.insert_counterfeit() is True


@pytest.mark.parametrize("call", [lambda s: s.jam("middle"), lambda s: s.power_cycle("bezel"),
                                  lambda s: s.fault_next_reply("explode"), lambda s: s.stick("holding"),
                                  lambda s: s.fault_next_reply("drop", carrying="NOPE"),
                                  lambda s: s.stall_stacking("cashbox")])
def test_controls_refuse_unknown_choices_with_the_allowed_ones(host, call) -> None:
    sim, _ = host
    with pytest.raises(ValueError, match="must be"):
        call(sim)


# ------------------------------------------------------------------ eSSP as GA138 / GA973 describe it


def test_unit_accepts_the_manuals_own_key_exchange_frames_with_the_generator_larger(host) -> None:
    """GA138 pp. 126-128 send generator 982451653 and modulus 1287821 (generator larger, as
    ITL's hosts do), each frame with sequence bit 1; polls in between move the bit on."""
    sim, raw = host
    raw.send(1, bytes([Command.SYNC]))
    raw.send(0, bytes([Command.POLL]))
    assert raw.send_wire(bytes.fromhex("7F80094AC5058F3A00000000B273")) == bytes([Reply.OK])
    raw.send(0, bytes([Command.POLL]))
    assert raw.send_wire(bytes.fromhex("7F80094B8DA61300000000006CF6")) == bytes([Reply.OK])
    raw.send(0, bytes([Command.POLL]))
    reply = raw.send_wire(bytes.fromhex("7F80094C79C89CE2DE0600009D52"))
    assert reply[0] == Reply.OK and len(reply) == 9
    assert 1 < int.from_bytes(reply[1:], "little") < 1287821
    assert sim.state()["encrypted"]


def _key_exchange(raw, generator: int, modulus: int, secret: int) -> crypto.EsspSession:
    raw.send(1, bytes([Command.SYNC]))
    assert raw.send(0, bytes([Command.SET_GENERATOR]) + crypto.u64(generator)) == bytes([Reply.OK])
    assert raw.send(1, bytes([Command.SET_MODULUS]) + crypto.u64(modulus)) == bytes([Reply.OK])
    host = crypto.KeyExchange(generator, modulus, secret)
    reply = raw.send(0, bytes([Command.REQUEST_KEY_EXCHANGE]) + crypto.u64(host.intermediate))
    assert reply[0] == Reply.OK
    negotiated = host.shared_key(crypto.read_u64(reply[1:], "slave intermediate key"))
    return crypto.EsspSession(crypto.aes_key(negotiated))


@pytest.mark.parametrize("generator, modulus", [(0x7B059425, 0x068BFB6B), (0x068BFB6B, 0x7B059425)],
                         ids=["ga973-generator-larger", "generator-smaller"])
def test_unit_negotiates_a_working_key_with_generator_and_modulus_in_either_order(host, generator: int,
                                                                                  modulus: int) -> None:
    """GA973's walk-through numbers (and the same two swapped): the key the host computes
    opens the unit's encrypted answer."""
    _, raw = host
    session = _key_exchange(raw, generator, modulus, secret=0x53)
    packet, counter = session.seal_command(bytes([Command.SERIAL_NUMBER]))
    reply = raw.send(1, packet)
    assert reply[0] == ENCRYPTED_PACKET
    assert session.open_reply(reply, counter) == bytes([Reply.OK]) + (0x01020304).to_bytes(4, "big")


def test_enforced_unit_answers_key_not_set_to_every_plain_command_until_the_key_exists(host) -> None:
    sim, raw = host
    sim.encryption_enforced = True
    assert raw.send(1, bytes([Command.SYNC])) == bytes([Reply.OK])
    seq = 0
    for command in (Command.HOST_PROTOCOL_VERSION, Command.SETUP_REQUEST, Command.POLL, Command.ENABLE):
        data = bytes([command, 6]) if command == Command.HOST_PROTOCOL_VERSION else bytes([command])
        assert raw.send(seq, data) == bytes([Reply.KEY_NOT_SET])
        seq ^= 1
    assert not sim.state()["enabled"]                       # refused without being executed
    session = _key_exchange(raw, 0x7B059425, 0x068BFB6B, secret=0x1234)
    packet, counter = session.seal_command(bytes([Command.ENABLE]))
    assert session.open_reply(raw.send(1, packet), counter) == bytes([Reply.OK])
    assert sim.state()["enabled"]


def test_key_exchange_that_cannot_make_a_key_fails(host) -> None:
    """GA973: "If it was not possible to create the key, the device will respond with Fail"."""
    _, raw = host
    raw.send(1, bytes([Command.SYNC]))
    raw.send(0, bytes([Command.SET_GENERATOR]) + crypto.u64(982451653))
    raw.send(1, bytes([Command.SET_MODULUS]) + crypto.u64(1287821))
    assert raw.send(0, bytes([Command.REQUEST_KEY_EXCHANGE]) + crypto.u64(1287821 * 3)) == bytes([Reply.FAIL])


def test_command_encrypted_with_the_wrong_key_is_answered_key_not_set(host) -> None:
    """GA973: "If the wrong key is used to encrypt a command, the device will respond with
    Key Not Set"."""
    _, raw = host
    _key_exchange(raw, 0x7B059425, 0x068BFB6B, secret=0x99)
    wrong = crypto.EsspSession(crypto.aes_key(12345))
    packet, _ = wrong.seal_command(bytes([Command.POLL]))
    assert raw.send(1, packet) == bytes([Reply.KEY_NOT_SET])


def test_open_note_path_is_0xe0_in_every_poll_until_closed(host) -> None:
    sim, raw = host
    raw.send(1, bytes([Command.SYNC]))
    sim.open_note_path()
    for seq in (0, 1, 0):
        reply = raw.send(seq, bytes([Command.POLL]))
        assert [e.code for e in parse_poll_events(reply[1:])][0] == Event.NOTE_PATH_OPEN
    sim.close_note_path()
    reply = raw.send(1, bytes([Command.POLL]))
    assert Event.NOTE_PATH_OPEN not in [e.code for e in parse_poll_events(reply[1:])]
