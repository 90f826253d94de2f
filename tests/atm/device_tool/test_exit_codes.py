"""One exit-code convention for every `atm device ...` command, run through the real
command line (atm.cli.main): 0 ok, 1 the device failed or refused, 2 usage or
configuration error, including a port or source that does not open. Each tool's --help
says so."""

from __future__ import annotations

import socket

import pytest

from atm.cli import main
from atm.device_tool import EXIT_DEVICE, EXIT_OK, EXIT_USAGE
from simulators.printer import VirtualPrinter

COMMANDS = ["status", "accept", "print-test", "scan"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["device", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_tools_help_states_the_exit_codes(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main(["device", command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    assert "exit codes: 0 ok; 1 the device failed or refused" in out
    assert "2 usage or configuration error, including a port or source that does not open" in out


@pytest.mark.parametrize("argv", [
    ["status", "--driver", "ccnet"],                              # --port missing
    ["accept", "--driver", "ssp", "--port", "x", "--count", "two"],
    ["print-test", "--driver", "escpos", "--port", "x", "--width-mm", "72"],
    ["scan", "--driver", "laser", "--source", "x"],
])
def test_a_bad_command_line_exits_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(["device", *argv])
    assert exit_info.value.code == EXIT_USAGE


@pytest.mark.parametrize("argv", [
    ["status", "--driver", "ccnet", "--port", "/dev/ttyNOPE-all"],
    ["accept", "--driver", "id003", "--port", "/dev/ttyNOPE-all", "--timeout", "1"],
    ["print-test", "--driver", "escpos", "--port", "/dev/ttyNOPE-all"],
    ["scan", "--driver", "serial", "--source", "/dev/ttyNOPE-all", "--timeout", "1"],
    ["scan", "--driver", "camera", "--source", "/nonexistent/ttyNOPE-all.png", "--timeout", "1"],
])
def test_a_port_or_source_that_does_not_open_exits_2_naming_it(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "ttyNOPE-all" in err


@pytest.mark.parametrize("argv", [
    ["scan", "--driver", "camera", "--source", "0", "--size", "big"],
    ["scan", "--driver", "camera", "--source", "0", "--timeout", "0"],
    ["print-test", "--driver", "escpos", "--port", "usb://not-a-vid-pid"],
    ["status", "--driver", "ccnet", "--port", "socket://127.0.0.1:9", "--currency", "EUR", "--denomination", "3"],
])
def test_a_configuration_error_exits_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE and err.strip()


@pytest.fixture
def silent_port():
    """Accepts the connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.mark.parametrize("argv", [
    ["status", "--driver", "ccnet", "--port", "{port}"],
    ["status", "--driver", "ssp", "--port", "{port}"],
    ["print-test", "--driver", "escpos", "--port", "{port}", "--link", "two-way", "--status-timeout", "0.2"],
    ["scan", "--driver", "serial", "--source", "{port}", "--timeout", "0.5"],
])
def test_a_device_that_does_not_answer_exits_1(capsys, silent_port, argv):
    code, out, err = run(capsys, *[a.replace("{port}", silent_port) for a in argv])
    assert code == EXIT_DEVICE and err.strip()


def test_a_printer_out_of_paper_exits_1_and_a_good_print_exits_0(capsys):
    printer = VirtualPrinter(58)
    url = printer.start("tcp")
    try:
        code, out, err = run(capsys, "print-test", "--driver", "escpos", "--port", url, "--width-mm", "58")
        assert code == EXIT_OK and "paper ok" in out
        printer.paper("out")
        code, out, err = run(capsys, "print-test", "--driver", "escpos", "--port", url, "--width-mm", "58")
        assert code == EXIT_DEVICE and "paper out" in err
    finally:
        printer.stop()
