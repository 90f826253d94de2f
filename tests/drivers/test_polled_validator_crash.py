"""A kiosk process SIGKILLed between a polled validator's settled event (ID-003 VEND VALID,
ccNet BILL STACKED) and its ACK: after a restart against the same (still powered) unit, the
note is credited exactly once, in the kiosk's real journal (atm.journal.Journal), to its own
transaction. The same rule on both protocols, so one test over both.

Mutation caught (seen failing by hand): the driver acknowledging the settled event before
the recorder's journal write (ACK first, record second). Killed before the write, the unit
has then already been told the credit is safe and moves on: nothing repeats the settled
event after the restart, and the journal credits nothing for a stacked note."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from atm.journal import Journal
from hal.money import Fiat
from simulators.ccnet import CcnetSimulator
from simulators.id003 import Id003Simulator

REPO = Path(__file__).parents[2]
CHILD = Path(__file__).with_name("polled_crash_child.py")
TX = "tx-crash-1"


@dataclass(frozen=True)
class Unit:
    """How a protocol's simulator shows the moments the test waits for."""

    simulator: type
    enabled: Callable[[dict], bool]
    # The unit still reports its settled event at the kill: nobody acknowledged it.
    unacknowledged: Callable[[dict], bool]
    # After the restart: acknowledged, stacked, and idle again.
    settled: Callable[[dict], bool]


UNITS = {
    "id003": Unit(Id003Simulator,
                  enabled=lambda s: not s["inhibited"],
                  unacknowledged=lambda s: s["state"] == "vend_valid" and s["acks_received"] == 0,
                  settled=lambda s: s["cashbox"] == 1 and s["state"] == "idle" and s["acks_received"] == 1),
    "ccnet": Unit(CcnetSimulator,
                  enabled=lambda s: s["state"] == "idle_enabled",
                  unacknowledged=lambda s: s["state"] == "stacked" and s["event_acked"] is False,
                  settled=lambda s: s["cashbox"] == 1 and s["state"] == "idle_enabled"),
}


def spawn(protocol: str, url: str, journal: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("ATM_CRASH_AT", None)
    return subprocess.Popen([sys.executable, str(CHILD), protocol, url, str(journal), TX, mode], cwd=REPO, env=env,
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
@pytest.mark.parametrize("protocol", sorted(UNITS))
@pytest.mark.parametrize("mode, credits_before_restart", [
    ("kill-after-record", [1000]),
    ("kill-before-record", []),
])
def test_kiosk_killed_between_settled_event_and_ack_credits_the_note_exactly_once(
        tmp_path, protocol, mode, credits_before_restart):
    unit = UNITS[protocol]
    journal = tmp_path / "journal.db"
    sim = unit.simulator(step_s=0.02)
    url = sim.start("pty")
    try:
        first = spawn(protocol, url, journal, mode)
        wait_ready(first)
        wait_until(lambda: unit.enabled(sim.state()), what="validator enabled")
        assert sim.insert_note(1000)
        assert first.wait(timeout=15) == -signal.SIGKILL
        at_kill = sim.state()
        journal_at_kill = credits_in(journal)

        second = spawn(protocol, url, journal, "normal")
        wait_ready(second)
        wait_until(lambda: unit.settled(sim.state()), what="settled event acknowledged, note stacked")
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
        assert journal_at_kill == credits_before_restart
        assert unit.unacknowledged(at_kill), at_kill
    finally:
        sim.stop()
