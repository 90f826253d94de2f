"""SSP codec: CRC, stuffing, frames, the streaming decoder, poll and setup parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from drivers.ssp.frames import (
    Command,
    CommandRefused,
    CrcError,
    Event,
    Frame,
    FrameDecoder,
    FrameError,
    MessageError,
    PollEvent,
    Reply,
    SetupInfo,
    SspError,
    PollReplyWarning,
    UnknownEventError,
    crc16,
    crc_bytes,
    decode_frame,
    decode_poll_reply,
    encode_frame,
    encode_inhibits,
    encode_poll_events,
    encode_setup_reply,
    parse_inhibits,
    parse_poll_events,
    parse_serial_number,
    parse_setup_reply,
    split_reply,
)
from hal.errors import ProtocolError

VECTORS_PATH = Path(__file__).resolve().parents[2] / "vectors" / "vectors.json"
SSP = json.loads(VECTORS_PATH.read_text())["ssp"]


# ------------------------------------------------------------------ vectors


@pytest.mark.parametrize("data, expected", sorted(SSP["crc_checks"].items()))
def test_crc_matches_every_vector(data: str, expected: str) -> None:
    assert crc_bytes(bytes.fromhex(data)) == bytes.fromhex(expected)


@pytest.mark.parametrize("name, wire", sorted(SSP["frames"].items()))
def test_every_vector_frame_decodes_and_encodes_back_byte_for_byte(name: str, wire: str) -> None:
    raw = bytes.fromhex(wire)
    frame = decode_frame(raw)
    assert frame.encode() == raw
    assert frame.seq == (1 if "seq 1" in name else 0)
    assert frame.address == 0


@pytest.mark.parametrize("name, wire", sorted(SSP["frames"].items()))
def test_every_vector_frame_survives_the_streaming_decoder_byte_by_byte(name: str, wire: str) -> None:
    raw = bytes.fromhex(wire)
    decoder = FrameDecoder()
    frames = [f for byte in raw for f in decoder.feed(bytes([byte]))]
    assert frames == [decode_frame(raw)]
    assert decoder.errors == []


def test_vector_commands_carry_the_expected_codes() -> None:
    frames = {name: decode_frame(bytes.fromhex(w)) for name, w in SSP["frames"].items()}
    assert frames["sync (seq 1)"].data == bytes([Command.SYNC])
    assert frames["poll (seq 0)"].data == bytes([Command.POLL])
    assert frames["enable (seq 1)"].data == bytes([Command.ENABLE])
    assert frames["host protocol version 6 (seq 0)"].data == bytes([Command.HOST_PROTOCOL_VERSION, 6])
    assert frames["set inhibits ff ff (seq 1)"].data == encode_inhibits(set(range(1, 17)))
    assert frames["reply ok (seq 1)"].data == bytes([Reply.OK])


def test_stuffing_vector_doubles_the_7f_inside_data() -> None:
    raw = encode_frame(0, 0, bytes([0xF0, 0xEE, 0x7F]))
    assert raw.hex(" ") == SSP["frames"]["stuffing: data containing 7f (seq 0)"]
    assert raw[1:].count(b"\x7f\x7f") == 1


def test_crc_is_stuffed_when_it_contains_7f() -> None:
    # Search a payload whose CRC has a 0x7F byte: the CRC bytes must be stuffed too.
    for n in range(5000):
        data = n.to_bytes(2, "big")
        body = bytes([0x80, 2]) + data
        if 0x7F in crc_bytes(body):
            break
    raw = encode_frame(1, 0, data)
    assert decode_frame(raw) == Frame(1, 0, data)
    assert len(raw) > 1 + len(body) + 2


# ------------------------------------------------------------------ errors


def test_bad_crc_is_a_typed_crc_error_naming_the_frame() -> None:
    raw = bytearray(bytes.fromhex(SSP["frames"]["poll (seq 0)"]))
    raw[-1] ^= 0x01
    with pytest.raises(CrcError, match="CRC mismatch"):
        decode_frame(bytes(raw))


@pytest.mark.parametrize("raw, words", [
    (b"", "must start with 7f"),
    (bytes.fromhex("00 80 01 07"), "must start with 7f"),
    (bytes.fromhex("7f 80 01 07"), "truncated"),
    (bytes.fromhex("7f 80 01 07 12 02 00"), "after its CRC"),
    (bytes.fromhex("7f 80 7f 01"), "unpaired 7f"),
])
def test_malformed_frames_raise_frame_error(raw: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        decode_frame(raw)


def test_zero_length_frame_is_refused() -> None:
    body = bytes([0x80, 0x00])
    with pytest.raises(FrameError, match="LEN 0"):
        decode_frame(b"\x7f" + body + crc_bytes(body))


def test_all_codec_errors_are_protocol_errors() -> None:
    for cls in (SspError, CrcError, FrameError, MessageError, UnknownEventError, CommandRefused):
        assert issubclass(cls, ProtocolError)


def test_generic_reply_other_than_ok_raises_command_refused_with_words() -> None:
    with pytest.raises(CommandRefused, match="cannot process") as info:
        split_reply(bytes([Reply.CANNOT_PROCESS]), Command.HOLD)
    assert info.value.reply == Reply.CANNOT_PROCESS and info.value.command == Command.HOLD
    assert split_reply(bytes([Reply.OK, 1, 2])) == b"\x01\x02"
    with pytest.raises(MessageError):
        split_reply(b"")


# ------------------------------------------------------------------ streaming decoder


def test_decoder_skips_garbage_and_resyncs_on_a_lone_7f() -> None:
    poll = bytes.fromhex(SSP["frames"]["poll (seq 1)"])
    ok = bytes.fromhex(SSP["frames"]["reply ok (seq 1)"])
    # A false start (7f 80 05 ...) is abandoned when the real frame's lone 7f arrives.
    stream = b"\x00\x13" + bytes.fromhex("7f 80 05 01") + poll + b"\xff" + ok
    assert FrameDecoder().feed(stream) == [decode_frame(poll), decode_frame(ok)]


def test_decoder_reports_a_bad_crc_and_still_returns_the_next_good_frame() -> None:
    bad = bytearray(bytes.fromhex(SSP["frames"]["poll (seq 0)"]))
    bad[-2] ^= 0x10
    good = bytes.fromhex(SSP["frames"]["enable (seq 1)"])
    decoder = FrameDecoder()
    assert decoder.feed(bytes(bad) + good) == [decode_frame(good)]
    errors = decoder.take_errors()
    assert len(errors) == 1 and isinstance(errors[0], CrcError)
    assert decoder.take_errors() == []


# ------------------------------------------------------------------ poll replies


def test_poll_reply_with_several_events_is_parsed_in_order() -> None:
    payload = bytes([Event.CREDIT, 3, Event.STACKING, Event.STACKED, Event.READ, 0, Event.CASHBOX_REMOVED,
                     Event.FRAUD_ATTEMPT, 2, Event.NOTE_CLEARED_INTO_CASHBOX, 4, Event.SLAVE_RESET])
    events = parse_poll_events(payload)
    assert [(e.code, e.data) for e in events] == [
        (Event.CREDIT, b"\x03"), (Event.STACKING, b""), (Event.STACKED, b""), (Event.READ, b"\x00"),
        (Event.CASHBOX_REMOVED, b""), (Event.FRAUD_ATTEMPT, b"\x02"),
        (Event.NOTE_CLEARED_INTO_CASHBOX, b"\x04"), (Event.SLAVE_RESET, b""),
    ]
    assert events[0].channel == 3 and events[0].name == "CREDIT"


def test_poll_reply_round_trips_through_the_device_side_encoder() -> None:
    events = [PollEvent(Event.READ, b"\x05"), PollEvent(Event.REJECTING), PollEvent(Event.REJECTED)]
    wire = encode_poll_events(events)
    assert wire[0] == Reply.OK
    assert parse_poll_events(split_reply(wire)) == events


def test_unknown_event_keeps_the_events_before_it() -> None:
    with pytest.raises(UnknownEventError, match="0x42") as info:
        parse_poll_events(bytes([Event.CREDIT, 1, 0x42, Event.STACKED]))
    assert info.value.parsed == [PollEvent(Event.CREDIT, b"\x01")]


def test_event_missing_its_channel_byte_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="CREDIT needs 1"):
        parse_poll_events(bytes([Event.STACKED, Event.CREDIT]))


def test_note_path_open_is_sized_so_the_credit_after_it_is_read() -> None:
    """The NV200's 0xE0 (no data) in front of a credit: both are read, nothing is lost."""
    reply = decode_poll_reply(bytes([Event.NOTE_PATH_OPEN, Event.CREDIT, 4, Event.STACKING]))
    assert reply.warning is None
    assert reply.events == (PollEvent(Event.NOTE_PATH_OPEN), PollEvent(Event.CREDIT, b"\x04"),
                            PollEvent(Event.STACKING))


