"""A kiosk killed with SIGKILL at each write-ahead point of a buy, then started again
on the same journal: every credited cent is paid for exactly once, each request id
reaches the CAS ledger once, and no note is lost.

Three separate processes (tests/atm/crash_world.py): the CAS simulator with its
operator, the ID-003 simulator over TCP, and the kiosk on the real ID-003 driver and
the paired CAS client. Only the kiosk is killed; the CAS's ledger and the validator's
cashbox outlive it like real ones. Both also check write-ahead from the outside, at
the moment it matters: the validator records a VEND VALID acknowledged before its
credit was in the journal, the CAS a send asked for before its request was.

Mutations these tests catch (each seen failing):
- the credit journaled after the device's ACK (drivers/id003/driver.py: recorder
  moved after the ACK frame): every test, by the validator's write-ahead check;
- the send request journaled after the CAS call (atm/settlement.py: send_coins
  before request_send): every test, by the CAS's write-ahead check;
- the escrow limit check `>` turned into `>=` (atm/flows/buy.py): the last 10.00 EUR
  note exactly fills the signed 80.00 EUR limit, is returned, and the buy never completes.
The "credit once" guard is caught by tests/atm/test_kiosk_notes.py and test_journal.py.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from atm.journal import Journal

REPO = Path(__file__).resolve().parents[2]
WORLD = str(Path(__file__).with_name("crash_world.py"))
NOTES = (2000, 5000, 1000)       # 80.00 EUR: exactly the signed max_buy

# (write-ahead point, which occurrence) -- in the order a buy reaches them
POINTS = [
    ("buy_opened", 1),
    ("escrow_decided", 1),
    ("credit_recorded", 1),
    ("escrow_decided", 2),
    ("credit_recorded", 3),
    ("cash_closed", 1),
    ("send_requested", 1),
    ("coins_sent", 1),
    ("send_confirmed", 1),
    ("tx_completed", 1),
]


class Child:
    """A crash_world process: JSON lines out, commands in."""

    def __init__(self, tmp: Path, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.url = ""                     # the validator's pyserial URL, once it said it
        self.stderr_path = tmp / f"{name}.stderr"
        self.proc = subprocess.Popen([sys.executable, WORLD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr_path.open("w"), text=True, cwd=REPO, env=env)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 60.0) -> dict[str, Any] | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name} said nothing for {timeout} s; stderr:\n{self.stderr()}") from None

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self.next(30)
        assert reply is not None, f"{self.name} ended; stderr:\n{self.stderr()}"
        return reply

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit") if self.name != "kiosk" else None
            except (AssertionError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _buy(tmp: Path, validator: Child, cas_state: str, crash_at: str | None) -> tuple[int, list[dict[str, Any]]]:
    """One kiosk run playing a customer who inserts NOTES; returns its exit code and lines."""
    env = {k: v for k, v in os.environ.items() if k != "ATM_CRASH_AT"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if crash_at:
        env["ATM_CRASH_AT"] = crash_at
    kiosk = Child(tmp, "kiosk", "kiosk", "--state-dir", str(tmp / "kiosk"), "--validator", validator.url,
                  "--cas-state", cas_state, "--notes", ",".join(map(str, NOTES)), env=env)
    said: list[dict[str, Any]] = []
    deadline = time.monotonic() + 150
    try:
        while (line := kiosk.next(max(1.0, deadline - time.monotonic()))) is not None:
            said.append(line)
            if "need" in line:                      # the customer offers the note until the unit takes it
                for _ in range(100):
                    if validator.ask(f"insert {line['need']}")["ok"]:
                        break
                    time.sleep(0.1)
                else:
                    raise AssertionError(f"the validator never took the {line['need']} note")
        return kiosk.proc.wait(timeout=30), said
    finally:
        if kiosk.proc.poll() is None:
            kiosk.proc.kill()
            kiosk.proc.wait(timeout=5)
        said.append({"stderr": kiosk.stderr()})


@pytest.mark.slow
@pytest.mark.parametrize("point, nth", POINTS, ids=[f"{p}-{n}" for p, n in POINTS])
def test_a_kill_at_any_write_ahead_point_loses_nothing_and_pays_nothing_twice(tmp_path, point, nth):
    """Mutations caught: credit journaled after the device's ACK; send request journaled
    after the CAS call; the limit check `>` turned into `>=` (see the module docstring)."""
    journal_path = tmp_path / "kiosk" / "journal.sqlite"
    cas = Child(tmp_path, "cas", "cas", "--workdir", str(tmp_path / "cas"), "--journal", str(journal_path))
    validator = Child(tmp_path, "validator", "validator", "--journal", str(journal_path))
    try:
        ready = cas.next(60)
        assert ready and ready.get("ready"), f"CAS simulator did not start:\n{cas.stderr()}"
        started = validator.next(30)
        assert started and "url" in started, validator.stderr()
        validator.url = started["url"]

        code, said = _buy(tmp_path, validator, ready["cas_state"], f"{point}:{nth}")
        assert code == -signal.SIGKILL, f"the kiosk should have died at {point}:{nth}: {said}"
        code, said = _buy(tmp_path, validator, ready["cas_state"], None)
        assert code == 0, f"the restarted kiosk did not complete a buy: {said}"

        ledger = cas.ask("ledger")
        unit = validator.ask("state")
        assert ledger["violations"] == [], ledger["violations"]
        assert unit["violations"] == [], unit["violations"]
        # the outside checks saw the moments they guard (a renamed hook would leave them blind)
        assert ledger["checked"] >= 1 and unit["checked"] >= len(NOTES)

        journal = Journal(journal_path)
        try:
            transactions = journal.transactions()
            assert len(transactions) == 2, "the crashed buy and the buy after the restart"
            journal_sends = {s.request_id: s for tx in transactions for s in journal.sends_for(tx["id"])}
            # each request id once in the CAS ledger, and only ids the journal asked for
            assert set(ledger["sends"]) == set(journal_sends)
            for request_id, sent in ledger["sends"].items():
                assert sent["sats"] == journal_sends[request_id].sats.sat
                assert journal_sends[request_id].status == "sent"
            for tx in transactions:
                # every credited cent is covered by a send, and every send went out
                assert journal.paid_for(tx["id"]) == journal.credited(tx["id"]), tx
                assert tx["status"] in ("completed", "canceled", "parked"), tx
            crashed, new = transactions
            assert new["status"] == "completed" and journal.credited(new["id"]).minor == sum(NOTES)
            credited_before = journal.credited(crashed["id"]).minor
            expected = {"buy_opened": 0, "escrow_decided": sum(NOTES[:nth - 1])}.get(point)
            if expected is not None:
                assert credited_before == expected
            if point == "credit_recorded":
                assert credited_before == sum(NOTES[:nth])
            if point in ("cash_closed", "send_requested", "coins_sent", "send_confirmed", "tx_completed"):
                assert credited_before == sum(NOTES) and len(journal.sends_for(crashed["id"])) == 1
            # nothing lost: every note in the unit's cashbox is credited or parked with its amount
            credited_all = sum(journal.credited(tx["id"]).minor for tx in transactions)
            parked = sum(r["value_minor"] for r in journal._rows("SELECT value_minor FROM notes WHERE state='unresolved'"))
            stacked = sum(n or 0 for n in unit["stacked"])
            assert credited_all <= stacked <= credited_all + parked, (credited_all, stacked, parked)
            if point == "escrow_decided":
                assert any("count the cashbox" in item["summary"] for item in journal.reconciliation_items())
        finally:
            journal.close()
    finally:
        validator.stop()
        cas.stop()
