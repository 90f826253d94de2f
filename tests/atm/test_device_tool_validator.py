"""`atm device status|accept` against the ID-003, SSP and ccNet simulators (pty and TCP),
and the error paths a technician meets, each with its exit code (0 ok, 1 the device failed
or refused, 2 usage or configuration error including a port that does not open)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hypothesis import example, given, settings, strategies as st

from atm.device_tool import EXIT_DEVICE, EXIT_OK, EXIT_USAGE
from atm.device_tool.validator import _parse_denominations, event_dict, main
from hal.errors import ConfigurationError
from hal.events import NoteCredited, NoteReturned
from hal.money import Fiat
from simulators.id003 import Id003Simulator


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True


@pytest.fixture(params=["pty", "tcp"])
def sim(request):
    simulator = Id003Simulator(step_s=0.02)
    simulator.start(request.param)
    yield simulator
    simulator.stop()


def feed_notes(sim: Id003Simulator, notes: list[int]) -> threading.Thread:
    """A customer: each note goes in when the acceptor is enabled and idle."""

    def customer():
        for minor in notes:
            if not wait_until(lambda: sim.insert_note(minor)):
                return

    thread = threading.Thread(target=customer, daemon=True)
    thread.start()
    return thread


def run_json(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_status_reports_identity_denominations_and_state(sim, capsys):
    code, result = run_json(capsys, ["status", "--driver", "id003", "--port", sim.url, "--json"])
    assert code == EXIT_OK
    assert result["driver"] == "id003"
    assert result["device"] == {"model": "U(EUR5)-700-SS", "firmware": "ID003-05V027-00 05DEC24", "serial": ""}
    assert result["currency"] == "EUR"
    assert result["denominations"] == [500, 1000, 2000, 5000, 10000, 20000]
    assert result["table"]["0x61"] == 500
    assert result["state"] == "online"


def test_status_in_text_names_the_model_and_the_notes(sim, capsys):
    assert main(["status", "--driver", "id003", "--port", sim.url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "U(EUR5)-700-SS" in out and "200.00 EUR" in out and "online" in out


@pytest.mark.slow
def test_accept_stops_after_the_count_of_credited_notes(sim, capsys):
    feed_notes(sim, [1000, 2000, 500])
    code, result = run_json(capsys, ["accept", "--driver", "id003", "--port", sim.url, "--count", "2",
                                     "--timeout", "20", "--json"])
    assert code == EXIT_OK
    assert result["credited"] == [1000, 2000]
    assert result["total_minor"] == 3000
    assert result["ended"] == "count"
    assert result["currency"] == "EUR"
    assert result["device"]["model"] == "U(EUR5)-700-SS"
    assert sim.state()["stacked"] == [1000, 2000]
    types = [e["type"] for e in result["events"]]
    assert types.count("NoteCredited") == 2
    assert types.index("NoteEscrowed") < types.index("NoteCredited")


def test_accept_returns_the_note_that_would_pass_the_maximum(sim, capsys):
    feed_notes(sim, [1000, 1000])
    code, result = run_json(capsys, ["accept", "--driver", "id003", "--port", sim.url, "--count", "5",
                                     "--max-total", "1500", "--timeout", "20", "--json"])
    assert code == EXIT_OK
    assert result["credited"] == [1000]
    assert result["returned"] == [1000]
    assert result["ended"] == "max-total"
    assert wait_until(lambda: sim.state()["returned"] == [1000])
    assert sim.state()["stacked"] == [1000]


def test_accept_ends_at_the_timeout_with_nothing_inserted(sim, capsys):
    code, result = run_json(capsys, ["accept", "--driver", "id003", "--port", sim.url, "--count", "1",
                                     "--timeout", "0.5", "--json"])
    assert code == EXIT_OK
    assert result["credited"] == [] and result["total_minor"] == 0 and result["ended"] == "timeout"
    assert sim.state()["inhibited"]


def test_accept_in_text_prints_the_total(sim, capsys):
    feed_notes(sim, [5000])
    assert main(["accept", "--driver", "id003", "--port", sim.url, "--timeout", "20"]) == EXIT_OK
    assert "50.00 EUR" in capsys.readouterr().out


def test_accept_returns_a_note_with_no_configured_value(sim, capsys):
    feed_notes(sim, [500, 1000])
    code, result = run_json(capsys, ["accept", "--driver", "id003", "--port", sim.url, "--currency", "EUR",
                                     "--denomination", "0x62=1000", "--timeout", "20", "--json"])
    assert code == EXIT_OK
    assert result["credited"] == [1000]
    assert sim.state()["stacked"] == [1000]
    assert {"type": "NoteReturned", "value": None, "reason": "unknown denomination"} in result["events"]


def test_port_that_does_not_open_exits_with_a_message_naming_it(capsys):
    code = main(["accept", "--driver", "id003", "--port", "/dev/ttyNOPE-tool", "--json"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "/dev/ttyNOPE-tool" in err and "did not open" in err


class Peer:
    """A loopback TCP peer that stays silent or answers every request with garbage."""

    def __init__(self, garbage: bool):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(0.1)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.garbage = garbage
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            conn.settimeout(0.05)
            with conn:
                while not self.stop.is_set():
                    try:
                        data = conn.recv(64)
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    if self.garbage:
                        conn.sendall(b"\x7f\x80\x01\xf0\x23\x80 this is not id003 \xfc\x09")

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)
        self.server.close()


@pytest.mark.parametrize("garbage, exit_code, words", [
    (False, EXIT_DEVICE, "did not answer"),
    (True, EXIT_DEVICE, "not its protocol"),
])
@pytest.mark.parametrize("command", ["status", "accept"])
def test_bad_peer_exits_non_zero_with_a_message_a_technician_can_act_on(capsys, garbage, exit_code, words, command):
    peer = Peer(garbage)
    try:
        code = main([command, "--driver", "id003", "--port", peer.url, "--json"])
    finally:
        peer.close()
    captured = capsys.readouterr()
    assert code == exit_code
    assert words in captured.err and peer.url in captured.err
    assert captured.out == ""


def test_bad_denomination_option_is_a_clear_error(sim, capsys):
    code = main(["status", "--driver", "id003", "--port", sim.url, "--currency", "EUR", "--denomination", "0x61"])
    assert code == EXIT_USAGE
    assert "CODE=MINOR" in capsys.readouterr().err


def test_a_note_escrowed_after_the_count_is_returned_not_left_in_escrow(sim, capsys):
    taken = []

    def second_note_right_after_the_first():
        # The customer pushes a second note the moment the acceptor is idle again,
        # before the tool's next poll can inhibit it.
        wait_until(lambda: sim.state()["state"] in ("stacking", "vend_valid", "stacked"))
        wait_until(lambda: sim.state()["state"] == "idle")
        taken.append(sim.insert_note(2000))

    feed_notes(sim, [1000])
    threading.Thread(target=second_note_right_after_the_first, daemon=True).start()
    code, result = run_json(capsys, ["accept", "--driver", "id003", "--port", sim.url, "--count", "1",
                                     "--timeout", "20", "--json"])
    assert code == EXIT_OK
    assert taken == [True]
    assert result["credited"] == [1000]
    assert result["returned"] == [2000]
    assert wait_until(lambda: sim.state()["returned"] == [2000])
    assert sim.state()["stacked"] == [1000]


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_the_same_tool_drives_an_ssp_validator(capsys, transport):
    from simulators.ssp import SspSimulator
    simulator = SspSimulator()
    url = simulator.start(transport)
    try:
        code, status = run_json(capsys, ["status", "--driver", "ssp", "--port", url, "--json"])
        assert code == EXIT_OK
        assert status["device"]["serial"] != "" and status["currency"] == "EUR"
        assert 1000 in status["denominations"]

        def customer():
            if wait_until(lambda: simulator.state()["enabled"]):
                simulator.insert_note(1000)

        threading.Thread(target=customer, daemon=True).start()
        code, result = run_json(capsys, ["accept", "--driver", "ssp", "--port", url, "--count", "1",
                                         "--timeout", "20", "--json"])
        assert code == EXIT_OK
        assert result["credited"] == [1000] and result["total_minor"] == 1000 and result["ended"] == "count"
    finally:
        simulator.stop()


def test_events_serialise_money_as_minor_units():
    assert event_dict(NoteCredited(device="validator", value=Fiat(2000, "EUR"), code="0x63")) == {
        "type": "NoteCredited", "value": 2000, "code": "0x63"}
    assert event_dict(NoteReturned(device="validator", value=None, reason="x")) == {
        "type": "NoteReturned", "value": None, "reason": "x"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=4))
@example(["0x61=\u00b2"])           # a superscript digit: isdigit() but not int()
def test_denomination_options_parse_or_raise_a_configuration_error(items):
    try:
        table = _parse_denominations(items)
    except ConfigurationError as exc:
        assert "CODE=MINOR" in str(exc)
        return
    assert table is None or all(isinstance(v, int) and v >= 0 for v in table.values())


# -- ccNet, --encrypted, exit codes for every failure kind ----------------------------------

@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_the_same_tool_drives_a_ccnet_validator(capsys, transport):
    from simulators.ccnet import CcnetSimulator
    simulator = CcnetSimulator(step_s=0.02)
    url = simulator.start(transport)
    try:
        code, status = run_json(capsys, ["status", "--driver", "ccnet", "--port", url, "--json"])
        assert code == EXIT_OK
        assert status["device"] == {"model": "SM-SIM-3300", "firmware": "", "serial": "CCSIM0000001"}
        assert status["currency"] == "EUR" and status["state"] == "online"
        assert status["denominations"] == [500, 1000, 2000, 5000, 10000, 20000]
        assert status["table"]["0x03"] == 1000

        def customer():
            for minor in (2000, 500):
                wait_until(lambda: simulator.insert_note(minor))

        threading.Thread(target=customer, daemon=True).start()
        code, result = run_json(capsys, ["accept", "--driver", "ccnet", "--port", url, "--count", "2",
                                         "--timeout", "20", "--json"])
        assert code == EXIT_OK
        assert result["credited"] == [2000, 500] and result["total_minor"] == 2500 and result["ended"] == "count"
        assert simulator.state()["stacked"] == [2000, 500]
    finally:
        simulator.stop()


def test_accept_with_ccnet_denomination_override_takes_only_the_configured_notes(capsys):
    from simulators.ccnet import CcnetSimulator
    simulator = CcnetSimulator(step_s=0.02)
    url = simulator.start("tcp")
    try:
        feed = threading.Thread(target=lambda: wait_until(lambda: simulator.insert_note(500)), daemon=True)
        feed.start()
        code, result = run_json(capsys, ["accept", "--driver", "ccnet", "--port", url, "--currency", "EUR",
                                         "--denomination", "3=1000", "--timeout", "2", "--json"])
        assert code == EXIT_OK
        assert result["credited"] == [] and result["ended"] == "timeout"
        # The unit itself refused the 5.00 note: only bill type 3 was enabled.
        assert {"type": "NoteRejected", "reason": "denomination inhibited", "code": "0x68"} in result["events"]
    finally:
        simulator.stop()


@pytest.mark.parametrize("transport", ["tcp"])
def test_encrypted_ssp_status_and_accept_run_over_essp(capsys, transport):
    from simulators.ssp import SspSimulator
    simulator = SspSimulator()
    url = simulator.start(transport)
    try:
        code, status = run_json(capsys, ["status", "--driver", "ssp", "--port", url, "--encrypted", "--json"])
        assert code == EXIT_OK
        assert simulator.state()["encrypted"] is True

        def customer():
            if wait_until(lambda: simulator.state()["enabled"]):
                simulator.insert_note(1000)

        threading.Thread(target=customer, daemon=True).start()
        code, result = run_json(capsys, ["accept", "--driver", "ssp", "--port", url, "--encrypted", "--count", "1",
                                         "--timeout", "20", "--json"])
        assert code == EXIT_OK and result["credited"] == [1000]
    finally:
        simulator.stop()


@pytest.mark.parametrize("driver", ["id003", "ccnet"])
def test_encrypted_on_a_driver_without_encryption_is_a_usage_error(capsys, driver):
    code = main(["status", "--driver", driver, "--port", "socket://127.0.0.1:9", "--encrypted"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "--encrypted is for --driver ssp" in err


@pytest.mark.parametrize("driver", ["id003", "ssp", "ccnet"])
@pytest.mark.parametrize("command", ["status", "accept"])
def test_every_driver_exits_2_when_the_port_does_not_open(capsys, driver, command):
    argv = [command, "--driver", driver, "--port", "/dev/ttyNOPE-exit"]
    code = main(argv + (["--timeout", "1"] if command == "accept" else []))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "/dev/ttyNOPE-exit" in err


@pytest.mark.parametrize("garbage", [False, True])
def test_a_silent_or_garbage_peer_exits_1_for_ccnet_too(capsys, garbage):
    peer = Peer(garbage)
    try:
        code = main(["status", "--driver", "ccnet", "--port", peer.url])
    finally:
        peer.close()
    assert code == EXIT_DEVICE and peer.url in capsys.readouterr().err


def test_count_below_one_is_a_usage_error(capsys):
    code = main(["accept", "--driver", "ccnet", "--port", "socket://127.0.0.1:9", "--count", "0"])
    assert code == EXIT_USAGE and "--count" in capsys.readouterr().err


def test_an_unknown_driver_is_refused_by_the_command_line_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--driver", "mdb", "--port", "socket://127.0.0.1:9"])
    assert exit_info.value.code == EXIT_USAGE


def test_a_validator_that_goes_silent_during_accept_exits_1(capsys):
    from simulators.ccnet import CcnetSimulator
    simulator = CcnetSimulator(step_s=0.02)
    url = simulator.start("tcp")
    try:
        def pull_the_cable():
            wait_until(lambda: simulator.state()["state"] == "idle_enabled")
            simulator.fault_next_reply("drop", count=10_000)

        threading.Thread(target=pull_the_cable, daemon=True).start()
        code = main(["accept", "--driver", "ccnet", "--port", url, "--timeout", "3"])
    finally:
        simulator.stop()
    assert code == EXIT_DEVICE
    assert "stopped answering" in capsys.readouterr().err
