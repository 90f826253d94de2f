"""`atm device print-test` against the virtual printer, including the ways it must fail."""

from __future__ import annotations

import json
import socket

import pytest

from atm.device_tool.printer import TEST_QR, main
from simulators.printer import VirtualPrinter


@pytest.fixture
def virtual():
    printer = VirtualPrinter(58)
    printer.start("tcp")
    yield printer
    printer.stop()


@pytest.fixture
def silent_url():
    """A port that accepts the connection and never answers (backlog only, nobody reads)."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def run_json(capsys, *argv):
    code = main(["print-test", "--driver", "escpos", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_print_test_prints_a_receipt_fitted_to_the_paper_and_reports_paper_ok(virtual, capsys):
    code = main(["print-test", "--driver", "escpos", "--port", virtual.url, "--width-mm", "58"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "paper ok" in out and virtual.url in out
    assert virtual.wait_for_receipts(1)
    text = virtual.receipts()[0]
    assert "12345678901234567890123456789012\n" in text
    assert f"[QR: {TEST_QR}]" in text
    assert virtual.state()["overflowed_lines"] == 0


def test_print_test_json_reports_near_end(virtual, capsys):
    virtual.paper("near_end")
    code, result, _ = run_json(capsys, "--port", virtual.url, "--width-mm", "58")
    assert code == 0
    assert result["printed"] is True
    assert (result["state"], result["paper"]) == ("online", "nearEnd")
    assert result["driver"] == "escpos" and result["port"] == virtual.url


def test_print_test_with_native_qr_prints_the_printers_own_qr(virtual, capsys):
    code, result, _ = run_json(capsys, "--port", virtual.url, "--width-mm", "58", "--native-qr")
    assert code == 0
    assert virtual.wait_for_receipts(1)
    assert f"[QR: {TEST_QR}]" in virtual.receipts()[0]


def test_print_test_with_paper_out_fails_and_says_so(virtual, capsys):
    virtual.paper("out")
    code, result, err = run_json(capsys, "--port", virtual.url, "--width-mm", "58")
    assert code != 0
    assert result["printed"] is False
    assert result["paper"] == "out"
    assert "paper out" in result["error"] and "paper out" in err
    assert virtual.receipts() == []


def test_print_test_on_a_port_that_does_not_open_fails_naming_the_port(capsys):
    code = main(["print-test", "--driver", "escpos", "--port", "socket://127.0.0.1:1"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "cannot open" in err and "socket://127.0.0.1:1" in err


def test_print_test_on_a_silent_two_way_printer_fails(silent_url, capsys):
    code, result, err = run_json(capsys, "--port", silent_url, "--link", "two-way", "--status-timeout", "0.2")
    assert code != 0
    assert result["paper"] == "unknown"
    assert "does not answer" in err


def test_print_test_on_a_silent_auto_link_prints_but_reports_paper_unknown(silent_url, capsys):
    code, result, _ = run_json(capsys, "--port", silent_url, "--status-timeout", "0.2")
    assert code == 0
    assert result["paper"] == "unknown"


def test_print_test_with_a_malformed_usb_url_fails_with_the_expected_form(capsys):
    code = main(["print-test", "--driver", "escpos", "--port", "usb://printer"])
    _, err = capsys.readouterr()
    assert code != 0
    assert "usb://VID:PID" in err


def test_print_test_is_reachable_through_the_atm_command_line(virtual, capsys):
    from atm.cli import main as atm_main

    code = atm_main(["device", "print-test", "--driver", "escpos", "--port", virtual.url, "--width-mm", "58",
                     "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1])["paper"] == "ok"
