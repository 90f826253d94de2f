"""Line framing for COM-mode scanners: terminators, split reads, over-long and
garbage lines reported as typed errors with resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from drivers.serial_scanner.frames import LineAssembler, ScannerFrameError, encode_line
from hal.errors import ProtocolError

CODE = "bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4?amount=0.001"


@pytest.mark.parametrize("terminator,wire", [
    ("cr", b"A\rB\r"), ("lf", b"A\nB\n"), ("crlf", b"A\r\nB\r\n"),
    ("any", b"A\rB\n"), ("any", b"A\r\nB\r\n"),
])
def test_each_configured_terminator_splits_codes(terminator, wire):
    assert LineAssembler(terminator).feed(wire) == ["A", "B"]


def test_a_code_split_across_reads_is_assembled_once_complete():
    assembler = LineAssembler("crlf")
    wire = encode_line(CODE, "crlf")
    assert assembler.feed(wire[:10]) == []
    assert assembler.feed(wire[10:-1]) == []
    assert assembler.feed(wire[-1:]) == [CODE]


def test_crlf_mode_keeps_a_lone_cr_inside_a_line_as_an_error_not_a_split():
    items = LineAssembler("crlf").feed(b"AB\rCD\r\nEF\r\n")
    assert isinstance(items[0], ScannerFrameError) and items[0].reason == "control_bytes"
    assert items[1:] == ["EF"]


def test_lf_mode_tolerates_a_scanner_that_sends_crlf():
    assert LineAssembler("lf").feed(b"A\r\nB\r\n") == ["A", "B"]


def test_cr_mode_tolerates_a_scanner_that_sends_crlf():
    assert LineAssembler("cr").feed(b"A\r\nB\r\n") == ["A", "B"]


def test_empty_lines_are_not_codes():
    assert LineAssembler("any").feed(b"\r\n\r\n\nA\r\n") == ["A"]


def test_over_long_line_is_reported_once_and_the_next_code_is_read():
    assembler = LineAssembler("crlf", max_length=16)
    items = assembler.feed(b"x" * 20)
    assert len(items) == 1 and items[0].reason == "too_long"
    assert assembler.feed(b"y" * 40) == []          # still inside the same over-long line: no second report
    assert assembler.feed(b"zz\r\nGOOD\r\n") == ["GOOD"]


def test_over_long_complete_line_is_an_error_between_good_ones():
    items = LineAssembler("lf", max_length=8).feed(b"ok\n" + b"x" * 9 + b"\nfine\n")
    assert items[0] == "ok" and items[2] == "fine"
    assert isinstance(items[1], ScannerFrameError) and items[1].reason == "too_long"


def test_non_utf8_line_is_reported_and_framing_resyncs():
    items = LineAssembler("crlf").feed(b"\xff\xfe\xfd\r\n" + encode_line(CODE))
    assert isinstance(items[0], ScannerFrameError) and items[0].reason == "not_text"
    assert "ff fe fd" in str(items[0])
    assert items[1] == CODE


def test_frame_errors_are_protocol_errors():
    assert issubclass(ScannerFrameError, ProtocolError)


def test_reset_drops_a_partial_line():
    assembler = LineAssembler("lf")
    assembler.feed(b"half a co")
    assembler.reset()
    assert assembler.feed(b"de\n") == ["de"]


@pytest.mark.parametrize("kwargs", [{"terminator": "semicolon"}, {"max_length": 0}])
def test_bad_framing_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        LineAssembler(**kwargs)


def test_unknown_encoding_is_refused_at_configuration_time():
    with pytest.raises(LookupError):
        LineAssembler(encoding="no-such-codec")


def test_encode_line_uses_the_terminator():
    assert encode_line("A", "cr") == b"A\r"
    assert encode_line("A", "lf") == b"A\n"
    assert encode_line("A", "crlf") == b"A\r\n"


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=12),
       terminator=st.sampled_from(["any", "cr", "lf", "crlf"]),
       max_length=st.integers(min_value=1, max_value=40))
def test_any_bytes_give_only_text_lines_or_frame_errors(chunks, terminator, max_length):
    assembler = LineAssembler(terminator, max_length)
    for chunk in chunks:
        for item in assembler.feed(chunk):
            assert isinstance(item, (str, ScannerFrameError))
            if isinstance(item, str):
                assert item and len(item.encode()) <= max_length


@settings(max_examples=100, deadline=None)
@given(codes=st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF,
                                                    blacklist_characters="\x7f"), min_size=1, max_size=50),
                      min_size=1, max_size=6),
       cut=st.integers(min_value=0, max_value=400), terminator=st.sampled_from(["cr", "lf", "crlf"]))
def test_codes_sent_in_any_chunking_come_out_unchanged(codes, cut, terminator):
    wire = b"".join(encode_line(code, terminator) for code in codes)
    cut = min(cut, len(wire))
    assembler = LineAssembler(terminator)
    assert assembler.feed(wire[:cut]) + assembler.feed(wire[cut:]) == codes
