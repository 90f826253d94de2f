"""The money journal: every money fact is durable *before* the step that depends on it.

SQLite in WAL mode with synchronous=FULL, so a committed fact survives a power
cut. Write-ahead points (each also a crash-test point, see fault_injection):
  escrow_decided   before STACK/RETURN is sent to the validator
  credit_recorded  before the validator's settled event is acknowledged
  send_requested   before the CAS is asked to send coins (with the request id)
  send_confirmed   after the CAS answered with a txid
On start the kiosk replays open transactions (atm.recovery): whatever was
credited and not yet sent is sent (same request id: the CAS dedupes), anything
it cannot decide alone becomes a reconciliation item for the operator.

Thread-safe: validator drivers call record_credit from their own threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from hal.events import NoteCredited
from hal.money import Fiat, Sats
from atm.fault_injection import CrashPoints

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,          -- open, sending, completed, canceled, parked
    currency TEXT NOT NULL,
    address TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id TEXT,                    -- NULL: credited with no open transaction (orphan)
    device TEXT NOT NULL,
    code TEXT NOT NULL,
    value_minor INTEGER,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,           -- stack_decided, return_decided, credited, stacked
    escrowed_at REAL,
    credited_at REAL
);
CREATE TABLE IF NOT EXISTS sends (
    request_id TEXT PRIMARY KEY,
    tx_id TEXT NOT NULL,
    address TEXT NOT NULL,
    fiat_minor INTEGER NOT NULL,   -- cash this send pays for, fee included
    fee_minor INTEGER NOT NULL,
    sats INTEGER NOT NULL,
    rate TEXT NOT NULL,
    status TEXT NOT NULL,          -- requested, sent
    txid TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciliation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id TEXT,
    summary TEXT NOT NULL,
    created_at REAL NOT NULL,
    resolved_at REAL
);
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    tx_id TEXT,
    data TEXT NOT NULL
);
"""


class JournalError(Exception):
    """The journal refused a fact (unknown transaction, wrong state) or cannot write."""


@dataclass(frozen=True)
class CreditOutcome:
    """What record_credit made of a settled event."""

    kind: str                      # "new", "repeat" (device repeated an acked note), "orphan"
    tx_id: str | None
    note_id: int | None            # None: an orphan whose value nobody knows (parked for the operator)


@dataclass(frozen=True)
class SendRequest:
    request_id: str
    tx_id: str
    address: str
    fiat: Fiat
    fee: Fiat
    sats: Sats
    rate: Decimal
    status: str
    txid: str | None


