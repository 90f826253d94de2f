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
    FrameDecoder,
    MessageError,
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
                                  lambda s: s.fault_next_reply("drop", carrying="NOPE")])
def test_controls_refuse_unknown_choices_with_the_allowed_ones(host, call) -> None:
    sim, _ = host
    with pytest.raises(ValueError, match="must be"):
        call(sim)