def test_unsizable_event_ends_the_reading_with_a_typed_warning_and_keeps_what_came_before() -> None:
    reply = decode_poll_reply(bytes([Event.CREDIT, 1, 0x42, Event.STACKED]))
    assert reply.events == (PollEvent(Event.CREDIT, b"\x01"),)
    assert isinstance(reply.warning, PollReplyWarning) and isinstance(reply.warning, UserWarning)
    assert (reply.warning.code, reply.warning.offset, reply.warning.unread) == (0x42, 2, bytes([0x42, Event.STACKED]))
    assert "0x42 has no known data size" in str(reply.warning)


def test_event_cut_short_ends_the_reading_with_a_warning_naming_it() -> None:
    reply = decode_poll_reply(bytes([Event.STACKED, Event.CREDIT]))
    assert reply.events == (PollEvent(Event.STACKED),)
    assert reply.warning is not None and "CREDIT needs 1 data byte" in str(reply.warning)


@given(st.binary(max_size=300))
def test_poll_reply_decoder_on_any_bytes_gives_events_and_at_most_a_typed_warning(payload: bytes) -> None:
    reply = decode_poll_reply(payload)
    read = b"".join(e.encode() for e in reply.events)
    if reply.warning is None:
        assert read == payload
    else:
        assert isinstance(reply.warning, PollReplyWarning)
        assert read + reply.warning.unread == payload and reply.warning.offset == len(read)