class Journal:
    def __init__(self, path: str | Path, crash_points: CrashPoints | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._crash = crash_points or CrashPoints()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------

    def _write(self, point: str | None, tx_id: str | None, data: dict[str, Any], statements) -> Any:
        """Run `statements(db)` and a fact row in one durable transaction, then pass the crash point."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._db)
                if point:
                    self._db.execute("INSERT INTO facts (at, kind, tx_id, data) VALUES (?, ?, ?, ?)",
                                     (time.time(), point, tx_id, json.dumps(data, default=str)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if point:
            self._crash.reached(point)
        return result

    def _rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params))

    def crash_point(self, point: str) -> None:
        """A crash-test point between two steps that are not journal writes."""
        self._crash.reached(point)

    def record_fact(self, kind: str, tx_id: str | None = None, **data: Any) -> None:
        """An audit fact that no money step depends on (door opened, screen timeout...)."""
        self._write(kind, tx_id, data, lambda db: None)

    # -- buy lifecycle --------------------------------------------------------------------

    def open_buy(self, tx_id: str, address: str, currency: str) -> None:
        def go(db):
            if db.execute("SELECT 1 FROM transactions WHERE status='open'").fetchone():
                raise JournalError("another transaction is still open for cash")
            now = time.time()
            db.execute("INSERT INTO transactions (id, type, status, currency, address, created_at, updated_at)"
                       " VALUES (?, 'buy', 'open', ?, ?, ?, ?)", (tx_id, currency, address, now, now))
        self._write("buy_opened", tx_id, {"address": address, "currency": currency}, go)

    def open_transaction_id(self) -> str | None:
        rows = self._rows("SELECT id FROM transactions WHERE status='open' ORDER BY created_at DESC LIMIT 1")
        return rows[0]["id"] if rows else None

    def escrow_decided(self, device: str, code: str, value: Fiat | None, decision: str,
                       tx_id: str | None) -> int:
        """Journal the escrow decision before STACK or RETURN goes to the device."""
        if decision not in ("stack", "return"):
            raise JournalError(f"escrow decision must be stack or return, not {decision!r}")
        if decision == "stack" and (value is None or tx_id is None):
            raise JournalError("a note is stacked only with a known value into an open transaction")
        currency = value.currency if value else "XXX"

        def go(db):
            cur = db.execute(
                "INSERT INTO notes (tx_id, device, code, value_minor, currency, state, escrowed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tx_id, device, code, value.minor if value else None, currency,
                 f"{decision}_decided", time.time()))
            return cur.lastrowid
        return self._write("escrow_decided", tx_id, {"device": device, "code": code, "decision": decision,
                                                     "value_minor": value.minor if value else None}, go)

    def record_credit(self, event: NoteCredited) -> CreditOutcome:
        """Make a validator's settled event durable. Idempotent for repeats.

        A credit is *new* when a note of this device was decided "stack" and not yet
        credited; it is a *repeat* when the device's latest note is already credited and
        no new escrow came since (the device repeats an unacknowledged settled event after
        a host restart). Otherwise it is an *orphan*: still credited, to the open
        transaction if there is one, else parked for the operator. Never dropped."""
        def go(db):
            pending = db.execute(
                "SELECT id, tx_id, value_minor FROM notes WHERE device=? AND state='stack_decided'"
                " ORDER BY id DESC LIMIT 1", (event.device,)).fetchone()
            now = time.time()
            if pending is not None:
                minor = pending["value_minor"] if event.value is None else event.value.minor
                if minor != pending["value_minor"]:
                    db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                               (pending["tx_id"], f"{event.device} credited {event.value} for a note escrowed as "
                                f"{pending['value_minor']} minor units; credited the device's value", now))
                db.execute("UPDATE notes SET state='credited', credited_at=?, value_minor=? WHERE id=?",
                           (now, minor, pending["id"]))
                self._bump(db, pending["tx_id"])
                return CreditOutcome("new", pending["tx_id"], pending["id"])
            latest = db.execute("SELECT id, tx_id, state, value_minor FROM notes WHERE device=?"
                                " ORDER BY id DESC LIMIT 1", (event.device,)).fetchone()
            if latest is not None and latest["state"] == "credited" and (
                    event.value is None or latest["value_minor"] == event.value.minor):
                return CreditOutcome("repeat", latest["tx_id"], latest["id"])
            open_tx = db.execute("SELECT id FROM transactions WHERE status='open'"
                                 " ORDER BY created_at DESC LIMIT 1").fetchone()
            tx_id = open_tx["id"] if open_tx else None
            if event.value is None:
                db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                           (tx_id, f"{event.device} settled a note whose value it did not report and no escrow "
                            "decision is on record: count the cashbox and credit or refund by hand", now))
                return CreditOutcome("orphan", tx_id, None)
            cur = db.execute(
                "INSERT INTO notes (tx_id, device, code, value_minor, currency, state, credited_at)"
                " VALUES (?, ?, ?, ?, ?, 'credited', ?)",
                (tx_id, event.device, event.code, event.value.minor, event.value.currency, now))
            db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                       (tx_id, f"{event.device} credited {event.value} with no escrow decision on record"
                        + ("" if tx_id else " and no open transaction: refund or credit by hand"), now))
            if tx_id:
                self._bump(db, tx_id)
            return CreditOutcome("orphan", tx_id, cur.lastrowid)

        outcome = self._write("credit_recorded", None, {"device": event.device, "code": event.code,
                                                        "value_minor": event.value.minor if event.value else None},
                              go)
        return outcome

    def note_stacked(self, device: str) -> None:
        def go(db):
            db.execute("UPDATE notes SET state='stacked' WHERE id = (SELECT id FROM notes WHERE device=?"
                       " AND state='credited' ORDER BY id DESC LIMIT 1)", (device,))
        self._write("note_stacked", None, {"device": device}, go)

    def note_returned(self, device: str, tx_id: str) -> None:
        """The device gave back a note of this transaction that we had decided to stack
        (it could not stack it); a note we decided to return is not affected."""
        def go(db):
            db.execute("UPDATE notes SET state='return_decided' WHERE id = (SELECT id FROM notes WHERE device=?"
                       " AND tx_id=? AND state='stack_decided' ORDER BY id DESC LIMIT 1)", (device, tx_id))
        self._write("note_returned", tx_id, {"device": device}, go)

    def notes_in_flight(self, tx_id: str) -> int:
        """Notes decided 'stack' whose settled event has not come yet."""
        return self._rows("SELECT COUNT(*) AS n FROM notes WHERE tx_id=? AND state='stack_decided'",
                          (tx_id,))[0]["n"]

    def credited(self, tx_id: str) -> Fiat:
        tx = self.transaction(tx_id)
        total = self._rows("SELECT COALESCE(SUM(value_minor), 0) AS s FROM notes WHERE tx_id=?"
                           " AND state IN ('credited', 'stacked')", (tx_id,))[0]["s"]
        return Fiat(int(total), tx["currency"])

    def credited_notes(self, tx_id: str) -> list[int]:
        return [r["value_minor"] for r in self._rows(
            "SELECT value_minor FROM notes WHERE tx_id=? AND state IN ('credited', 'stacked') ORDER BY id", (tx_id,))]

    def paid_for(self, tx_id: str) -> Fiat:
        """Cash already covered by send requests (fee included)."""
        tx = self.transaction(tx_id)
        total = self._rows("SELECT COALESCE(SUM(fiat_minor), 0) AS s FROM sends WHERE tx_id=?", (tx_id,))[0]["s"]
        return Fiat(int(total), tx["currency"])

    def unsent(self, tx_id: str) -> Fiat:
        return self.credited(tx_id) - self.paid_for(tx_id)

    def close_cash(self, tx_id: str) -> None:
        """No more cash goes into this transaction; it moves on to sending."""
        def go(db):
            db.execute("UPDATE transactions SET status='sending', updated_at=?, version=version+1"
                       " WHERE id=? AND status='open'", (time.time(), tx_id))
        self._write("cash_closed", tx_id, {}, go)

    def request_send(self, tx_id: str, request_id: str, address: str, fiat: Fiat, fee: Fiat,
                     sats: Sats, rate: Decimal) -> SendRequest:
        """Journal the send before the CAS is asked; the request id makes retries safe."""
        def go(db):
            now = time.time()
            db.execute("INSERT INTO sends (request_id, tx_id, address, fiat_minor, fee_minor, sats, rate, status,"
                       " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?)",
                       (request_id, tx_id, address, fiat.minor, fee.minor, sats.sat, str(rate), now, now))
            # a parked transaction stays parked (the operator must look at it) even as it pays out
            db.execute("UPDATE transactions SET status='sending', updated_at=?, version=version+1 WHERE id=?"
                       " AND status = 'open'", (now, tx_id))
            db.execute("UPDATE transactions SET updated_at=?, version=version+1 WHERE id=? AND status != 'open'",
                       (now, tx_id))
        self._write("send_requested", tx_id, {"request_id": request_id, "sats": sats.sat,
                                              "fiat_minor": fiat.minor}, go)
        return self.send(request_id)

    def send_confirmed(self, request_id: str, txid: str) -> None:
        def go(db):
            db.execute("UPDATE sends SET status='sent', txid=?, updated_at=? WHERE request_id=?",
                       (txid, time.time(), request_id))
        self._write("send_confirmed", None, {"request_id": request_id, "txid": txid}, go)

    def send(self, request_id: str) -> SendRequest:
        rows = self._rows("SELECT s.*, t.currency FROM sends s JOIN transactions t ON t.id = s.tx_id"
                          " WHERE request_id=?", (request_id,))
        if not rows:
            raise JournalError(f"no send request {request_id!r}")
        return self._send_from(rows[0])

    def sends_for(self, tx_id: str) -> list[SendRequest]:
        return [self._send_from(r) for r in self._rows(
            "SELECT s.*, t.currency FROM sends s JOIN transactions t ON t.id = s.tx_id WHERE tx_id=?"
            " ORDER BY created_at", (tx_id,))]

    def pending_sends(self) -> list[SendRequest]:
        return [self._send_from(r) for r in self._rows(
            "SELECT s.*, t.currency FROM sends s JOIN transactions t ON t.id = s.tx_id"
            " WHERE s.status='requested' ORDER BY s.created_at")]

    def pending_sends_for(self, tx_id: str) -> list[SendRequest]:
        return [s for s in self.sends_for(tx_id) if s.status == "requested"]

    @staticmethod
    def _send_from(row: sqlite3.Row) -> SendRequest:
        return SendRequest(row["request_id"], row["tx_id"], row["address"], Fiat(row["fiat_minor"], row["currency"]),
                           Fiat(row["fee_minor"], row["currency"]), Sats(row["sats"]), Decimal(row["rate"]),
                           row["status"], row["txid"])

    def finish(self, tx_id: str, status: str) -> None:
        if status not in ("completed", "canceled", "parked"):
            raise JournalError(f"cannot finish a transaction as {status!r}")

        def go(db):
            db.execute("UPDATE transactions SET status=?, updated_at=?, version=version+1 WHERE id=?",
                       (status, time.time(), tx_id))
        self._write(f"tx_{status}", tx_id, {}, go)

    def park(self, tx_id: str | None, summary: str) -> None:
        def go(db):
            db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                       (tx_id, summary, time.time()))
            if tx_id:
                db.execute("UPDATE transactions SET status='parked', updated_at=?, version=version+1"
                           " WHERE id=? AND status IN ('open', 'sending')", (time.time(), tx_id))
        self._write("parked", tx_id, {"summary": summary}, go)

    @staticmethod
    def _bump(db: sqlite3.Connection, tx_id: str | None) -> None:
        if tx_id:
            db.execute("UPDATE transactions SET updated_at=?, version=version+1 WHERE id=?", (time.time(), tx_id))

    # -- reading --------------------------------------------------------------------------

    def transaction(self, tx_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM transactions WHERE id=?", (tx_id,))
        if not rows:
            raise JournalError(f"no transaction {tx_id!r} in {self.path}")
        return dict(rows[0])

    def transactions(self, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        if statuses:
            marks = ",".join("?" * len(statuses))
            rows = self._rows(f"SELECT * FROM transactions WHERE status IN ({marks}) ORDER BY created_at", statuses)
        else:
            rows = self._rows("SELECT * FROM transactions ORDER BY created_at")
        return [dict(r) for r in rows]

    def summary(self, tx_id: str) -> dict[str, Any]:
        """The transaction as the CAS upload and `atm demo --json` show it."""
        tx = self.transaction(tx_id)
        sends = self.sends_for(tx_id)
        return {
            "id": tx_id, "type": tx["type"], "status": tx["status"], "version": tx["version"],
            "fiat_minor": self.credited(tx_id).minor, "currency": tx["currency"],
            "sats": sum(s.sats.sat for s in sends if s.status == "sent"),
            "address": tx["address"], "notes": self.credited_notes(tx_id),
            "txids": [s.txid for s in sends if s.txid],
        }

    def reconciliation_items(self, include_resolved: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM reconciliation" + ("" if include_resolved else " WHERE resolved_at IS NULL")
        return [dict(r) for r in self._rows(sql + " ORDER BY id")]

    def last_collection_at(self) -> float | None:
        rows = self._rows("SELECT MAX(at) AS at FROM facts WHERE kind='cash_collected'")
        return rows[0]["at"]

    def cashbox_counts(self) -> dict[int, int]:
        """Notes in the cashbox per value (minor units) since the last cash collection."""
        since = self.last_collection_at() or 0.0
        return {r["value_minor"]: r["n"] for r in self._rows(
            "SELECT value_minor, COUNT(*) AS n FROM notes WHERE state IN ('credited', 'stacked')"
            " AND credited_at > ? GROUP BY value_minor ORDER BY value_minor", (since,))}

    def facts(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        sql, params = "SELECT * FROM facts", ()
        if kind:
            sql, params = sql + " WHERE kind=?", (kind,)
        for r in self._rows(sql + " ORDER BY id", params):
            yield dict(r)
