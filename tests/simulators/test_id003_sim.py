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

from drivers.id003.frames import Command, Frame, FrameDecoder, Status, encode_frame, version_currency
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


def status(port) -> bytes:
    return ask(port, bytes.fromhex(VECTORS["host status request"]))


def poll_until(port, wanted: bytes, *, limit: int = 500) -> list[bytes]:
    """Status requests every 10 ms, as a host polls, until the answer is `wanted`
    (bounded in count); returns every answer seen."""
    seen = []
    for _ in range(limit):
        seen.append(status(port))
        if seen[-1] == wanted:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"never answered {wanted.hex(' ')}; last answers {[r.hex(' ') for r in seen[-5:]]}")


def to_idle(port) -> None:
    """Reset, accept, and wait until the unit idles enabled."""
    assert ask(port, bytes.fromhex(VECTORS["host reset"])) == encode_frame(Status.ACK)
    poll_until(port, encode_frame(Status.DISABLE))
    raw = bytes.fromhex(VECTORS["host inhibit off (accept)"])
    assert ask(port, raw) == raw
    poll_until(port, encode_frame(Status.ENABLE))


def escrow_note(sim, port, minor: int, code: int) -> None:
    to_idle(port)
    assert sim.insert_note(minor)
    poll_until(port, encode_frame(Status.ESCROW, bytes((code,))))


def open_line(sim):
    return serial.serial_for_url(sim.start("pty"), baudrate=9600, parity=serial.PARITY_EVEN, timeout=0.5)


def test_setting_commands_are_echoed_with_their_data(line):
    sim, port = line
    to_idle(port)
    raw = bytes.fromhex(VECTORS["host inhibit on"])
    assert ask(port, raw) == raw


def test_setting_commands_are_refused_at_power_up_before_the_reset(line):
    sim, port = line
    assert ask(port, bytes.fromhex(VECTORS["host inhibit on"])) == encode_frame(Status.INVALID_COMMAND)


def test_setting_commands_are_refused_while_a_note_is_in_the_path(line):
    sim, port = line
    escrow_note(sim, port, 1000, 0x62)
    assert ask(port, bytes.fromhex(VECTORS["host inhibit on"])) == encode_frame(Status.INVALID_COMMAND)
    assert ask(port, encode_frame(Command.SET_ENABLE, b"\xff\xff")) == encode_frame(Status.INVALID_COMMAND)
    assert sim.state()["settings_refused"] == 2
    assert sim.state()["denomination_mask"] == "0000" and not sim.state()["inhibited"]
    # Getters still answer mid-note.
    assert ask(port, encode_frame(Command.GET_INHIBIT)) == encode_frame(Command.GET_INHIBIT, b"\x00")


def test_bad_crc_gets_no_reply_and_next_status_is_communication_error(line):
    sim, port = line
    raw = bytearray(bytes.fromhex(VECTORS["host status request"]))
    raw[-1] ^= 0x01
    assert ask(port, bytes(raw)) == b""
    assert status(port) == encode_frame(Status.COMMUNICATION_ERROR)
    assert status(port).hex(" ") == VECTORS["device power up"]
    assert sim.bad_frames_received >= 1 and sim.state()["acks_received"] == 0


def test_a_command_garbled_on_its_way_in_is_not_carried_out(line):
    sim, port = line
    escrow_note(sim, port, 1000, 0x62)
    sim.corrupt_next_command(Command.STACK_1)
    assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == b""
    assert status(port) == encode_frame(Status.COMMUNICATION_ERROR)
    assert status(port) == encode_frame(Status.ESCROW, b"\x62")


def test_the_units_own_escrow_return_defaults_to_10s_polled_and_3s_unpolled():
    sim = Id003Simulator()
    assert (sim.escrow_return_s, sim.unpolled_escrow_return_s) == (10.0, 3.0)


def test_unit_returns_escrowed_note_after_10s_without_hold():
    """Scaled: escrow_return_s stands for the unit's 10 s."""
    sim = Id003Simulator(step_s=0.01, escrow_return_s=0.3)
    port = open_line(sim)
    try:
        escrow_note(sim, port, 2000, 0x63)
        answers = poll_until(port, encode_frame(Status.REJECTING, b"\x79"))
        assert set(answers[:-1]) == {encode_frame(Status.ESCROW, b"\x63")}
        poll_until(port, encode_frame(Status.ENABLE))
        assert sim.state()["returned"] == [2000] and sim.state()["stacked"] == []
        assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == encode_frame(Status.INVALID_COMMAND)
    finally:
        port.close()
        sim.stop()


def test_unit_returns_an_escrow_nobody_polls_after_3s():
    """Scaled: unpolled_escrow_return_s stands for 3 s; escrow_return_s is far away, so
    only the unpolled rule can return the note."""
    sim = Id003Simulator(step_s=0.01, escrow_return_s=60.0, unpolled_escrow_return_s=0.2)
    port = open_line(sim)
    try:
        to_idle(port)
        assert sim.insert_note(5000)
        deadline = time.monotonic() + 5
        while sim.state()["state"] != "rejecting":      # nobody polls meanwhile
            assert time.monotonic() < deadline, f"unit kept the note: {sim.state()}"
            time.sleep(0.01)
        assert status(port) == encode_frame(Status.REJECTING, b"\x79")
        poll_until(port, encode_frame(Status.ENABLE))
        assert sim.state()["returned"] == [5000]
    finally:
        port.close()
        sim.stop()


