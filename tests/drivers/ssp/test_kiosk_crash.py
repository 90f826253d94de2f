"""SIGKILL of a kiosk process around the SSP credit event, then a restart, with the real money
journal (atm.journal.Journal, record_credit as the CreditRecorder) in both processes.

What SSP gives the host: the credit is in one poll reply, acknowledged only by the next poll
with the other sequence bit. A restarted host must SYNC, which makes the unit drop that reply
for good. So the credit must be durable before that next poll goes out: killed before, the
note is a journaled "decided stack" with no credit (parked for the operator, never credited
twice); killed after, it is credited exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from atm.journal import Journal
from drivers.ssp.frames import Command
from hal.events import NoteCredited, NoteEscrowed, NoteStacked
from hal.money import Fiat

CHILD = Path(__file__).with_name("kiosk_process.py")
TX_ID = "tx-before-kill"          # kiosk_process.TX_ID
DEVICE = "validator"


def facts(path: Path) -> set[str]:
    if not path.exists():
        return set()
    journal = Journal(path)
    try:
        return {f["kind"] for f in journal.facts()}
    finally:
        journal.close()


def run_until_hang(sim, journal: Path, mode: str, marker: str, wait_until) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, str(CHILD), sim.url, str(journal), mode],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: "test_ready" in facts(journal) or child.poll() is not None, timeout=20,
                   what="kiosk process ready")
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        sim.insert_note(5000)
        wait_until(lambda: marker in facts(journal), timeout=10, what=marker)
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


def frames_after_the_credit_reply(sim) -> list[dict]:
    """What the unit received after it sent the reply carrying the credit: the host's
    acknowledgement (its next poll) would be the first of them."""
    state = sim.state()
    sent = [t["t"] for t in state["tx_log"] if t["poll"] and "ee 04" in t["data"]]
    assert sent, "the unit never sent the credit"
    return [c for c in state["rx_log"] if c["t"] > sent[0]]


def restart(sim, events, make_driver, path: Path):
    """The restarted kiosk: the same journal file, record_credit as the recorder, and the
    escrow decision journaled before STACK."""
    journal = Journal(path)
    recorded: list[NoteCredited] = []

    def recorder(event: NoteCredited) -> None:
        journal.record_credit(event)
        recorded.append(event)

    drv = make_driver(open_it=False, name=DEVICE)

    def sink(event) -> None:
        if isinstance(event, NoteEscrowed) and event.value is not None:
            journal.escrow_decided(DEVICE, event.code, event.value, "stack", TX_ID)
            drv.stack()
        events(event)

    drv.set_credit_recorder(recorder)
    drv.open(sink)
    drv.enable()
    assert drv.wait_applied()
    return drv, journal, recorded


def ten_polls(sim, wait_until) -> None:
    sent = len(sim.state()["rx_log"])
    wait_until(lambda: sum(c["command"] == Command.POLL for c in sim.state()["rx_log"][sent:]) >= 10,
               what="ten polls after restart")


@pytest.mark.slow
def test_kill_before_the_recorder_returned_never_credits_twice_and_leaves_the_note_in_flight(
        sim, events, make_driver, wait_until, tmp_path) -> None:
    """Catches: the driver acknowledging the credit (its next poll) before the journal write
    returned (mutation tried: record_credit called after the next poll); the unit then has
    the acknowledgement while the journal has no credit."""
    path = tmp_path / "journal.sqlite"
    child = run_until_hang(sim, path, "hang-in-recorder", "test_recorder_entered", wait_until)
    # The unit stacks the note on its own; the reply that carried the credit stays
    # unacknowledged because no further poll goes out while the recorder has not returned.
    wait_until(lambda: sim.state()["cashbox"] == {"4": 1}, what="note in the cashbox")
    assert frames_after_the_credit_reply(sim) == []
    kill(child)

    drv, journal, recorded = restart(sim, events, make_driver, path)
    try:
        assert journal.credited_notes(TX_ID) == []
        assert journal.notes_in_flight(TX_ID) == 1            # decided "stack", never credited: parked
        ten_polls(sim, wait_until)
        assert recorded == [] and events.of(NoteCredited) == []
        assert [e.value for e in events.of(NoteStacked) if e.value is not None] == []

        # The restarted kiosk works normally; the first note stays the only one in flight.
        sim.insert_note(1000)
        events.wait_for(NoteEscrowed)
        credited = events.wait_for(NoteCredited)
        events.wait_for(NoteStacked, lambda e: e.at >= credited.at and e.value is not None)
        assert [e.value for e in recorded] == [Fiat(1000, "EUR")]
        assert journal.credited_notes(TX_ID) == [1000]
        assert journal.notes_in_flight(TX_ID) == 1
    finally:
        journal.close()


@pytest.mark.slow
def test_kill_after_the_recorder_returned_credits_exactly_once(sim, events, make_driver, wait_until,
                                                               tmp_path) -> None:
    """Catches: the credit journaled only after the unit got the acknowledgement (mutation
    tried: record_credit called after the next poll): at this kill point the journal must
    already hold the credit while the unit has no acknowledgement yet."""
    path = tmp_path / "journal.sqlite"
    child = run_until_hang(sim, path, "hang-after-record", "test_sink_credited", wait_until)
    assert frames_after_the_credit_reply(sim) == []
    kill(child)

    drv, journal, recorded = restart(sim, events, make_driver, path)
    try:
        assert journal.credited_notes(TX_ID) == [5000]
        assert journal.notes_in_flight(TX_ID) == 0
        ten_polls(sim, wait_until)
        wait_until(lambda: sim.state()["cashbox"] == {"4": 1}, what="note in the cashbox")
        assert recorded == [] and events.of(NoteCredited) == []
        assert journal.credited_notes(TX_ID) == [5000]
        assert journal.reconciliation_items() == []
        # Prove the restarted kiosk is not simply deaf: a new note is credited once.
        sim.insert_note(500)
        events.wait_for(NoteEscrowed)
        credited = events.wait_for(NoteCredited)
        events.wait_for(NoteStacked, lambda e: e.at >= credited.at and e.value is not None)
        assert journal.credited_notes(TX_ID) == [5000, 500]
        assert journal.reconciliation_items() == []
    finally:
        journal.close()
