"""SerialScanner against the scanner simulator over a pty and a loopback TCP
socket: codes while armed, nothing while disarmed, bad lines skipped, trigger
commands sent, and a dropped connection reported and recovered."""

from __future__ import annotations

import pytest

from drivers.serial_scanner.driver import SerialScanner
from hal.errors import ConfigurationError, PortError
from hal.events import CodeScanned
from hal.status import DeviceState
from simulators.serial_scanner import SerialScannerSimulator

CODE = "bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4?amount=0.001"
OTHER = "atmredeem:R-7F3K-92QX"


@pytest.fixture(params=["pty", "tcp"])
def link(request):
    """A started simulator and a scanner driver opened on its URL."""
    sim = SerialScannerSimulator(terminator="crlf")
    url = sim.start(request.param)
    scanners: list[SerialScanner] = []

    def open_scanner(recorder, **options) -> SerialScanner:
        options.setdefault("retry_initial_s", 0.02)
        options.setdefault("retry_max_s", 0.1)
        scanner = SerialScanner(url, **options)
        scanners.append(scanner)
        scanner.open(recorder)
        return scanner

    yield sim, open_scanner
    for scanner in scanners:
        scanner.close()
    sim.stop()


def test_armed_scanner_reports_each_line_as_a_code(link, recorder):
    sim, open_scanner = link
    scanner = open_scanner(recorder)
    assert scanner.state is DeviceState.ONLINE
    scanner.start_scanning()
    sim.scan(CODE)
    sim.scan(OTHER)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 2)
    assert [(c.text, c.decoder, c.device) for c in recorder.codes()] == [
        (CODE, "serial", "scanner"), (OTHER, "serial", "scanner")]


def test_codes_read_while_disarmed_are_drained_and_never_reported(link, recorder, wait_until):
    sim, open_scanner = link
    scanner = open_scanner(recorder)
    sim.scan("stale code")
    assert wait_until(lambda: scanner.stats()["ignored_unarmed"] == 1)
    scanner.start_scanning()
    sim.scan(CODE)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert recorder.codes()[0].text == CODE
    scanner.stop_scanning()
    sim.scan(OTHER)
    assert wait_until(lambda: scanner.stats()["ignored_unarmed"] == 2)
    assert len(recorder.codes()) == 1


def test_garbage_between_codes_is_skipped_and_the_next_code_read(link, recorder, wait_until):
    sim, open_scanner = link
    scanner = open_scanner(recorder, max_length=128)
    scanner.start_scanning()
    sim.send_raw(b"\xff\xfe\x00\x01\r\n")
    sim.send_raw(b"x" * 300)
    sim.send_raw(b"\r\n")
    sim.scan(CODE)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert recorder.codes()[0].text == CODE
    assert scanner.stats()["bad_lines"] == 2


def test_the_same_code_twice_in_quick_succession_is_reported_once(link, recorder, wait_until):
    sim, open_scanner = link
    scanner = open_scanner(recorder, dedupe_seconds=3600)
    scanner.start_scanning()
    sim.scan(CODE)
    sim.scan(CODE)
    sim.scan(OTHER)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 2)
    assert scanner.stats()["suppressed"] == 1
    assert [c.text for c in recorder.codes()] == [CODE, OTHER]


def test_arm_and_disarm_commands_are_sent_to_the_scanner(link, recorder, wait_until):
    sim, open_scanner = link
    scanner = open_scanner(recorder, arm_command="16540d", disarm_command="16550d")
    scanner.start_scanning()
    assert wait_until(lambda: sim.received() == b"\x16T\r")
    scanner.stop_scanning()
    assert wait_until(lambda: sim.received() == b"\x16T\r\x16U\r")


