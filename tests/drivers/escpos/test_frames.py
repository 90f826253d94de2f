"""The pure ESC/POS codec: status bytes, layout to 32/48 columns, and the bytes it makes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from drivers.escpos import frames
from hal.errors import ConfigurationError, ProtocolError
from hal.printer import PairLine, QrBlock, Receipt, Rule, TextLine
from hal.status import DeviceState, PaperState
from simulators.printer import EscposStreamParser, receipt_text

PORT = "socket://127.0.0.1:9"


# --- status bytes -----------------------------------------------------------

@pytest.mark.parametrize("byte, paper", [
    (0x12, PaperState.OK),
    (0x1E, PaperState.NEAR_END),       # bits 2-3
    (0x72, PaperState.OUT),            # bits 5-6
    (0x7E, PaperState.OUT),            # near end and out: out wins
    (0x16, PaperState.NEAR_END),       # half a pair counts as the worse state
    (0x32, PaperState.OUT),
])
def test_paper_status_byte_decodes_to_paper_state(byte, paper):
    assert frames.decode_paper_status(bytes((byte,))) is paper


@pytest.mark.parametrize("byte, offline", [(0x12, False), (0x1A, True), (0x16, False), (0x3A, True)])
def test_printer_status_offline_bit_is_bit_3(byte, offline):
    assert frames.decode_printer_status(bytes((byte,))) is offline


@pytest.mark.parametrize("data", [b"", b"\x12\x12", b"\x00", b"\xff", b"\x10", b"\x92"])
def test_status_byte_without_fixed_bits_is_a_protocol_error(data):
    with pytest.raises(frames.StatusByteError):
        frames.decode_paper_status(data)
    with pytest.raises(frames.StatusByteError):
        frames.decode_printer_status(data)


@pytest.mark.parametrize("paper", [PaperState.OK, PaperState.NEAR_END, PaperState.OUT])
def test_encoded_paper_status_decodes_back(paper):
    assert frames.decode_paper_status(frames.encode_paper_status(paper)) is paper


def test_unknown_paper_cannot_be_encoded_as_a_printer_answer():
    with pytest.raises(ValueError):
        frames.encode_paper_status(PaperState.UNKNOWN)


@given(st.binary(max_size=4))
def test_status_decoders_raise_only_protocol_errors_on_garbage(data):
    for decode in (frames.decode_paper_status, frames.decode_printer_status):
        try:
            decode(data)
        except ProtocolError:
            pass


@given(st.one_of(st.none(), st.binary(max_size=3)), st.one_of(st.none(), st.binary(max_size=3)),
       st.sampled_from([DeviceState.ONLINE, DeviceState.OFFLINE]))
def test_interpreted_status_never_reports_ok_paper_without_a_valid_paper_answer(printer, paper, silent):
    status = frames.interpret_status(printer, paper, silent_state=silent, where=PORT)
    valid_paper = paper is not None and len(paper) == 1 and paper[0] & 0x93 == 0x12 and not paper[0] & 0x6C
    if status.paper is PaperState.OK:
        assert valid_paper
    if printer is None and paper is None:
        assert (status.state, status.paper) == (silent, PaperState.UNKNOWN)


def test_silence_gives_unknown_paper_and_the_given_state():
    status = frames.interpret_status(None, None, silent_state=DeviceState.OFFLINE, where=PORT)
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.UNKNOWN)
    assert PORT in status.detail


def test_garbage_status_byte_is_a_hardware_error_with_unknown_paper_naming_the_port():
    status = frames.interpret_status(b"\xff", b"\x12", silent_state=DeviceState.ONLINE, where=PORT)
    assert (status.state, status.paper) == (DeviceState.HARDWARE_ERROR, PaperState.UNKNOWN)
    assert PORT in status.detail and "baud" in status.detail


def test_paper_out_is_a_user_error_even_when_the_printer_also_says_offline():
    status = frames.interpret_status(b"\x1a", b"\x72", silent_state=DeviceState.ONLINE, where=PORT)
    assert (status.state, status.paper) == (DeviceState.USER_ERROR, PaperState.OUT)


def test_offline_printer_with_paper_reports_offline():
    status = frames.interpret_status(b"\x1a", b"\x12", silent_state=DeviceState.ONLINE, where=PORT)
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.OK)


def test_answer_to_printer_status_only_leaves_paper_unknown():
    status = frames.interpret_status(b"\x12", None, silent_state=DeviceState.OFFLINE, where=PORT)
    assert (status.state, status.paper) == (DeviceState.ONLINE, PaperState.UNKNOWN)


# --- layout -----------------------------------------------------------------

def test_columns_follow_paper_width():
    assert frames.columns_for(58) == 32
    assert frames.columns_for(80) == 48


def test_unsupported_paper_width_is_a_configuration_error_naming_the_value():
    with pytest.raises(ConfigurationError, match="57"):
        frames.columns_for(57)


def test_pair_line_puts_value_flush_right():
    laid = frames.layout_receipt(Receipt((PairLine("Fee", "5.00 EUR"),)), 58)
    assert laid == [frames.PrintLine("Fee" + " " * 21 + "5.00 EUR")]


def test_pair_line_too_long_for_one_line_puts_value_below_label_right_aligned():
    laid = frames.layout_receipt(Receipt((PairLine("Bitcoin transaction", "x" * 40),)), 58)
    assert [line.text for line in laid] == ["Bitcoin transaction", "x" * 32, " " * 24 + "x" * 8]


def test_long_word_is_cut_to_the_width_instead_of_running_off_the_paper():
    assert frames.wrap("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", 32) == [
        "bc1qar0srrr7xfkvy5l643lydnw9re59", "gtzzwf5mdq"]


def test_large_text_wraps_at_half_the_columns():
    laid = frames.layout_receipt(Receipt((TextLine("Satoshi Kiosks GmbH", large=True),)), 58)
    assert [line.text for line in laid] == ["Satoshi Kiosks", "GmbH"]
    assert all(line.large for line in laid)


def test_control_characters_in_text_cannot_become_printer_commands():
    payload = frames.encode_receipt(Receipt((TextLine("evil\x1dV\x00cut\x10\x04\x01"),)), 80)
    parser = EscposStreamParser(48)
    assert parser.feed(payload) == []
    assert len(parser.receipts) == 1
    assert "evil V cut" in receipt_text(parser.receipts[0], 48)


def test_rule_fills_the_width():
    assert frames.layout_receipt(Receipt((Rule("="),)), 80) == [frames.PrintLine("=" * 48)]


blocks = st.one_of(
    st.builds(TextLine, st.text(max_size=120), st.sampled_from(["left", "center", "right"]), st.booleans(), st.booleans()),
    st.builds(PairLine, st.text(max_size=60), st.text(max_size=80)),
    st.builds(Rule, st.text(max_size=2)),
)


@given(st.lists(blocks, max_size=8), st.sampled_from([58, 80]))
def test_every_laid_out_line_fits_the_paper(receipt_blocks, width):
    columns = frames.columns_for(width)
    for line in frames.layout_receipt(Receipt(tuple(receipt_blocks)), width):
        assert len(line.text) * (2 if line.large else 1) <= columns
        assert line.text.isprintable()


@settings(max_examples=40, deadline=None)
@given(st.lists(blocks, max_size=6), st.sampled_from([58, 80]))
def test_printer_never_has_to_wrap_a_laid_out_receipt(receipt_blocks, width):
    parser = EscposStreamParser(frames.columns_for(width))
    parser.feed(frames.encode_receipt(Receipt(tuple(receipt_blocks)), width))
    assert parser.overflowed_lines == 0
    assert len(parser.receipts) <= 1


# --- bytes ------------------------------------------------------------------

def test_receipt_starts_with_init_and_codepage_and_ends_with_cut():
    payload = frames.encode_receipt(Receipt((TextLine("Grüße"),)), 58)
    assert payload.startswith(b"\x1b@\x1bt\x13")
    assert payload.endswith(b"\x1dV\x00")
    assert "Grüße".encode("cp858") in payload


def test_native_qr_uses_the_gs_k_store_and_print_commands():
    payload = frames.encode_receipt(Receipt((QrBlock("bitcoin:bc1qtest"),)), 80, native_qr=True)
    assert b"\x1d(k\x13\x001P0bitcoin:bc1qtest" in payload
    assert b"\x1d(k\x03\x001Q0" in payload
    assert b"\x1dv0" not in payload


def test_image_qr_is_a_raster_no_wider_than_the_paper():
    for width in (58, 80):
        payload = frames.encode_receipt(Receipt((QrBlock("x" * 300),)), width)
        start = payload.index(b"\x1dv0")
        width_bytes = payload[start + 4] | payload[start + 5] << 8
        assert width_bytes * 8 <= frames.DOTS[width]


def test_qr_payload_too_long_for_any_qr_is_a_layout_error():
    with pytest.raises(frames.ReceiptLayoutError, match="too long"):
        frames.encode_receipt(Receipt((QrBlock("x" * 5000),)), 80)


def _cp858_printable(char: str) -> bool:
    try:
        char.encode("cp858")
    except UnicodeEncodeError:
        return False
    return char.isprintable()


cp858_text = st.text(alphabet=st.characters(codec="cp858").filter(_cp858_printable), max_size=150)


@settings(max_examples=60, deadline=None)
@given(st.lists(cp858_text, min_size=1, max_size=5), st.sampled_from([58, 80]), st.booleans())
def test_every_printable_character_arrives_on_paper_in_order(texts, width, large):
    receipt = Receipt(tuple(TextLine(text, large=large) for text in texts))
    parser = EscposStreamParser(frames.columns_for(width))
    parser.feed(frames.encode_receipt(receipt, width))
    printed = "".join(receipt_text(r, frames.columns_for(width)) for r in parser.receipts)
    assert "".join(printed.split()) == "".join("".join(texts).split())
