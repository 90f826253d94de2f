"""A kiosk process SIGKILLed between VEND VALID and its ACK: after a restart
against the same (still powered) acceptor, the note is credited exactly once."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.id003 import Id003Simulator

REPO = Path(__file__).parents[3]
CHILD = Path(__file__).with_name("crash_child.py")


def spawn(url: str, journal: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(CHILD), url, str(journal), mode], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == "READY":
                return
            if not line:
                break
    proc.kill()
    raise AssertionError(f"kiosk child did not start: {proc.stderr.read()}")


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        select.select([], [], [], 0.01)


def credits_in(journal: Path) -> list[int]:
    with sqlite3.connect(journal) as db:
        return [row[0] for row in db.execute("SELECT minor FROM credit ORDER BY escrow_id")]


@pytest.mark.slow
@pytest.mark.parametrize("mode, credits_before_restart", [
    ("kill-after-record", [1000]),
    ("kill-before-record", []),
])
def test_kiosk_killed_between_vend_valid_and_ack_credits_the_note_exactly_once(tmp_path, mode, credits_before_restart):
    journal = tmp_path / "journal.sqlite"
    sim = Id003Simulator(step_s=0.02)
    url = sim.start("pty")
    try:
        first = spawn(url, journal, mode)
        wait_ready(first)
        wait_until(lambda: not sim.state()["inhibited"], what="acceptor enabled")
        assert sim.insert_note(1000)
        assert first.wait(timeout=15) == -signal.SIGKILL
        # The device still holds VEND VALID: nobody acknowledged it.
        assert sim.state()["state"] == "vend_valid"
        assert sim.state()["acks_received"] == 0
        assert credits_in(journal) == credits_before_restart

        second = spawn(url, journal, "normal")
        wait_ready(second)
        wait_until(lambda: sim.state()["cashbox"] == 1 and sim.state()["state"] != "stacked", what="note stacked")
        second.stdin.write("quit\n")
        second.stdin.flush()
        assert second.wait(timeout=15) == 0, second.stderr.read()
        assert credits_in(journal) == [1000]
        assert sim.state()["stacked"] == [1000]
        assert sim.state()["acks_received"] == 1
    finally:
        sim.stop()
