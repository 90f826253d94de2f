"""The LCDM simulator on the wire, byte for byte: the fact sheet's example exchanges, the
handshake (ACK, repeat on silence and NAK, at most three sends, the 4000's closing EOT),
RESET's two answers, unknown commands, and the standalone `python -m simulators.lcdm`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from simulators.lcdm import LcdmSimulator

EXAMPLES = {(row["model"], row["name"]): bytes.fromhex(row["hex"])
            for row in json.loads((Path(__file__).resolve().parents[1] / "vectors" / "lcdm-examples.json")
                                  .read_text())["frames"]}


class Line:
    """The host end of the pty, read with deadlines."""

    def __init__(self, url: str):
        self.port = serial.serial_for_url(url, baudrate=9600, timeout=0.05)

    def send(self, raw: bytes) -> None:
        self.port.write(raw)

    def read(self, n: int, timeout: float = 3.0) -> bytes:
        deadline = time.monotonic() + timeout
        got = b""
        while len(got) < n and time.monotonic() < deadline:
            got += self.port.read(n - len(got))
        return got

    def quiet_for(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        got = b""
        while time.monotonic() < deadline:
            got += self.port.read(64)
        return got

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def line_for():
    opened = []

    def make(model: str, cassettes) -> tuple[LcdmSimulator, Line]:
        sim = LcdmSimulator(model, cassettes, note_s=0.0, reset_s=0.2)
        sim.start("pty")
        line = Line(sim.url)
        opened.append((sim, line))
        return sim, line

    yield make
    for sim, line in opened:
        line.close()
        sim.stop()


def test_lcdm2000_answers_the_example_frames_byte_for_byte(line_for):
    sim, line = line_for("lcdm2000", [(2000, 100), (5000, 100)])
    for ask, answer in (("status", "status response, healthy"), ("rom version", "rom version response"),
                        ("purge", "purge response"), ("upper dispense 3", "response: 3 out"),
                        ("upper 3 + lower 2", "response: all out"), ("upper test", "upper test response")):
        line.send(EXAMPLES[("lcdm2000", ask)])
        expected = EXAMPLES[("lcdm2000", answer)]
        assert line.read(1 + len(expected)) == b"\x06" + expected, ask
        line.send(b"\x06")
        assert line.quiet_for(0.05) == b""                  # no EOT after the ACK on the 2000
    assert sim.delivered() == [6, 2]


def test_lcdm2000_double_pick_and_empty_cassette_match_the_examples(line_for):
    sim, line = line_for("lcdm2000", [(2000, 100), (5000, 2)])
    sim.set_double_picks(1)
    line.send(EXAMPLES[("lcdm2000", "upper dispense 3")])
    expected = EXAMPLES[("lcdm2000", "response: 3 out, 1 rejected")]
    assert line.read(1 + len(expected)) == b"\x06" + expected
    line.send(b"\x06")
    line.send(EXAMPLES[("lcdm2000", "lower dispense 5")])
    expected = EXAMPLES[("lcdm2000", "response: lower empty after 2 out")]
    assert line.read(1 + len(expected)) == b"\x06" + expected
    line.send(b"\x06")


def test_lcdm4000_answers_the_example_frames_and_closes_with_eot(line_for):
    sim, line = line_for("lcdm4000", [(1000, 100), (2000, 100)])
    for ask, answer in (("status", "status response, cassettes 1-2"), ("dispense 3 from cassette 1", "response: 3 out"),
                        ("purge", "purge response")):
        line.send(EXAMPLES[("lcdm4000", ask)])
        expected = EXAMPLES[("lcdm4000", answer)]
        assert line.read(1 + len(expected)) == b"\x06" + expected, ask
        line.send(b"\x06")
        assert line.read(1) == b"\x04"


def test_lcdm4000_jam_last_status_and_double_pick_examples(line_for):
    sim, line = line_for("lcdm4000", [(1000, 100), (2000, 100)])

    def exchange(ask: str, answer: str) -> None:
        line.send(EXAMPLES[("lcdm4000", ask)])
        expected = EXAMPLES[("lcdm4000", answer)]
        assert line.read(1 + len(expected)) == b"\x06" + expected, ask
        line.send(b"\x06")
        assert line.read(1) == b"\x04"

    sim.set_double_picks(1)
    exchange("dispense 3 from cassette 1", "response: 3 out, 1 rejected")
    sim.jam_after(1)
    exchange("dispense 3 from cassette 1", "response: jam after 1 out")
    line.send(EXAMPLES[("lcdm4000", "last status")])
    raw = line.read(1 + 21)
    assert raw[:1] == b"\x06" and raw[5] == 0x52 and raw[6] == 0x24 and raw[8] == 0x21   # LASTCMD, ERR, EXIT c1
    line.send(b"\x06")
    assert line.read(1) == b"\x04"


def test_a_response_is_repeated_on_silence_and_nak_three_sends_at_most(line_for):
    sim, line = line_for("lcdm4000", [(1000, 100)])
    line.send(EXAMPLES[("lcdm4000", "status")])
    assert line.read(1) == b"\x06"
    first = line.read(24)
    line.send(b"\x15")                                        # NAK: send it again
    assert line.read(24) == first
    again = line.quiet_for(1.3)                               # silence: the third and last send
    assert again == first
    assert line.quiet_for(0.7) == b""


def test_a_bad_bcc_is_nakked_and_nothing_is_done(line_for):
    sim, line = line_for("lcdm2000", [(2000, 100), (5000, 100)])
    raw = EXAMPLES[("lcdm2000", "upper dispense 3")]
    line.send(raw[:-1] + b"\x00")
    assert line.read(1) == b"\x15"
    assert sim.dispense_commands == 0 and sim.delivered() == [0, 0]


def test_unknown_commands_get_the_models_undefined_command_code(line_for):
    for model, dev, code in (("lcdm2000", 0x50, 0x37), ("lcdm4000", 0x30, 0x50)):
        sim, line = line_for(model, [(2000, 10)])
        from drivers.lcdm.frames import command, response
        line.send(command(dev, 0x7A))
        expected = response(dev, 0x7A, bytes((code,)))
        assert line.read(1 + len(expected)) == b"\x06" + expected


def test_lcdm4000_reset_answers_twice(line_for):
    sim, line = line_for("lcdm4000", [(1000, 10)])
    line.send(EXAMPLES[("lcdm4000", "reset")])
    answer = EXAMPLES[("lcdm4000", "reset response")]
    assert line.read(1 + len(answer)) == b"\x06" + answer
    line.send(b"\x06")
    assert line.read(1) == b"\x04"
    assert line.read(len(answer)) == answer                 # the second, after the motor reset
    line.send(b"\x06")
    assert line.read(1) == b"\x04"


def test_standalone_simulator_serves_a_driver_over_tcp(recorder):
    from drivers.lcdm.driver import LcdmDispenser
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "simulators.lcdm", "--tcp", str(port), "--model", "lcdm2000",
                             "--cassette", "2000x5", "--cassette", "5000x50", "--note-s", "0"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        banner = proc.stdout.readline()
        assert f"socket://127.0.0.1:{port}" in banner
        driver = LcdmDispenser(f"socket://127.0.0.1:{port}", model="lcdm2000", response_timeout=2.0)
        driver.open(recorder)
        try:
            status = driver.status()
            assert [(c.present, c.near_end) for c in status.cassettes] == [(True, True), (True, False)]
        finally:
            driver.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_lcdm4000_settings_and_diagnostics_round_trip_through_the_codec(line_for):
    from drivers.lcdm.frames import (Cmd4000, FrameDecoder, command, diagnostics_4000, nibbles_4000,
                                     parse_ack_4000, parse_diagnostics_4000, parse_nibbles_4000,
                                     parse_pick_order_4000, pick_order_4000, response_length_4000)
    sim, line = line_for("lcdm4000", [(1000, 20), (2000, 20)])
    decoder = FrameDecoder(start=0x01, device_id=0x30, length_for=response_length_4000)

    def ask(cmd: int, data: bytes = b""):
        line.send(command(0x30, cmd, data))
        raw = line.read(1 + response_length_4000(cmd))
        line.send(b"\x06")
        assert line.read(1) == b"\x04"
        items = list(decoder.feed(raw))
        assert items[0] == 0x06 and len(items) == 2
        return items[1]

    assert parse_ack_4000(ask(Cmd4000.SET_OPACITY, nibbles_4000([0x5A, 0, 0x33, 0]))).ok
    assert parse_nibbles_4000(ask(Cmd4000.GET_OPACITY))[1] == (0x5A, 60, 0x33, 60)     # 0 keeps the stored value
    assert parse_ack_4000(ask(Cmd4000.SET_LENGTH, nibbles_4000([150, 150, 0, 0]))).ok
    assert parse_nibbles_4000(ask(Cmd4000.GET_LENGTH))[1] == (150, 150, 140, 140)
    assert parse_ack_4000(ask(Cmd4000.SET_PICK_ORDER, pick_order_4000([2, 1, 3, 4]))).ok
    assert parse_pick_order_4000(ask(Cmd4000.GET_PICK_ORDER))[1] == (2, 1, 3, 4)
    assert parse_ack_4000(ask(Cmd4000.SET_PICK_ORDER, b"1123")).value == 0x51
    report = parse_diagnostics_4000(ask(Cmd4000.SENSOR_DIAGNOSTICS, diagnostics_4000(2)))
    assert report.error.ok and report.rejected == 5 and report.length == 150
    assert sim.state()["reject_tray"] == 5 and sim.state()["cassettes"][1]["count"] == 15
    assert sim.delivered() == [0, 0, 0, 0]


def test_simulator_keeps_serving_after_garbage_on_the_line(line_for):
    import random
    sim, line = line_for("lcdm2000", [(2000, 10), (5000, 10)])
    rng = random.Random(7)
    for n in range(40):
        line.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))))
        if n % 10 == 0:
            line.send(b"\x04\x50\x07\x46")           # a start byte with no STX after it
    time.sleep(0.3)                              # longer than a frame may take: any half frame is dropped
    line.quiet_for(0.1)
    line.send(EXAMPLES[("lcdm2000", "status")])
    got = line.quiet_for(0.5)
    assert b"\x06\x01\x50\x02\x46" in got          # ACK, then a STATUS answer: the unit still serves
    assert sim.bad_frames_received > 0