def test_hold_re_arms_the_units_escrow_return_until_the_host_stacks():
    sim = Id003Simulator(step_s=0.01, escrow_return_s=0.8)
    port = open_line(sim)
    try:
        escrow_note(sim, port, 1000, 0x62)
        started = time.monotonic()
        holds = 0
        # HOLD every ~0.1 s for more than three of the unit's return periods.
        while time.monotonic() - started < 2.5 and holds < 100:
            assert ask(port, bytes.fromhex(VECTORS["host hold"])) == encode_frame(Status.ACK)
            holds += 1
            assert status(port) == encode_frame(Status.HOLDING)
            time.sleep(0.1)
        assert sim.state()["returned"] == [] and sim.state()["holds_received"] == holds
        assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == encode_frame(Status.ACK)
        poll_until(port, encode_frame(Status.VEND_VALID))
    finally:
        port.close()
        sim.stop()


def test_a_held_note_is_returned_when_the_host_stops_holding(line):
    sim, port = line
    sim.escrow_return_s = 0.3
    escrow_note(sim, port, 1000, 0x62)
    assert ask(port, bytes.fromhex(VECTORS["host hold"])) == encode_frame(Status.ACK)
    answers = poll_until(port, encode_frame(Status.REJECTING, b"\x79"))
    assert encode_frame(Status.HOLDING) in answers
    poll_until(port, encode_frame(Status.ENABLE))
    assert sim.state()["returned"] == [1000]


def test_denomination_inhibit_uses_jcms_bit_map(line):
    """0xC0: byte 0 bit k is escrow code 0x61+k, byte 1 bit k is 0x71+k; a set bit inhibits."""
    sim, port = line
    sim.notes = {0x61: 500, 0x63: 2000, 0x71: 100000}
    to_idle(port)
    for mask, minor, answer in ((b"\x00\x01", 100000, encode_frame(Status.REJECTING, b"\x79")),
                                (b"\x00\x01", 2000, encode_frame(Status.ESCROW, b"\x63")),
                                (b"\x04\x00", 2000, encode_frame(Status.REJECTING, b"\x79")),
                                (b"\x04\x00", 100000, encode_frame(Status.ESCROW, b"\x71"))):
        poll_until(port, encode_frame(Status.ENABLE))
        assert ask(port, encode_frame(Command.SET_ENABLE, mask)) == encode_frame(Command.SET_ENABLE, mask)
        assert sim.insert_note(minor)
        poll_until(port, answer)
        if answer[2] == Status.ESCROW:
            assert ask(port, bytes.fromhex(VECTORS["host return"])) == encode_frame(Status.ACK)


def test_denomination_mask_of_the_wrong_length_is_an_invalid_command(line):
    sim, port = line
    to_idle(port)
    assert ask(port, encode_frame(Command.SET_ENABLE, b"\x01")) == encode_frame(Status.INVALID_COMMAND)


def test_version_string_has_the_shape_of_a_real_units(line):
    sim, port = line
    reply = ask(port, encode_frame(Command.GET_VERSION))
    text = reply[3:-2].decode("ascii")
    assert text.startswith("U(EUR5)-") and " ID003-" in text
    assert version_currency(text) == "EUR"


def test_stacker_nearly_full_is_reported_as_0x1c_when_the_unit_comes_to_idle(line):
    sim, port = line
    to_idle(port)
    sim.stacker_nearly_full()
    assert status(port) == encode_frame(Status.STACKER_NEARLY_FULL)
    assert status(port) == encode_frame(Status.ENABLE)


@pytest.mark.parametrize("then, power_up, where", [
    ("stacker", Status.POWER_UP_BILL_IN_STACKER, "stacked"),
    ("acceptor", Status.POWER_UP_BILL_IN_ACCEPTOR, "returned"),
])
def test_a_stalled_stack_resets_the_unit_with_the_note_where_it_stopped(line, then, power_up, where):
    sim, port = line
    sim.stall_s = 0.3
    sim.stall_stacking(then)
    escrow_note(sim, port, 1000, 0x62)
    assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == encode_frame(Status.ACK)
    answers = poll_until(port, encode_frame(power_up))
    assert encode_frame(Status.STACKING) in answers and encode_frame(Status.VEND_VALID) not in answers
    assert ask(port, bytes.fromhex(VECTORS["host reset"])) == encode_frame(Status.ACK)
    poll_until(port, encode_frame(Status.DISABLE))
    assert sim.state()[where] == [1000]
    assert sim.state()["vend_valid_reports"] == 0


def test_stall_stacking_refuses_an_unknown_ending():
    with pytest.raises(ValueError, match="stacker"):
        Id003Simulator().stall_stacking("floor")


def test_a_lost_host_ack_makes_the_unit_repeat_vend_valid(line):
    sim, port = line
    sim.lose_host_ack_once()
    escrow_note(sim, port, 1000, 0x62)
    assert ask(port, bytes.fromhex(VECTORS["host stack-1"])) == encode_frame(Status.ACK)
    poll_until(port, encode_frame(Status.VEND_VALID))
    port.write(bytes.fromhex(VECTORS["host ack"]))
    assert status(port) == encode_frame(Status.VEND_VALID)
    port.write(bytes.fromhex(VECTORS["host ack"]))
    poll_until(port, encode_frame(Status.STACKED))
    assert sim.state()["acks_lost"] == 1 and sim.state()["acks_received"] == 1
    assert sim.state()["stacked"] == [1000]


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
