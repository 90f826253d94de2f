"""ccNet codec: the shared vectors, frames worked out from CashCode's document, the
tables, bill-table and identification parsing, and property tests that garbage only ever
yields typed protocol errors or values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from drivers.ccnet.frames import (
    ACK,
    BillType,
    Command,
    CrcError,
    Frame,
    FrameDecoder,
    FrameError,
    MessageError,
    PollAnswer,
    State,
    bill_mask,
    bill_type_for_minor,
    crc16,
    decode_frame,
    enable_bill_types_data,
    encode_bill_table,
    encode_frame,
    encode_identification,
    failure_name,
    parse_bill_mask,
    parse_bill_table,
    parse_identification,
    parse_poll,
    reject_reason_name,
)
from hal.errors import ProtocolError

VECTORS_PATH = Path(__file__).resolve().parents[2] / "vectors" / "vectors.json"
CCNET = json.loads(VECTORS_PATH.read_text())["ccnet"]

# What each shared vector must decode to (address, payload), from the protocol facts.
EXPECTED = {
    "host poll": (0x03, bytes((Command.POLL,))),
    "host ack": (0x03, bytes((ACK,))),
    "host reset": (0x03, bytes((Command.RESET,))),
}


def test_the_vectors_name_crc16_kermit():
    assert CCNET["crc"] == "CRC-16/KERMIT"
    assert set(CCNET["frames"]) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shared_vector_decodes_to_its_message_and_encodes_back_byte_for_byte(name):
    raw = bytes.fromhex(CCNET["frames"][name])
    frame = decode_frame(raw)
    assert (frame.address, frame.payload) == EXPECTED[name]
    assert frame.encode() == raw


def test_crc_is_kermit_check_value_and_low_byte_goes_first():
    assert crc16(b"123456789") == 0x2189          # the catalogued CRC-16/KERMIT check value
    assert encode_frame(b"\x33")[-2:] == bytes.fromhex("da81")


def test_length_byte_counts_the_whole_frame():
    raw = encode_frame(bytes((Command.ENABLE_BILL_TYPES,)) + bytes(6))
    assert raw[0] == 0x02 and raw[1] == 0x03 and raw[2] == len(raw) == 12


def test_a_flipped_bit_is_a_crc_error_not_a_message():
    raw = bytearray(bytes.fromhex(CCNET["frames"]["host poll"]))
    raw[3] ^= 0x01
    with pytest.raises(CrcError):
        decode_frame(bytes(raw))


@pytest.mark.parametrize("raw, words", [
    (b"\x02\x03", "too short"),
    (bytes.fromhex("fc0306" "33da81"), "sync 0x02"),
    (bytes.fromhex("020307" "33da81"), "length byte says 7"),
])
def test_malformed_frames_raise_frame_errors_naming_the_problem(raw, words):
    with pytest.raises(FrameError, match=words):
        decode_frame(raw)


def test_payload_limits_are_enforced_when_encoding():
    with pytest.raises(FrameError):
        encode_frame(b"")
    with pytest.raises(FrameError):
        encode_frame(bytes(251))
    assert len(encode_frame(bytes(250))) == 255


def test_decoder_resynchronises_after_garbage_and_a_corrupted_frame():
    good = encode_frame(bytes((State.ESCROW, 3)))
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    items = FrameDecoder().feed(b"\xaa\x55" + bytes(bad) + good)
    frames = [i for i in items if isinstance(i, Frame)]
    errors = [i for i in items if isinstance(i, ProtocolError)]
    assert frames == [Frame(bytes((State.ESCROW, 3)))]
    assert any(isinstance(e, CrcError) for e in errors) and errors


def test_decoder_holds_a_partial_frame_and_expires_it_as_truncated():
    decoder = FrameDecoder()
    raw = encode_frame(bytes((State.STACKED, 4)))
    assert decoder.feed(raw[:4]) == []
    assert decoder.pending == 4
    expired = decoder.expire()
    assert expired and all(isinstance(e, FrameError) for e in expired)
    assert decoder.pending == 0


@pytest.mark.parametrize("payload, expected", [
    (b"\x14", PollAnswer(State.IDLING)),
    (b"\x19", PollAnswer(State.UNIT_DISABLED)),
    (b"\x80\x03", PollAnswer(State.ESCROW, 3)),
    (b"\x81\x17", PollAnswer(State.STACKED, 23)),
    (b"\x1c\x68", PollAnswer(State.REJECTING, 0x68)),
    (b"\x47\x50", PollAnswer(State.FAILURE, 0x50)),
    (b"\x42", PollAnswer(State.CASSETTE_OUT)),
])
def test_poll_answers_parse_to_their_state_and_extra_byte(payload, expected):
    assert parse_poll(payload) == expected
    assert parse_poll(payload).encode() == payload


@pytest.mark.parametrize("payload, words", [
    (b"", "1 or 2 bytes"),
    (b"\x80", "must carry 2"),            # escrow without its bill type
    (b"\x14\x00", "must carry 1"),
    (b"\x81\x18", "bill type 24"),        # only 0..23 exist
    (b"\x00", "confirmation"),
    (b"\x14\x00\x00", "1 or 2 bytes"),
])
def test_poll_answers_that_do_not_fit_their_state_are_message_errors(payload, words):
    with pytest.raises(MessageError, match=words):
        parse_poll(payload)


def test_an_unknown_state_byte_is_a_value_marked_unknown_not_an_action():
    answer = parse_poll(b"\x1e")
    assert answer.known is False and answer.state is None
    assert "unknown state 0x1E" in str(answer)


def test_reject_and_failure_tables_follow_the_document():
    assert reject_reason_name(0x68) == "denomination inhibited"
    assert reject_reason_name(0x6C) == "length error"
    assert "unknown reject reason 0x6B" == reject_reason_name(0x6B)
    assert failure_name(0x50).startswith("stack")
    assert failure_name(0x5F) == "capacitance sensor failure"


def test_bill_masks_put_bill_type_23_first():
    assert bill_mask({0}) == b"\x00\x00\x01"
    assert bill_mask({23}) == b"\x80\x00\x00"
    assert enable_bill_types_data({2, 3}, {3}) == b"\x00\x00\x0c\x00\x00\x08"
    assert parse_bill_mask(b"\x80\x00\x0c") == frozenset({2, 3, 23})
    with pytest.raises(MessageError):
        bill_mask({24})


def test_bill_table_from_the_documents_example_values():
    # The document's examples: 0x5 'ITL' 0x3 = 5,000; 0x5 'NLC' 0x82 = .05; 0x2 'USA' 0x1 = 20.
    table = encode_bill_table([BillType(0, 5, "ITL", 0x03), BillType(1, 5, "NLC", 0x82), BillType(11, 2, "USA", 0x01)])
    assert len(table) == 120
    entries = parse_bill_table(table)
    assert [(e.bill_type, e.country) for e in entries] == [(0, "ITL"), (1, "NLC"), (11, "USA")]
    assert entries[0].minor_units(0) == 5000
    assert entries[1].minor_units(2) == 5
    assert entries[2].minor_units(2) == 2000


def test_a_bill_value_below_the_currency_minor_unit_is_refused():
    with pytest.raises(MessageError, match="fraction"):
        BillType(0, 5, "JPY", 0x81).minor_units(0)


@pytest.mark.parametrize("minor, digits", [(500, 2), (1000, 2), (20000, 2), (5, 2), (1000, 0), (250, 2)])
def test_simulator_table_entries_value_back_to_the_same_minor_units(minor, digits):
    assert bill_type_for_minor(3, "EUR", minor, digits).minor_units(digits) == minor


def test_identification_splits_part_serial_and_asset():
    data = encode_identification("SM-RU1353", "41A123456", b"\x01\x02\x03\x04\x05\x06\x07")
    assert len(data) == 34
    ident = parse_identification(data)
    assert (ident.part_number, ident.serial, ident.asset) == ("SM-RU1353", "41A123456", bytes(range(1, 8)))
    with pytest.raises(MessageError):
        parse_identification(data[:20])


# -- property tests: any bytes give a typed error or a value, never another exception ------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_frame_on_any_bytes_gives_a_frame_or_a_frame_error(raw):
    try:
        frame = decode_frame(raw)
    except FrameError:
        return
    assert frame.encode() == raw


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_stream_decoder_on_any_chunks_yields_only_frames_or_protocol_errors(chunks):
    decoder = FrameDecoder()
    items = []
    for chunk in chunks:
        items += decoder.feed(chunk)
    items += decoder.expire()
    assert decoder.pending == 0
    assert all(isinstance(i, (Frame, ProtocolError)) for i in items)


payloads = st.binary(min_size=1, max_size=250)


@settings(max_examples=200, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=6), st.binary(max_size=30), st.data())
def test_good_frames_survive_garbage_between_them(frame_payloads, garbage, data):
    garbage = garbage.replace(b"\x02", b"")      # a sync byte in the garbage may hide the next frame
    stream = b""
    for payload in frame_payloads:
        stream += garbage + encode_frame(payload)
    decoder = FrameDecoder()
    cut = data.draw(st.integers(0, len(stream)))
    items = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    assert [i.payload for i in items if isinstance(i, Frame)] == frame_payloads


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4))
def test_parse_poll_on_any_payload_gives_an_answer_or_a_message_error(payload):
    try:
        answer = parse_poll(payload)
    except MessageError:
        return
    assert answer.encode() == payload


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=130), st.integers(0, 3))
def test_bill_table_parsing_on_any_bytes_gives_entries_or_a_message_error(data, digits):
    try:
        entries = parse_bill_table(data)
    except MessageError:
        return
    for entry in entries:
        try:
            assert entry.minor_units(digits) > 0
        except MessageError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_identification_parsing_on_any_bytes_gives_a_value_or_a_message_error(data):
    try:
        ident = parse_identification(data)
    except MessageError:
        return
    assert isinstance(ident.part_number, str) and isinstance(ident.serial, str)