def test_dropped_tcp_connection_goes_offline_and_recovers(recorder, wait_until):
    with SerialScannerSimulator() as sim:
        url = sim.start("tcp")
        scanner = SerialScanner(url, retry_initial_s=0.02, retry_max_s=0.1)
        try:
            scanner.open(recorder)
            scanner.start_scanning()
            # The TCP handshake completes before the simulator accepts; hang up what it accepted.
            assert wait_until(lambda: sim.state()["connections"] == 1)
            sim.hang_up()
            assert recorder.wait_for(lambda events: DeviceState.OFFLINE in recorder.states())
            assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
            sim.scan(CODE)
            assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [CODE])
            assert scanner.stats()["port_drops"] >= 1
        finally:
            scanner.close()


def test_port_that_does_not_open_raises_a_port_error_naming_it(recorder, tmp_path):
    missing = str(tmp_path / "ttyUSB9")
    scanner = SerialScanner(missing)
    try:
        with pytest.raises(PortError, match="ttyUSB9"):
            scanner.open(recorder)
        assert scanner.state is DeviceState.OFFLINE
    finally:
        scanner.close()


def test_scanner_unplugged_at_open_is_retried_and_comes_online_when_plugged_in(recorder):
    with SerialScannerSimulator() as sim:
        url = sim.start("tcp")
        sim.unplug()
        scanner = SerialScanner(url, retry_initial_s=0.02, retry_max_s=0.1)
        try:
            with pytest.raises(PortError, match=url):
                scanner.open(recorder)
            sim.replug()
            assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
            scanner.start_scanning()
            sim.scan(CODE)
            assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [CODE])
        finally:
            scanner.close()


def test_pulled_cable_keeps_the_scanner_offline_until_it_is_back(recorder, wait_until):
    with SerialScannerSimulator() as sim:
        url = sim.start("tcp")
        scanner = SerialScanner(url, retry_initial_s=0.02, retry_max_s=0.05)
        try:
            scanner.open(recorder)
            assert wait_until(lambda: sim.state()["connections"] == 1)
            sim.unplug()
            assert recorder.wait_for(lambda events: DeviceState.OFFLINE in recorder.states())
            # Several refused reopens later it is still offline: nothing was accepted meanwhile.
            assert wait_until(lambda: "retrying" in scanner.detail)
            assert scanner.state is DeviceState.OFFLINE and sim.state()["connections"] == 1
            sim.replug()
            assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
            assert wait_until(lambda: sim.state()["connections"] == 2)
        finally:
            scanner.close()


def test_take_away_drops_codes_not_yet_sent_to_a_host():
    with SerialScannerSimulator() as sim:
        sim.start("tcp")
        sim.scan(CODE)            # no host connected: the code waits
        assert sim.state()["pending"] == 1
        sim.take_away()
        assert sim.state()["pending"] == 0


def test_close_stops_the_reader_and_reports_offline(link, recorder):
    sim, open_scanner = link
    scanner = open_scanner(recorder)
    scanner.close()
    scanner.close()
    assert scanner.state is DeviceState.OFFLINE
    assert recorder.states()[-1] is DeviceState.OFFLINE


@pytest.mark.parametrize("options,words", [
    ({"terminator": "tab"}, "terminator"),
    ({"arm_command": "zz"}, "hex"),
    ({"dedupe_seconds": -1}, "dedupe"),
    ({"encoding": "klingon"}, "klingon"),
])
def test_bad_scanner_configuration_is_refused_with_the_key(options, words):
    with pytest.raises(ConfigurationError, match=words):
        SerialScanner("socket://127.0.0.1:1", **options)


def test_sink_errors_do_not_stop_the_reader(link, wait_until):
    sim, open_scanner = link
    seen = []

    def bad_sink(event):
        seen.append(event)
        raise RuntimeError("application bug")

    scanner = open_scanner(bad_sink)
    scanner.start_scanning()
    sim.scan(CODE)
    sim.scan(OTHER)
    assert wait_until(lambda: sum(isinstance(e, CodeScanned) for e in seen) == 2)


def test_present_sends_the_code_like_the_camera_simulators_control(link, recorder):
    sim, open_scanner = link
    scanner = open_scanner(recorder)
    scanner.start_scanning()
    sim.present(CODE, distortion="glare")
    assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [CODE])
