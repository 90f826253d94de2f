"""The ID-003 simulator speaks the shared vectors byte for byte, refuses what a real
acceptor refuses, and runs standalone from the command line."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from drivers.id003.frames import Command, Frame, FrameDecoder, Status, encode_frame
from simulators.id003 import Id003Simulator

REPO = Path(__file__).parents[2]
VECTORS = json.loads((REPO / "tests" / "vectors" / "vectors.json").read_text())["id003"]["frames"]


@pytest.fixture(params=["pty", "tcp"])
def line(request):
    sim = Id003Simulator(step_s=0.01)
    url = sim.start(request.param)
    port = serial.serial_for_url(url, baudrate=9600, parity=serial.PARITY_EVEN, timeout=0.5)
    yield sim, port
    port.close()
    sim.stop()


def ask(port, raw: bytes) -> bytes:
    """Send raw bytes, return the first complete reply frame's bytes (or b"" on silence)."""
    port.reset_input_buffer()
    port.write(raw)
    decoder = FrameDecoder()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for item in decoder.feed(port.read(1)):
            if isinstance(item, Frame):
                return item.encode()
    return b""


def test_power_up_answer_is_the_shared_vector(line):
    sim, port = line
    assert ask(port, bytes.fromhex(VECTORS["host status request"])).hex(" ") == VECTORS["device power up"]


def test_idle_and_escrow_answers_are_the_shared_vectors(line):
    sim, port = line
    ask(port, bytes.fromhex(VECTORS["host reset"]))
    ask(port, bytes.fromhex(VECTORS["host inhibit off (accept)"]))
    deadline = time.monotonic() + 2
    while ask(port, bytes.fromhex(VECTORS["host status request"])).hex(" ") != VECTORS["device idling"]:
        assert time.monotonic() < deadline, "simulator never became idle"
    assert sim.insert_note(2000)
    deadline = time.monotonic() + 2
    while (reply := ask(port, bytes.fromhex(VECTORS["host status request"])).hex(" ")) != VECTORS["device escrow code 0x63"]:
        assert time.monotonic() < deadline, f"no escrow, last reply {reply}"


def test_setting_commands_are_echoed_with_their_data(line):
    sim, port = line
    raw = bytes.fromhex(VECTORS["host inhibit on"])
    assert ask(port, raw) == raw


def test_frame_with_a_bad_crc_is_answered_communication_error(line):
    sim, port = line
    raw = bytearray(bytes.fromhex(VECTORS["host status request"]))
    raw[-1] ^= 0x01
    assert ask(port, bytes(raw)) == encode_frame(Status.COMMUNICATION_ERROR)


def test_unknown_command_and_stack_without_escrow_are_invalid_commands(line):
    sim, port = line
    assert ask(port, encode_frame(0x77)) == encode_frame(Status.INVALID_COMMAND)
    assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == encode_frame(Status.INVALID_COMMAND)


def test_inhibited_acceptor_does_not_draw_a_note_in(line):
    sim, port = line
    assert sim.state()["inhibited"]
    assert not sim.insert_note(1000)


def test_currency_assign_lists_every_configured_note(line):
    sim, port = line
    reply = ask(port, encode_frame(Command.GET_CURRENCY_ASSIGN))
    data = reply[3:-2]
    assert len(data) == 8 * 4
    assert data[:4] == bytes((0x61, 0x00, 5, 0))        # 5 x 10^0 EUR


def test_fault_next_reply_drops_exactly_one_reply(line):
    sim, port = line
    sim.fault_next_reply("drop")
    assert ask(port, bytes.fromhex(VECTORS["host status request"])) == b""
    assert ask(port, bytes.fromhex(VECTORS["host status request"])) != b""


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="drop"):
        Id003Simulator().fault_next_reply("explode")


def test_standalone_simulator_serves_on_loopback_tcp():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "simulators.id003", "--tcp", "0"], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "standalone simulator printed nothing"
        line = proc.stdout.readline()
        assert "socket://127.0.0.1:" in line
        url = line.split(" at ")[1].strip()
        port = serial.serial_for_url(url, timeout=0.5)
        try:
            assert ask(port, bytes.fromhex(VECTORS["host status request"])).hex(" ") == VECTORS["device power up"]
        finally:
            port.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