# ------------------------------------------------------------------ setup request and friends


def _setup_bytes_protocol_6() -> bytes:
    # Hand-built from the documented layout: validator, firmware "0420", EUR, value
    # multiplier 1, 3 channels (5, 10, 20), security 2, real multiplier 100, protocol 6,
    # per-channel currency, per-channel 4-byte little-endian values.
    return bytes([0x00]) + b"0420" + b"EUR" + bytes([0, 0, 1]) + bytes([3]) + bytes([5, 10, 20]) \
        + bytes([2, 2, 2]) + bytes([0, 0, 100]) + bytes([6]) + b"EUREUREUR" \
        + (5).to_bytes(4, "little") + (10).to_bytes(4, "little") + (20).to_bytes(4, "little")


def test_setup_reply_protocol_6_gives_channel_values_in_minor_units() -> None:
    info = parse_setup_reply(_setup_bytes_protocol_6())
    assert info.unit_type == 0 and info.firmware == "0420" and info.currency == "EUR"
    assert info.protocol_version == 6
    assert info.channel_values == (500, 1000, 2000)
    assert info.channel_currencies == ("EUR", "EUR", "EUR")
    assert info.channel_table() == {1: 500, 2: 1000, 3: 2000}


def test_setup_reply_protocol_6_uses_the_long_values_not_the_one_byte_ones() -> None:
    # 500 EUR does not fit the one-byte field (sent as 0); the 4-byte value carries it.
    raw = bytearray(_setup_bytes_protocol_6())
    raw[12 + 2] = 0
    raw[-4:] = (500).to_bytes(4, "little")
    assert parse_setup_reply(bytes(raw)).channel_values == (500, 1000, 50000)


def test_setup_reply_old_protocol_uses_short_values_times_multipliers() -> None:
    raw = bytes([0x00]) + b"0310" + b"GBP" + bytes([0, 0, 1, 2, 5, 10, 2, 2, 0, 0, 100, 4])
    info = parse_setup_reply(raw)
    assert info.protocol_version == 4 and info.currency == "GBP"
    assert info.channel_values == (500, 1000)


def test_setup_reply_round_trips_through_the_device_side_encoder() -> None:
    info = SetupInfo(unit_type=0, firmware="0420", currency="USD", protocol_version=6,
                     channel_values=(100, 500, 1000, 2000, 5000, 10000))
    wire = encode_setup_reply(info)
    parsed = parse_setup_reply(split_reply(wire))
    assert parsed.channel_values == info.channel_values and parsed.currency == "USD"


@pytest.mark.parametrize("cut", [0, 5, 11, 20, 30])
def test_truncated_setup_reply_is_a_message_error(cut: int) -> None:
    with pytest.raises(MessageError):
        parse_setup_reply(_setup_bytes_protocol_6()[:cut])


def test_serial_number_is_four_bytes_big_endian() -> None:
    assert parse_serial_number(bytes([0x00, 0xBC, 0x61, 0x4E])) == 12345678
    with pytest.raises(MessageError, match="4 bytes"):
        parse_serial_number(b"\x01\x02")


def test_inhibit_mask_sets_one_bit_per_accepted_channel() -> None:
    assert encode_inhibits({1, 3, 9}) == bytes([Command.SET_INHIBITS, 0b101, 0b1])
    assert parse_inhibits(bytes([0b101, 0b1])) == {1, 3, 9}


# ------------------------------------------------------------------ properties

