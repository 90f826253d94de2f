"""A kiosk process SIGKILLed while a ccNet STACKED is being credited, with the real
atm.journal.Journal as CreditRecorder: after a restart against the same (still powered)
unit, the note is in the journal exactly once.

Catches: moving the ACK before the recorder (or the journal write after the ACK). Killed
before the write, the unit has then already been told the credit is safe, moves on, and
after the restart nothing repeats STACKED: the journal has no credit for a stacked note.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atm.journal import Journal
from simulators.ccnet import CcnetSimulator

REPO = Path(__file__).parents[3]
CHILD = Path(__file__).with_name("crash_child.py")
TX = "tx-crash-1"


def spawn(url: str, journal: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("ATM_CRASH_AT", None)
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


def credited(journal_path: Path) -> list[int]:
    journal = Journal(journal_path)
    try:
        return journal.credited_notes(TX)
    finally:
        journal.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode, credited_before_restart", [
    ("first-kill-before-write", []),
    ("first-kill-after-write", [1000]),
])
def test_kiosk_killed_while_crediting_stacked_credits_the_note_exactly_once(tmp_path, mode, credited_before_restart):
    journal = tmp_path / "journal.sqlite"
    sim = CcnetSimulator(step_s=0.02)
    url = sim.start("pty")
    try:
        first = spawn(url, journal, mode)
        wait_ready(first)
        wait_until(lambda: sim.state()["state"] == "idle_enabled", what="validator enabled")
        assert sim.insert_note(1000)
        assert first.wait(timeout=15) == -signal.SIGKILL
        # The unit still reports STACKED: nobody acknowledged it.
        assert sim.state()["state"] == "stacked" and sim.state()["event_acked"] is False
        assert sim.state()["stacked"] == [1000]
        assert credited(journal) == credited_before_restart

        second = spawn(url, journal, "restart")
        wait_ready(second)
        wait_until(lambda: sim.state()["state"] == "idle_enabled",
                   what="STACKED acknowledged and the unit idle again")
        second.stdin.write("quit\n")
        second.stdin.flush()
        assert second.wait(timeout=15) == 0, second.stderr.read()
        assert credited(journal) == [1000]
        assert sim.state()["stacked"] == [1000]
    finally:
        sim.stop()
