"""A kiosk process SIGKILLed between VEND VALID and its ACK: after a restart
against the same (still powered) acceptor, the note is credited exactly once, in
the kiosk's real journal (atm.journal.Journal), to its own transaction.

Mutation caught (seen failing by hand): the driver acknowledging VEND VALID before
the recorder's journal write (ACK first, record second). The unit then stacks the
note while the killed kiosk has no record of it: acks_received is 1 at the kill and
the journal credits nothing after the restart."""

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
from hal.money import Fiat
from simulators.id003 import Id003Simulator

REPO = Path(__file__).parents[3]
CHILD = Path(__file__).with_name("crash_child.py")


TX = "tx-crash-1"


def spawn(url: str, journal: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("ATM_CRASH_AT", None)
    return subprocess.Popen([sys.executable, str(CHILD), url, str(journal), TX, mode], cwd=REPO, env=env,
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


def credits_in(path: Path) -> list[int]:
    """What the kiosk's journal credits to the transaction, read as the kiosk reads it."""
    journal = Journal(path)
    try:
        return journal.credited_notes(TX)
    finally:
        journal.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode, credits_before_restart", [
    ("kill-after-record", [1000]),
    ("kill-before-record", []),
])
def test_kiosk_killed_between_vend_valid_and_ack_credits_the_note_exactly_once(tmp_path, mode, credits_before_restart):
    journal = tmp_path / "journal.db"
    sim = Id003Simulator(step_s=0.02)
    url = sim.start("pty")
    try:
        first = spawn(url, journal, mode)
        wait_ready(first)
        wait_until(lambda: not sim.state()["inhibited"], what="acceptor enabled")
        assert sim.insert_note(1000)
        assert first.wait(timeout=15) == -signal.SIGKILL
        at_kill = sim.state()
        journal_at_kill = credits_in(journal)

        second = spawn(url, journal, "normal")
        wait_ready(second)
        wait_until(lambda: sim.state()["cashbox"] == 1 and sim.state()["state"] == "idle", what="note stacked")
        second.stdin.write("quit\n")
        second.stdin.flush()
        assert second.wait(timeout=15) == 0, second.stderr.read()
        # The money first: credited once, to its own transaction, nothing left in flight.
        assert credits_in(journal) == [1000]
        check = Journal(journal)
        try:
            assert check.credited(TX) == Fiat(1000, "EUR")
            assert check.notes_in_flight(TX) == 0
        finally:
            check.close()
        assert sim.state()["stacked"] == [1000]
        assert sim.state()["acks_received"] == 1
        # At the kill the device still held VEND VALID: nobody had acknowledged it.
        assert journal_at_kill == credits_before_restart
        assert at_kill["state"] == "vend_valid" and at_kill["acks_received"] == 0
    finally:
        sim.stop()
