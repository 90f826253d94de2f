"""SIGKILL of a kiosk process around the SSP credit event, then a restart.

What SSP gives the host: the credit is in one poll reply, acknowledged only by the next poll
with the other sequence bit. A restarted host must SYNC, which makes the unit drop that
reply for good. So after a crash the note is credited at most once, never twice; a credit
that never reached the journal shows up as a journaled "decided stack" with no credit (and a
note more in the cashbox), which the application parks as a reconciliation item.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.ssp.frames import Command
from hal.events import NoteCredited, NoteEscrowed, NoteStacked
from hal.money import Fiat

CHILD = Path(__file__).with_name("kiosk_process.py")


def read_journal(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def open_items(entries: list[list[str]]) -> list[tuple[str, int]]:
    """What the application's start-up replay does: a note decided "stack" with no credit
    after it is parked for the operator, never silently credited or forgotten."""
    pending: list[tuple[str, int]] = []
    for entry in entries:
        if entry[0] == "decided-stack":
            pending.append((entry[1], int(entry[2])))
        elif entry[0] == "credit" and (entry[1], int(entry[2])) in pending:
            pending.remove((entry[1], int(entry[2])))
    return pending


def run_until_hang(sim, journal: Path, mode: str, marker: str, wait_until) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, str(CHILD), sim.url, str(journal), mode],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: ["ready"] in read_journal(journal) or child.poll() is not None, timeout=20,
                   what="kiosk process ready")
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        sim.insert_note(5000)
        wait_until(lambda: any(e[0] == marker for e in read_journal(journal)), timeout=10, what=marker)
    except BaseException:
        child.kill()
        child.wait()
        raise
    return child


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    if child.stderr:
        child.stderr.close()


def restart(sim, events, make_driver, journal: Path):
    recorded: list[NoteCredited] = []

    def recorder(event: NoteCredited) -> None:
        recorded.append(event)
        with open(journal, "a", encoding="utf-8") as fh:
            fh.write(f"credit {event.code} {event.value.minor}\n")

    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorder)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    return drv, recorded


@pytest.mark.slow
def test_kill_before_the_recorder_returned_never_credits_twice_and_leaves_a_detectable_item(
        sim, events, make_driver, wait_until, tmp_path) -> None:
    journal = tmp_path / "journal.txt"
    child = run_until_hang(sim, journal, "hang-in-recorder", "recorder-entered", wait_until)
    rx_at_credit = len(sim.state()["rx_log"])
    # The unit stacks the note on its own; the reply that carried the credit stays
    # unacknowledged because no further poll goes out while the recorder has not returned.
    wait_until(lambda: sim.state()["cashbox"] == {"4": 1}, what="note in the cashbox")
    assert sim.state()["rx_log"][rx_at_credit:] == []
    kill(child)
    assert [e for e in read_journal(journal) if e[0] == "credit"] == []

    drv, recorded = restart(sim, events, make_driver, journal)
    sent = len(sim.state()["rx_log"])
    wait_until(lambda: sum(c["command"] == Command.POLL for c in sim.state()["rx_log"][sent:]) >= 10,
               what="ten polls after restart")
    assert recorded == [] and events.of(NoteCredited) == []
    assert open_items(read_journal(journal)) == [("4", 5000)]
    # No NoteStacked with a value either: the restarted driver never saw this note's credit.
    assert [e.value for e in events.of(NoteStacked) if e.value is not None] == []

    # The restarted kiosk works normally, and the parked note stays the only open item.
    sim.insert_note(1000)
    events.wait_for(NoteEscrowed)
    drv.stack()
    credited = events.wait_for(NoteCredited)
    events.wait_for(NoteStacked, lambda e: e.at >= credited.at and e.value is not None)
    assert [e.value for e in recorded] == [Fiat(1000, "EUR")]
    assert open_items(read_journal(journal)) == [("4", 5000)]


@pytest.mark.slow
def test_kill_after_the_recorder_returned_credits_exactly_once(sim, events, make_driver, wait_until,
                                                               tmp_path) -> None:
    journal = tmp_path / "journal.txt"
    child = run_until_hang(sim, journal, "hang-after-record", "sink-credited", wait_until)
    kill(child)
    assert [e for e in read_journal(journal) if e[0] == "credit"] == [["credit", "4", "5000"]]

    drv, recorded = restart(sim, events, make_driver, journal)
    sent = len(sim.state()["rx_log"])
    wait_until(lambda: sum(c["command"] == Command.POLL for c in sim.state()["rx_log"][sent:]) >= 10,
               what="ten polls after restart")
    wait_until(lambda: sim.state()["cashbox"] == {"4": 1}, what="note in the cashbox")
    assert recorded == [] and events.of(NoteCredited) == []
    credits = [e for e in read_journal(journal) if e[0] == "credit"]
    assert credits == [["credit", "4", "5000"]]
    assert open_items(read_journal(journal)) == []
    # Prove the restarted kiosk is not simply deaf: a new note is credited once.
    sim.insert_note(500)
    events.wait_for(NoteEscrowed)
    drv.stack()
    credited = events.wait_for(NoteCredited)
    events.wait_for(NoteStacked, lambda e: e.at >= credited.at and e.value is not None)
    assert [c[2] for c in read_journal(journal) if c[0] == "credit"] == ["5000", "500"]
