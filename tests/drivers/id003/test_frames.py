"""ID-003 codec: the shared vectors, the tables, currency-assign parsing, and
property tests that garbage only ever yields typed protocol errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from drivers.id003.frames import (
    Command,
    CrcError,
    CurrencyEntry,
    Frame,
    FrameDecoder,
    FrameError,
    MessageError,
    Status,
    check_status,
    crc16_kermit,
    decode_frame,
    denomination_mask,
    encode_currency_assign,
    encode_frame,
    entry_for_minor,
    failure_name,
    mask_inhibits,
    parse_currency_assign,
    parse_escrow_code,
    reject_reason_name,
    version_currency,
)
from hal.errors import ProtocolError

VECTORS_PATH = Path(__file__).resolve().parents[2] / "vectors" / "vectors.json"
ID003_VECTORS = json.loads(VECTORS_PATH.read_text())["id003"]["frames"]

# What each vector must decode to: (code, data). Written from the protocol facts,
# so a codec that mislabels a vector fails even if it round-trips bytes.
EXPECTED = {
    "host status request": (Command.STATUS_REQUEST, b""),
    "host ack": (Command.ACK, b""),
    "host reset": (Command.RESET, b""),
    "host stack-1": (Command.STACK_1, b""),
    "host return": (Command.RETURN, b""),
    "host hold": (Command.HOLD, b""),
    "host inhibit off (accept)": (Command.SET_INHIBIT, b"\x00"),
    "host inhibit on": (Command.SET_INHIBIT, b"\x01"),
    "device idling": (Status.ENABLE, b""),
    "device escrow code 0x63": (Status.ESCROW, b"\x63"),
    "device vend valid": (Status.VEND_VALID, b""),
    "device stacked": (Status.STACKED, b""),
    "device power up": (Status.POWER_UP, b""),
}


def test_every_shared_vector_is_known_to_this_test():
    assert set(ID003_VECTORS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(ID003_VECTORS))
def test_vector_decodes_to_its_message(name):
    raw = bytes.fromhex(ID003_VECTORS[name])
    code, data = EXPECTED[name]
    assert decode_frame(raw) == Frame(code, data)


@pytest.mark.parametrize("name", sorted(ID003_VECTORS))
def test_vector_is_what_the_encoder_produces(name):
    code, data = EXPECTED[name]
    assert encode_frame(code, data).hex(" ") == ID003_VECTORS[name]


@pytest.mark.parametrize("name", sorted(ID003_VECTORS))
def test_vector_crc_is_kermit_low_byte_first(name):
    raw = bytes.fromhex(ID003_VECTORS[name])
    assert crc16_kermit(raw[:-2]) == raw[-2] | raw[-1] << 8


def test_crc_kermit_check_value():
    # The catalogue check value of CRC-16/KERMIT over "123456789".
    assert crc16_kermit(b"123456789") == 0x2189


def test_length_byte_counts_the_whole_frame():
    raw = encode_frame(0x88, b"ABC")
    assert raw[1] == len(raw) == 8


def test_bad_crc_is_a_crc_error_naming_the_frame():
    raw = bytearray(bytes.fromhex(ID003_VECTORS["device vend valid"]))
    raw[-1] ^= 0xFF
    with pytest.raises(CrcError, match="fc 05 15"):
        decode_frame(bytes(raw))


@pytest.mark.parametrize("raw, why", [
    (b"\xfc\x05\x11", "too short"),
    (b"\xfb\x05\x11\x27\x56", "sync"),
    (b"\xfc\x06\x11\x27\x56", "length byte"),
])
def test_malformed_frames_are_frame_errors(raw, why):
    with pytest.raises(FrameError, match=why):
        decode_frame(raw)


def test_codec_errors_are_protocol_errors():
    assert issubclass(FrameError, ProtocolError)
    assert issubclass(CrcError, FrameError)
    assert issubclass(MessageError, ProtocolError)


def test_encoder_refuses_data_longer_than_a_frame_can_carry():
    with pytest.raises(FrameError):
        encode_frame(0x11, bytes(251))


def test_status_with_missing_escrow_code_is_a_message_error():
    with pytest.raises(MessageError, match="ESCROW"):
        check_status(Frame(Status.ESCROW))


def test_unknown_status_code_is_a_message_error():
    with pytest.raises(MessageError, match="0x99"):
        check_status(Frame(0x99))


def test_reject_0x7f_is_the_true_bill_feature_and_0x98_a_barcode_photo_level():
    assert "true-bill" in reject_reason_name(0x7F)
    assert reject_reason_name(0x98) == "barcode photo level error"
    assert "true-bill" not in reject_reason_name(0x98)


@pytest.mark.parametrize("code", [*range(0x91, 0x99), 0x9B, 0x9D])
def test_barcode_ticket_rejects_are_named_as_barcode_rejects(code):
    assert "barcode" in reject_reason_name(code) and "unknown" not in reject_reason_name(code)


@pytest.mark.parametrize("code", [0x99, 0x9A, 0x9C, 0x9E, 0x90])
def test_codes_between_the_barcode_rejects_are_unknown(code):
    assert "unknown" in reject_reason_name(code)


def test_stacker_nearly_full_0x1c_is_a_known_status_without_data():
    assert check_status(Frame(0x1C)) == Status.STACKER_NEARLY_FULL
    with pytest.raises(MessageError):
        check_status(Frame(0x1C, b"\x00"))


@pytest.mark.parametrize("codes, mask", [
    ((), b"\x00\x00"),
    ((0x61,), b"\x01\x00"),
    ((0x63, 0x66), b"\x24\x00"),
    ((0x71,), b"\x00\x01"),
    ((0x68, 0x78), b"\x80\x80"),
])
def test_denomination_mask_follows_jcms_bit_map(codes, mask):
    assert denomination_mask(codes) == mask
    for code in (*range(0x61, 0x69), *range(0x71, 0x79)):
        assert mask_inhibits(mask, code) == (code in codes)


@pytest.mark.parametrize("code", [0x60, 0x69, 0x6F, 0x70, 0x79])
def test_codes_without_a_bit_cannot_be_masked(code):
    with pytest.raises(MessageError, match=f"0x{code:02X}"):
        denomination_mask([code])
    assert mask_inhibits(b"\xff\xff", code) is False


def test_reject_and_failure_codes_have_names():
    assert reject_reason_name(0x71) == "insertion error"
    assert "0x70" in reject_reason_name(0x70)
    assert failure_name(0xA2) == "stack motor failure"
    assert "0x01" in failure_name(0x01)


def test_currency_assign_answer_gives_values_and_skips_unused_entries():
    data = bytes.fromhex("61 00 05 00  62 00 0a 00  63 00 02 01  66 00 02 02  67 00 00 00")
    entries = parse_currency_assign(data)
    assert [(e.escrow_code, e.minor_units(2)) for e in entries] == [
        (0x61, 500), (0x62, 1000), (0x63, 2000), (0x66, 20000)]


def test_currency_assign_exponent_is_signed_for_sub_unit_notes():
    (entry,) = parse_currency_assign(bytes((0x61, 0, 5, 0xFF)))
    assert entry.exponent == -1
    assert entry.minor_units(2) == 50


def test_currency_assign_value_finer_than_the_currency_is_refused():
    (entry,) = parse_currency_assign(bytes((0x61, 0, 5, 0xFF)))
    with pytest.raises(MessageError, match="finer"):
        entry.minor_units(0)


def test_currency_assign_of_wrong_length_is_a_message_error():
    with pytest.raises(MessageError, match="4 bytes per entry"):
        parse_currency_assign(b"\x61\x00\x05")


def test_currency_assign_with_a_repeated_code_is_a_message_error():
    with pytest.raises(MessageError, match="twice"):
        parse_currency_assign(bytes.fromhex("61 00 05 00 61 00 0a 00"))


@pytest.mark.parametrize("minor", [50, 500, 1000, 2000, 5000, 20000, 123])
def test_currency_entries_round_trip_minor_units(minor):
    entry = entry_for_minor(0x61, 0x00, minor, 2)
    (parsed,) = parse_currency_assign(encode_currency_assign([entry]))
    assert parsed.minor_units(2) == minor


@pytest.mark.parametrize("text, code", [("0x61", 0x61), ("97", 97), ("0X6f", 0x6F)])
def test_escrow_codes_from_configuration(text, code):
    assert parse_escrow_code(text) == code


@pytest.mark.parametrize("text", ["sixty", "0x100", "", "-1"])
def test_bad_escrow_codes_from_configuration_are_refused(text):
    with pytest.raises(MessageError):
        parse_escrow_code(text)


@pytest.mark.parametrize("version, currency", [
    ("U(EUR)-SS ID003-05V200-00 25JAN09", "EUR"),
    ("U(EUR5)-700-SS ID003-05V027-00 05DEC24", "EUR"),
    ("i(EUR)-100-SS ID003-05V100-00 01JAN24", "EUR"),
    ("i(USA)100-SS ID003", "USD"),
    ("U(GBR12)-SS", "GBP"),
    ("no region here", None),
    ("X(ZZZ)-1", None),
    ("U(EUR5X)-700", None),
    ("U(eur5)-700", None),
    ("U(EU)-700", None),
    ("U(EUR-700", None),
])
def test_currency_from_version_string(version, currency):
    assert version_currency(version) == currency


# -- streaming decoder ------------------------------------------------------------

ALL_VECTOR_BYTES = [bytes.fromhex(v) for v in ID003_VECTORS.values()]


def test_decoder_resyncs_after_garbage_and_reports_it():
    decoder = FrameDecoder()
    out = decoder.feed(b"\x00\x13garbage" + ALL_VECTOR_BYTES[0])
    assert isinstance(out[0], FrameError)
    assert out[-1] == decode_frame(ALL_VECTOR_BYTES[0])


def test_decoder_recovers_a_frame_that_follows_a_truncated_one():
    escrow = bytes.fromhex(ID003_VECTORS["device escrow code 0x63"])
    idle = bytes.fromhex(ID003_VECTORS["device idling"])
    out = FrameDecoder().feed(escrow[:3] + idle)
    assert [x for x in out if isinstance(x, Frame)] == [Frame(Status.ENABLE)]
    assert any(isinstance(x, CrcError) for x in out)


def test_decoder_reports_a_corrupt_frame_and_keeps_the_next():
    bad = bytearray(bytes.fromhex(ID003_VECTORS["device vend valid"]))
    bad[2] = 0x16
    good = bytes.fromhex(ID003_VECTORS["device stacked"])
    out = FrameDecoder().feed(bytes(bad) + good)
    assert isinstance(out[0], CrcError)
    assert out[-1] == Frame(Status.STACKED)


def test_decoder_expire_declares_a_held_partial_frame_truncated():
    decoder = FrameDecoder()
    assert decoder.feed(b"\xfc\x06\x13") == []
    assert decoder.pending == 3
    out = decoder.expire()
    assert out and all(isinstance(x, FrameError) for x in out)
    assert decoder.pending == 0


def test_decoder_finds_a_frame_inside_an_expired_partial():
    decoder = FrameDecoder()
    idle = bytes.fromhex(ID003_VECTORS["device idling"])
    # A bogus sync with a long length swallows a real frame until the line goes quiet.
    assert decoder.feed(b"\xfc\x40" + idle) == []
    out = decoder.expire()
    assert Frame(Status.ENABLE) in out


frames_strategy = st.builds(Frame, st.integers(0, 255), st.binary(max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_only_frames_or_protocol_errors(data):
    decoder = FrameDecoder()
    out = decoder.feed(data) + decoder.expire()
    assert all(isinstance(x, (Frame, ProtocolError)) for x in out)
    assert decoder.pending == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_frame_on_random_bytes_raises_only_protocol_errors(data):
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    assert frame.encode() == data


@settings(max_examples=200, deadline=None)
@given(st.lists(frames_strategy, min_size=1, max_size=8), st.data())
def test_valid_frames_split_at_any_boundary_reassemble(frames, data):
    stream = b"".join(f.encode() for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    out = []
    previous = 0
    for cut in cuts + [len(stream)]:
        out += decoder.feed(stream[previous:cut])
        previous = cut
    assert out == frames


@settings(max_examples=200, deadline=None)
@given(st.lists(frames_strategy, min_size=1, max_size=6), st.data())
def test_corrupted_and_truncated_streams_give_only_frames_or_protocol_errors(frames, data):
    stream = bytearray(b"".join(f.encode() for f in frames))
    for _ in range(data.draw(st.integers(0, 5))):
        at = data.draw(st.integers(0, len(stream) - 1))
        stream[at] = data.draw(st.integers(0, 255))
    stream = stream[:data.draw(st.integers(0, len(stream)))]
    decoder = FrameDecoder()
    out = decoder.feed(bytes(stream)) + decoder.expire()
    assert all(isinstance(x, (Frame, ProtocolError)) for x in out)
    # A frame that survived must be one that was sent or a checksum-valid accident,
    # and it always re-encodes to valid bytes.
    for x in out:
        if isinstance(x, Frame):
            assert decode_frame(x.encode()) == x


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_currency_assign_parser_on_random_bytes_raises_only_protocol_errors(data):
    try:
        entries = parse_currency_assign(data)
    except ProtocolError:
        return
    assert all(isinstance(e, CurrencyEntry) and e.integer > 0 for e in entries)


@settings(max_examples=200, deadline=None)
@given(frames_strategy)
def test_status_check_on_random_frames_raises_only_protocol_errors(frame):
    try:
        status = check_status(frame)
    except ProtocolError:
        return
    assert status == frame.code


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=10))
def test_escrow_code_parser_on_random_text_raises_only_protocol_errors(text):
    try:
        code = parse_escrow_code(text)
    except ProtocolError:
        return
    assert 0 <= code <= 255


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_version_currency_on_random_text_is_a_known_code_or_none(text):
    currency = version_currency(text)
    assert currency is None or (len(currency) == 3 and currency.isupper())


MASKABLE = [*range(0x61, 0x69), *range(0x71, 0x79)]


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(MASKABLE)))
def test_denomination_mask_round_trips_any_set_of_codes(codes):
    mask = denomination_mask(codes)
    assert len(mask) == 2
    assert {c for c in MASKABLE if mask_inhibits(mask, c)} == codes


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=6), st.integers(0, 255))
def test_mask_check_on_random_bytes_is_a_bool_or_a_protocol_error(mask, code):
    try:
        inhibited = mask_inhibits(mask, code)
    except ProtocolError:
        assert len(mask) != 2
        return
    assert isinstance(inhibited, bool)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=6), st.sampled_from(["EUR", "USA", "GBR", "CAN", "JPN", "CHF"]),
       st.text(alphabet="0123456789", max_size=3), st.text(max_size=30))
def test_version_currency_finds_the_region_before_its_set_number(prefix, region, digits, rest):
    version = f"{prefix.replace('(', '').replace(')', '')}({region}{digits}){rest}"
    expected = {"EUR": "EUR", "USA": "USD", "GBR": "GBP", "CAN": "CAD", "JPN": "JPY", "CHF": "CHF"}[region]
    assert version_currency(version) == expected
