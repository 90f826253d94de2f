"""The virtual ESC/POS printer: stream parsing, DLE EOT answers, control surface, PNG, standalone run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from drivers.escpos import frames
from hal.printer import QrBlock, Receipt, TextLine
from hal.status import PaperState
from simulators.printer import EscposStreamParser, VirtualPrinter, receipt_text

REPO = Path(__file__).resolve().parents[2]
DLE_EOT_1, DLE_EOT_4 = b"\x10\x04\x01", b"\x10\x04\x04"


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --- parser -----------------------------------------------------------------

def test_text_styles_alignment_and_cut_become_a_receipt():
    parser = EscposStreamParser(32)
    parser.feed(b"\x1b@\x1ba\x01centre\n\x1ba\x02right\n\x1ba\x00\x1bE\x01bold\n\x1d!\x11big\n\x1dV\x00")
    assert len(parser.receipts) == 1
    assert receipt_text(parser.receipts[0], 32) == (
        " " * 13 + "centre\n" + " " * 27 + "right\nbold\nbig\n")
    rows = parser.receipts[0].rows
    assert rows[2].segments[0].bold
    assert (rows[3].segments[0].width, rows[3].segments[0].height) == (2, 2)


def test_codepage_selects_how_bytes_become_letters():
    parser = EscposStreamParser(32)
    parser.feed(b"\x1bt\x13" + "Grüße €".encode("cp858") + b"\n\x1dV\x00")
    assert receipt_text(parser.receipts[0], 32) == "Grüße €\n"


def test_line_longer_than_the_paper_wraps_and_is_counted():
    parser = EscposStreamParser(32)
    parser.feed(b"x" * 40 + b"\n\x1dV\x00")
    assert receipt_text(parser.receipts[0], 32) == "x" * 32 + "\n" + "x" * 8 + "\n"
    assert parser.overflowed_lines == 1


def test_receipts_split_at_each_cut_and_empty_cuts_make_no_receipt():
    parser = EscposStreamParser(48)
    parser.feed(b"one\n\x1dVA\x03two\n\x1dV\x01\x1dV\x00")
    assert [receipt_text(r, 48) for r in parser.receipts] == ["one\n", "two\n"]


def test_dle_eot_requests_are_reported_in_order_even_mid_text():
    parser = EscposStreamParser(48)
    assert parser.feed(b"ab" + DLE_EOT_4 + b"c" + DLE_EOT_1 + b"\n") == [4, 1]


def test_command_split_across_reads_waits_for_its_bytes():
    parser = EscposStreamParser(48)
    assert parser.feed(b"\x10\x04") == []
    assert parser.feed(b"\x04") == [4]


def test_raster_qr_is_decoded_back_to_its_data():
    payload = frames.encode_receipt(Receipt((QrBlock("bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),)), 58)
    parser = EscposStreamParser(32)
    parser.feed(payload)
    assert "[QR: bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq]" in receipt_text(parser.receipts[0], 32)


def test_raster_image_that_is_no_qr_is_shown_with_its_size():
    parser = EscposStreamParser(48)
    image = b"\x1dv0\x00\x02\x00\x03\x00" + b"\xff\x00" * 3  # 16 x 3 dots
    parser.feed(image + b"\x1dV\x00")
    assert receipt_text(parser.receipts[0], 48) == "[QR image 16x3]\n"


settings_garbage = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
escpos_bytes = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\x1b", b"\x1d", b"\x10\x04", b"\x1dv0\x00", b"\x1d(k", b"\x1dV", b"\n", b"\x1b!",
                     b"\x1ba", b"\x1bt", b"\x1dk\x04", b"\x1b*\x21"]),
), max_size=30).map(b"".join)


@settings_garbage
@given(escpos_bytes)
def test_garbage_never_crashes_the_parser(data):
    parser = EscposStreamParser(32)
    requests = parser.feed(data)
    assert all(n in (1, 2, 3, 4) for n in requests)
    for receipt in parser.receipts:
        receipt_text(receipt, 32)


@settings_garbage
@given(escpos_bytes, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_how_the_stream_is_split_into_reads_does_not_change_what_prints(data, cuts):
    whole = EscposStreamParser(32)
    whole_requests = whole.feed(data)
    pieces = EscposStreamParser(32)
    piece_requests = []
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for start, end in zip(bounds, bounds[1:]):
        piece_requests += pieces.feed(data[start:end])
    assert piece_requests == whole_requests
    assert [receipt_text(r, 32) for r in pieces.receipts] == [receipt_text(r, 32) for r in whole.receipts]


# --- device: switches and answers ---------------------------------------------

@pytest.mark.parametrize("switch, paper", [("ok", PaperState.OK), ("near_end", PaperState.NEAR_END),
                                           ("out", PaperState.OUT)])
def test_paper_switch_sets_the_dle_eot_4_answer(switch, paper):
    printer = VirtualPrinter(80)
    printer.paper(switch)
    answer = printer.feed(DLE_EOT_4)
    assert frames.decode_paper_status(answer) is paper
    assert printer.state()["paper"] == switch


def test_offline_switch_and_paper_out_set_the_offline_bit():
    printer = VirtualPrinter(80)
    assert frames.decode_printer_status(printer.feed(DLE_EOT_1)) is False
    printer.set_offline(True)
    assert frames.decode_printer_status(printer.feed(DLE_EOT_1)) is True
    printer.set_offline(False)
    printer.paper("out")
    assert frames.decode_printer_status(printer.feed(DLE_EOT_1)) is True


def test_silent_printer_does_not_answer_but_counts_the_request():
    printer = VirtualPrinter(80)
    printer.answer_status(False)
    assert printer.feed(DLE_EOT_1 + DLE_EOT_4) == b""
    assert printer.state()["status_requests"] == 2


def test_printer_without_paper_prints_nothing():
    printer = VirtualPrinter(80)
    printer.paper("out")
    printer.feed(b"hello\n\x1dV\x00")
    assert printer.receipts() == []
    assert printer.state()["receipts_printed"] == 0


def test_unknown_paper_switch_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="ok, near_end or out"):
        VirtualPrinter(80).paper("low")


def test_png_is_paper_wide_and_shows_ink(tmp_path):
    printer = VirtualPrinter(58)
    printer.feed(frames.encode_receipt(Receipt((TextLine("Receipt", large=True), QrBlock("abc"))), 58))
    path = tmp_path / "r.png"
    printer.save_png(0, path)
    with Image.open(path) as image:
        assert image.width == 384
        assert image.height > 200
        assert image.convert("L").getextrema()[0] == 0  # something black was drawn


def test_tcp_printer_answers_status_over_the_socket():
    with VirtualPrinter(80) as printer:
        url = printer.start("tcp")
        host, port = url.removeprefix("socket://").split(":")
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(DLE_EOT_4)
            assert conn.recv(1) == frames.encode_paper_status(PaperState.OK)
            conn.sendall(b"over tcp\n\x1dV\x00")
            assert printer.wait_for_receipts(1)
    assert printer.receipts() == ["over tcp\n"]


def test_pty_printer_prints_what_is_written_to_its_path():
    printer = VirtualPrinter(80)
    path = printer.start("pty")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"over a pty\n\x1dV\x00")
            assert printer.wait_for_receipts(1)
        finally:
            os.close(fd)
    finally:
        printer.stop()
    assert printer.receipts() == ["over a pty\n"]


def test_standalone_printer_writes_png_and_text_per_receipt(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.printer", "--tcp", str(port), "--out", str(tmp_path), "--width-mm", "58"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "socket://127.0.0.1:" in process.stdout.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(frames.encode_receipt(Receipt((TextLine("standalone"),)), 58))
        assert wait_until(lambda: (tmp_path / "receipt-1.txt").exists())
        assert wait_until(lambda: (tmp_path / "receipt-1.txt").read_text() == "standalone\n")
        assert (tmp_path / "receipt-1.png").stat().st_size > 0
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_tcp_printer_takes_the_next_connection_after_one_closes():
    with VirtualPrinter(58) as printer:
        url = printer.start("tcp")
        port = int(url.rsplit(":", 1)[1])
        for text in (b"first", b"second"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(text + b"\n\x1dV\x00")
                conn.sendall(DLE_EOT_1)
                assert conn.recv(1) == frames.encode_printer_status(False)  # answered: this connection was served
    assert printer.receipts() == ["first\n", "second\n"]


def test_starting_a_running_printer_again_is_refused():
    with VirtualPrinter(80) as printer:
        url = printer.start("tcp")
        with pytest.raises(RuntimeError, match=url):
            printer.start("tcp")


def test_unplugged_printer_refuses_connections_and_answers_again_at_the_same_url_when_replugged():
    printer = VirtualPrinter(80)
    url = printer.start("tcp")
    port = int(url.rsplit(":", 1)[1])
    try:
        printer.unplug()
        assert printer.state()["plugged"] is False
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        printer.replug()
        assert printer.state()["plugged"] is True and printer.url == url
        with socket.create_connection(("127.0.0.1", port), timeout=2) as host:
            host.sendall(DLE_EOT_4)
            host.settimeout(5)
            assert host.recv(1) == frames.encode_paper_status(PaperState.OK)
    finally:
        printer.stop()