_frames = st.builds(Frame, st.integers(0, 1), st.integers(0, 127), st.binary(min_size=1, max_size=255))


@given(st.binary(max_size=400))
def test_decode_frame_on_random_bytes_raises_only_ssp_errors(raw: bytes) -> None:
    try:
        frame = decode_frame(raw)
    except SspError:
        return
    assert frame.encode() == raw


@given(st.binary(max_size=600), st.lists(st.integers(1, 50), max_size=30))
def test_streaming_decoder_on_random_chunks_yields_only_valid_frames(stream: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    pos = 0
    out: list[Frame] = []
    for cut in cuts + [len(stream)]:
        out += decoder.feed(stream[pos:pos + cut])
        pos += cut
    for frame in out:
        assert decode_frame(frame.encode()) == frame
    assert all(isinstance(e, SspError) for e in decoder.errors)


@given(_frames, st.data())
def test_valid_frame_split_at_any_boundary_survives(frame: Frame, data: st.DataObject) -> None:
    raw = frame.encode()
    cut = data.draw(st.integers(0, len(raw)))
    decoder = FrameDecoder()
    assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) == [frame]


@given(st.lists(_frames, min_size=1, max_size=5), st.binary(max_size=40).filter(lambda b: 0x7F not in b),
       st.data())
def test_frames_after_garbage_survive_arbitrary_chunking(frames: list[Frame], garbage: bytes,
                                                         data: st.DataObject) -> None:
    stream = garbage + b"".join(f.encode() for f in frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    pos = 0
    while pos < len(stream):
        step = data.draw(st.integers(1, 17))
        out += decoder.feed(stream[pos:pos + step])
        pos += step
    assert out == frames


@given(_frames, st.data())
def test_corrupted_frame_gives_a_typed_error_or_a_valid_frame(frame: Frame, data: st.DataObject) -> None:
    raw = bytearray(frame.encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_frame(bytes(raw))
    except SspError:
        pass
    else:
        assert decoded.encode() == bytes(raw)
    decoder = FrameDecoder()
    for got in decoder.feed(bytes(raw)):
        assert got.encode() in bytes(raw)
    assert all(isinstance(e, SspError) for e in decoder.errors)


@given(_frames, st.integers(1, 300))
def test_truncated_frame_is_a_frame_error(frame: Frame, keep: int) -> None:
    raw = frame.encode()
    keep = min(keep, len(raw) - 1)
    with pytest.raises(FrameError):
        decode_frame(raw[:keep])


@given(st.binary(max_size=300))
def test_poll_parser_on_random_bytes_raises_only_message_errors(payload: bytes) -> None:
    try:
        events = parse_poll_events(payload)
    except MessageError:
        return
    assert b"".join(e.encode() for e in events) == payload


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_setup_parser_on_random_bytes_raises_only_message_errors(payload: bytes) -> None:
    try:
        info = parse_setup_reply(payload)
    except MessageError:
        return
    assert len(info.channel_values) == payload[11]


@given(st.binary(max_size=20))
def test_split_reply_on_random_bytes_raises_only_ssp_errors(payload: bytes) -> None:
    try:
        rest = split_reply(payload)
    except SspError:
        return
    assert payload[0] == Reply.OK and rest == payload[1:]


def test_crc16_of_empty_input_is_the_init_value() -> None:
    assert crc16(b"") == 0xFFFF


_stuffy_bytes = st.lists(st.one_of(st.just(0x7F), st.integers(0, 255)), min_size=1, max_size=255).map(bytes)
_stuffy_frames = st.builds(Frame, st.integers(0, 1), st.sampled_from([0, 0x7F, 0x10]), _stuffy_bytes)


@given(_stuffy_frames, st.data())
def test_frames_full_of_7f_survive_stuffing_and_any_split(frame: Frame, data: st.DataObject) -> None:
    raw = frame.encode()
    assert raw[1:].replace(b"\x7f\x7f", b"").count(b"\x7f") == 0     # no lone 7f after the STX
    cut = data.draw(st.integers(0, len(raw)))
    decoder = FrameDecoder()
    assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) == [frame]
    assert decode_frame(raw) == frame


@given(st.lists(st.one_of(st.just(0x7F), st.integers(0, 255)), max_size=400).map(bytes))
def test_7f_heavy_random_streams_give_only_typed_errors_or_valid_frames(stream: bytes) -> None:
    decoder = FrameDecoder()
    for frame in decoder.feed(stream):
        assert decode_frame(frame.encode()) == frame
    assert all(isinstance(e, SspError) for e in decoder.errors)
    try:
        whole = decode_frame(stream)
    except SspError:
        return
    assert whole.encode() == stream
