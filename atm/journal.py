"""The money journal: every money fact is durable *before* the step that depends on it.

SQLite in WAL mode with synchronous=FULL, so a committed fact survives a power
cut. Write-ahead points (each also a crash-test point, see fault_injection):
  escrow_decided   before STACK/RETURN is sent to the validator
  credit_recorded  before the validator's settled event is acknowledged
  send_requested   before the CAS is asked to send coins (with the request id)
  send_confirmed   after the CAS answered with a txid
  dispense_intent  before a dispense command (notes per cassette; cash-out flows)
  dispense_outcome after it: what the device says exited and was rejected
Order comes from row ids (journal sequence numbers), never from the wall clock.
On start the kiosk replays open transactions (atm.settlement): whatever was
credited and not yet sent is sent (same request id: the CAS dedupes), anything
it cannot decide alone becomes a reconciliation item for the operator.

Thread-safe: validator drivers call record_credit from their own threads.
"""

from __future__ import annotations

import dataclasses
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
from atm.cas.interface import Quote
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
    state TEXT NOT NULL,           -- stack_decided, return_decided, credited, stacked,
                                   -- unresolved (told to stack, outcome unknown: parked)
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
    status TEXT NOT NULL,          -- requested, sent, parked (priced at 0 sats: never sent)
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
-- The quote the customer confirmed: every send of the transaction is priced with it.
CREATE TABLE IF NOT EXISTS quotes (
    tx_id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    rate TEXT NOT NULL,
    fee_percent TEXT NOT NULL,
    fee_fixed_minor INTEGER NOT NULL,
    min_minor INTEGER NOT NULL,    -- below this total the fixed fee is waived
    fixed_waived INTEGER,          -- decided at the first send, then kept: NULL until then
    locked_at REAL NOT NULL
);
-- Cash-out flows (sell, redeem): a dispense is journaled per cassette before the
-- command, and the device's answer after it. Never resent blindly.
CREATE TABLE IF NOT EXISTS dispense_intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id TEXT NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    plan TEXT NOT NULL,            -- JSON {cassette id: notes}
    value_minor INTEGER NOT NULL,
    currency TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dispense_outcomes (
    intent_id INTEGER PRIMARY KEY REFERENCES dispense_intents(id),
    completion TEXT NOT NULL,      -- XFS4IoT completion word
    exited TEXT NOT NULL,          -- JSON {cassette id: notes}
    rejected TEXT NOT NULL,        -- JSON {cassette id: notes}
    exited_minor INTEGER NOT NULL
);
-- Sell: the deposit address (derived from the signed xpub) and what was proven paid.
CREATE TABLE IF NOT EXISTS deposits (
    tx_id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL,
    address TEXT NOT NULL,
    derivation_index INTEGER,
    sats_due INTEGER NOT NULL,
    sats_received INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL
);
-- Redeem: codes printed for a later cash-out, spent at most once.
CREATE TABLE IF NOT EXISTS redeem_codes (
    code_hash TEXT PRIMARY KEY,
    tx_id TEXT NOT NULL,
    value_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL            -- issued, redeemed, void
);
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    tx_id TEXT,
    data TEXT NOT NULL
);
-- the kiosk's frequent questions: a device's latest note, a transaction's notes and sends,
-- the latest fact of a kind
CREATE INDEX IF NOT EXISTS notes_by_device ON notes(device, id);
CREATE INDEX IF NOT EXISTS notes_by_tx ON notes(tx_id);
CREATE INDEX IF NOT EXISTS sends_by_tx ON sends(tx_id);
CREATE INDEX IF NOT EXISTS facts_by_kind ON facts(kind, id);
"""


CACHE_KIB = 256


class JournalError(Exception):
    """The journal refused a fact (unknown transaction, wrong state) or cannot write."""


class JournalWriteError(JournalError):
    """The journal file cannot be written (disk full, I/O error): take no more money."""


@dataclass(frozen=True)
class LockedQuote:
    """The quote journaled with a transaction (what the customer confirmed)."""

    quote: Quote
    min_buy: Fiat
    fixed_waived: bool | None       # None until the first send decided it


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
        # a bounded page cache: the kiosk's memory stays flat however long the journal grows
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------

    def _write(self, point: str | None, tx_id: str | None, data: dict[str, Any], statements) -> Any:
        """Run `statements(db)` and a fact row in one durable transaction, then pass the crash point."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = statements(self._db)
                    if point:
                        self._db.execute("INSERT INTO facts (at, kind, tx_id, data) VALUES (?, ?, ?, ?)",
                                         (time.time(), point, tx_id, json.dumps(data, default=str)))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise JournalWriteError(f"the journal {self.path} cannot be written ({point or 'write'}): "
                                        f"{exc}") from exc
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

    def open_buy(self, tx_id: str, address: str, currency: str, quote: Quote | None = None,
                 min_buy: Fiat | None = None) -> None:
        """A buy starts taking cash, with the quote it is priced at (journaled together)."""
        self.open_transaction("buy", tx_id, currency, address=address, quote=quote, min_buy=min_buy)

    def open_transaction(self, kind: str, tx_id: str, currency: str, *, address: str | None = None,
                         quote: Quote | None = None, min_buy: Fiat | None = None) -> None:
        """Any flow's transaction (buy, sell, redeem); one takes money at a time."""
        def go(db):
            if db.execute("SELECT 1 FROM transactions WHERE status='open'").fetchone():
                raise JournalError("another transaction is still open for cash")
            now = time.time()
            db.execute("INSERT INTO transactions (id, type, status, currency, address, created_at, updated_at)"
                       " VALUES (?, ?, 'open', ?, ?, ?, ?)", (tx_id, kind, currency, address, now, now))
            if quote is not None:
                self._put_quote(db, tx_id, quote, min_buy or Fiat.zero(currency))
        data: dict[str, Any] = {"address": address, "currency": currency}
        if quote is not None:
            data["rate"] = str(quote.rate)
        self._write(f"{kind}_opened", tx_id, data, go)

    @staticmethod
    def _put_quote(db: sqlite3.Connection, tx_id: str, quote: Quote, min_buy: Fiat) -> None:
        db.execute("INSERT OR REPLACE INTO quotes (tx_id, currency, rate, fee_percent, fee_fixed_minor, min_minor,"
                   " locked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (tx_id, quote.currency, str(quote.rate), str(quote.fee_percent),
                    quote.fixed_fee.minor if quote.fixed_fee else 0, min_buy.minor, time.time()))

    def lock_quote(self, tx_id: str, quote: Quote, min_buy: Fiat) -> None:
        """The customer was shown a refreshed quote before committing: it replaces the old one.
        Refused once a send was priced: a transaction's sends all use one quote."""
        def go(db):
            if db.execute("SELECT 1 FROM sends WHERE tx_id=?", (tx_id,)).fetchone():
                raise JournalError(f"{tx_id}: a send was already priced; its quote cannot change")
            self._put_quote(db, tx_id, quote, min_buy)
        self._write("quote_locked", tx_id, {"rate": str(quote.rate), "fee_percent": str(quote.fee_percent),
                                            "fee_fixed_minor": quote.fixed_fee.minor if quote.fixed_fee else 0},
                    go)

    def quote_for(self, tx_id: str) -> LockedQuote | None:
        rows = self._rows("SELECT * FROM quotes WHERE tx_id=?", (tx_id,))
        if not rows:
            return None
        r = rows[0]
        fixed = Fiat(r["fee_fixed_minor"], r["currency"]) if r["fee_fixed_minor"] else None
        waived = None if r["fixed_waived"] is None else bool(r["fixed_waived"])
        return LockedQuote(Quote(r["currency"], Decimal(r["rate"]), Decimal(r["fee_percent"]), fixed),
                           Fiat(r["min_minor"], r["currency"]), waived)

    def open_transaction_id(self) -> str | None:
        rows = self._rows("SELECT id FROM transactions WHERE status='open' ORDER BY rowid DESC LIMIT 1")
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
        """Make a validator's settled event durable. Idempotent per escrow decision.

        A settled event settles the device's latest escrow decision: *new* when that
        decision was "stack" and is not yet credited (or was parked as unresolved: a late
        answer), credited to the decision's own transaction. *repeat* when that decision is
        already credited (the device repeats a settled event whose ACK was lost): nothing
        changes. Anything else is an *orphan*: kept as a note in the cashbox with no
        transaction and parked for the operator, never credited to whoever is at the kiosk."""
        def go(db):
            latest = db.execute("SELECT id, tx_id, state, value_minor FROM notes WHERE device=?"
                                " AND state != 'orphan' ORDER BY id DESC LIMIT 1", (event.device,)).fetchone()
            now = time.time()
            if latest is not None and latest["state"] in ("stack_decided", "unresolved"):
                minor = latest["value_minor"] if event.value is None else event.value.minor
                if minor != latest["value_minor"]:
                    db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                               (latest["tx_id"], f"{event.device} credited {event.value} for a note escrowed as "
                                f"{latest['value_minor']} minor units; credited the device's value", now))
                if latest["state"] == "unresolved":
                    db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                               (latest["tx_id"], f"{event.device} settled the parked note of {minor} minor units "
                                "late; it is credited to its own transaction", now))
                db.execute("UPDATE notes SET state='credited', credited_at=?, value_minor=? WHERE id=?",
                           (now, minor, latest["id"]))
                self._bump(db, latest["tx_id"])
                return CreditOutcome("new", latest["tx_id"], latest["id"])
            if latest is not None and latest["state"] in ("credited", "stacked") and (
                    event.value is None or latest["value_minor"] == event.value.minor):
                return CreditOutcome("repeat", latest["tx_id"], latest["id"])
            if event.value is None:
                db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (NULL, ?, ?)",
                           (f"{event.device} settled a note whose value it did not report and no escrow "
                            "decision is on record: count the cashbox and credit or refund by hand", now))
                return CreditOutcome("orphan", None, None)
            cur = db.execute(
                "INSERT INTO notes (tx_id, device, code, value_minor, currency, state, credited_at)"
                " VALUES (NULL, ?, ?, ?, ?, 'orphan', ?)",
                (event.device, event.code, event.value.minor, event.value.currency, now))
            db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (NULL, ?, ?)",
                       (f"{event.device} credited {event.value} with no escrow decision on record for it: "
                        "the note is in the cashbox, credited to no open transaction (it belongs to no "
                        "transaction); refund or credit by hand", now))
            return CreditOutcome("orphan", None, cur.lastrowid)

        outcome = self._write("credit_recorded", None, {"device": event.device, "code": event.code,
                                                        "value_minor": event.value.minor if event.value else None},
                              go)
        return outcome

    def note_unresolved(self, device: str, detail: str) -> tuple[str | None, Fiat | None]:
        """A note told to stack whose outcome neither the device nor a bound could settle:
        parked with its amount for the operator; its transaction is parked too. Returns the
        transaction and the amount (None, None when no note was in flight)."""
        def go(db):
            row = db.execute("SELECT id, tx_id, value_minor, currency FROM notes WHERE device=?"
                             " AND state='stack_decided' ORDER BY id DESC LIMIT 1", (device,)).fetchone()
            if row is None:
                return None, None
            value = Fiat(row["value_minor"], row["currency"])
            db.execute("UPDATE notes SET state='unresolved' WHERE id=?", (row["id"],))
            db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                       (row["tx_id"], f"a note of {value} told to stack on {device} was never confirmed ({detail}): "
                        "count the cashbox; credit or refund it by hand", time.time()))
            db.execute("UPDATE transactions SET status='parked', updated_at=?, version=version+1"
                       " WHERE id=? AND status IN ('open', 'sending')", (time.time(), row["tx_id"]))
            return row["tx_id"], value
        return self._write("note_unresolved", None, {"device": device, "detail": detail}, go)

    def devices_in_flight(self, tx_id: str) -> list[str]:
        return [r["device"] for r in self._rows(
            "SELECT DISTINCT device FROM notes WHERE tx_id=? AND state='stack_decided'", (tx_id,))]

    def unresolved_on(self, device: str) -> int:
        """Notes of this device told to stack whose outcome is not known yet (any transaction)."""
        return self._rows("SELECT COUNT(*) AS n FROM notes WHERE device=? AND state='stack_decided'",
                          (device,))[0]["n"]

    def note_stacked(self, device: str) -> None:
        def go(db):
            db.execute("UPDATE notes SET state='stacked' WHERE id = (SELECT id FROM notes WHERE device=?"
                       " AND state='credited' ORDER BY id DESC LIMIT 1)", (device,))
        self._write("note_stacked", None, {"device": device}, go)

    def note_returned(self, device: str, tx_id: str | None) -> None:
        """The device gave back a note we had decided to stack (it could not stack it, or it
        came back at power-up). Only the device's latest decision can be that note, and only
        if it belongs to `tx_id`; with no transaction at the kiosk (None), only a parked
        (unresolved) note is matched. A note we decided to return is not affected."""
        def go(db):
            latest = db.execute("SELECT id, tx_id, state, value_minor FROM notes WHERE device=? AND state != 'orphan'"
                                " ORDER BY id DESC LIMIT 1", (device,)).fetchone()
            if latest is None:
                return
            if tx_id is not None and latest["state"] in ("stack_decided", "unresolved") and latest["tx_id"] == tx_id \
                    or tx_id is None and latest["state"] == "unresolved":
                db.execute("UPDATE notes SET state='return_decided' WHERE id=?", (latest["id"],))
                if latest["state"] == "unresolved":
                    db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                               (latest["tx_id"], f"{device} reports the parked note of {latest['value_minor']} "
                                "minor units went back to the customer: not credited", time.time()))
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
                     sats: Sats, rate: Decimal, fixed_waived: bool | None = None) -> SendRequest:
        """Journal the send before the CAS is asked; the request id makes retries safe.
        A send priced at no satoshis is journaled as parked, never as sent."""
        def go(db):
            now = time.time()
            status = "requested" if sats.sat > 0 else "parked"
            db.execute("INSERT INTO sends (request_id, tx_id, address, fiat_minor, fee_minor, sats, rate, status,"
                       " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (request_id, tx_id, address, fiat.minor, fee.minor, sats.sat, str(rate), status, now, now))
            if fixed_waived is not None:
                db.execute("UPDATE quotes SET fixed_waived=? WHERE tx_id=? AND fixed_waived IS NULL",
                           (int(fixed_waived), tx_id))
            if status == "parked":
                db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                           (tx_id, f"{fiat} of cash priced at 0 sats at rate {rate}: send or refund by hand", now))
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
            db.execute("UPDATE sends SET status='sent', txid=?, updated_at=? WHERE request_id=? AND sats > 0",
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
            " ORDER BY s.rowid", (tx_id,))]

    def pending_sends(self) -> list[SendRequest]:
        return [self._send_from(r) for r in self._rows(
            "SELECT s.*, t.currency FROM sends s JOIN transactions t ON t.id = s.tx_id"
            " WHERE s.status='requested' ORDER BY s.rowid")]

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
            rows = self._rows(f"SELECT * FROM transactions WHERE status IN ({marks}) ORDER BY rowid", statuses)
        else:
            rows = self._rows("SELECT * FROM transactions ORDER BY rowid")
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

    def _collected_upto(self) -> int:
        """Note row id up to which the cashbox was emptied (journal order, not the clock)."""
        rows = self._rows("SELECT data FROM facts WHERE kind='cash_collected' ORDER BY id DESC LIMIT 1")
        return int(json.loads(rows[0]["data"]).get("upto_note_id", 0)) if rows else 0

    def cashbox_counts(self) -> dict[int, int]:
        """Notes in the cashbox per value (minor units) since the last cash collection."""
        return {r["value_minor"]: r["n"] for r in self._rows(
            "SELECT value_minor, COUNT(*) AS n FROM notes WHERE state IN ('credited', 'stacked', 'orphan')"
            " AND id > ? GROUP BY value_minor ORDER BY value_minor", (self._collected_upto(),))}

    def collect_cash(self) -> dict[int, int]:
        """The cashbox was emptied: journal the counts and where the next period starts."""
        def go(db):
            upto = db.execute("SELECT COALESCE(MAX(id), 0) FROM notes").fetchone()[0]
            since = db.execute("SELECT data FROM facts WHERE kind='cash_collected' ORDER BY id DESC LIMIT 1").fetchone()
            start = int(json.loads(since[0]).get("upto_note_id", 0)) if since else 0
            counts = {r[0]: r[1] for r in db.execute(
                "SELECT value_minor, COUNT(*) FROM notes WHERE state IN ('credited', 'stacked', 'orphan') AND id > ? AND id <= ?"
                " GROUP BY value_minor ORDER BY value_minor", (start, upto))}
            db.execute("INSERT INTO facts (at, kind, tx_id, data) VALUES (?, 'cash_collected', NULL, ?)",
                       (time.time(), json.dumps({"counts": {str(k): v for k, v in counts.items()},
                                                 "upto_note_id": upto})))
            return counts
        return self._write(None, None, {}, go)

    # -- cash-out flows (filled by the sell and redeem flows) ----------------------------

    def dispense_intended(self, tx_id: str, request_id: str, device: str, plan: dict[str, int],
                          value: Fiat) -> int:
        """Before a dispense command: which notes from which cassette, for which transaction."""
        def go(db):
            return db.execute("INSERT INTO dispense_intents (tx_id, request_id, device, plan, value_minor, currency)"
                              " VALUES (?, ?, ?, ?, ?, ?)", (tx_id, request_id, device, json.dumps(plan),
                                                              value.minor, value.currency)).lastrowid
        return self._write("dispense_intent", tx_id, {"request_id": request_id, "plan": plan}, go)

    def dispense_outcome(self, request_id: str, completion: str, exited: dict[str, int],
                         rejected: dict[str, int], exited_value: Fiat) -> None:
        """After it: what the dispenser reports as exited (the count that is paid out)."""
        def go(db):
            row = db.execute("SELECT id, tx_id FROM dispense_intents WHERE request_id=?", (request_id,)).fetchone()
            if row is None:
                raise JournalError(f"no dispense intent {request_id!r}: journal the intent before dispensing")
            db.execute("INSERT INTO dispense_outcomes (intent_id, completion, exited, rejected, exited_minor)"
                       " VALUES (?, ?, ?, ?, ?)", (row["id"], completion, json.dumps(exited), json.dumps(rejected),
                                                   exited_value.minor))
            self._bump(db, row["tx_id"])
        self._write("dispense_outcome", None, {"request_id": request_id, "completion": completion,
                                               "exited": exited}, go)

    def open_dispenses(self) -> list[dict[str, Any]]:
        """Intents with no outcome: after a crash, ask the device, never dispense again."""
        return [dict(r) for r in self._rows(
            "SELECT i.* FROM dispense_intents i LEFT JOIN dispense_outcomes o ON o.intent_id = i.id"
            " WHERE o.intent_id IS NULL ORDER BY i.id")]

    # -- reports -------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Everything `atm journal --json` shows: transactions with their confirmed quote and
        every send, reconciliation items, sends waiting for the CAS."""
        transactions = []
        for tx in self.transactions():
            item = self.summary(tx["id"])
            locked = self.quote_for(tx["id"])
            item["quote"] = None if locked is None else {
                "rate": str(locked.quote.rate), "fee_percent": str(locked.quote.fee_percent),
                "fee_fixed_minor": locked.quote.fixed_fee.minor if locked.quote.fixed_fee else 0}
            item["sends"] = [{"request_id": s.request_id, "fiat_minor": s.fiat.minor, "fee_minor": s.fee.minor,
                              "sats": s.sats.sat, "txid": s.txid, "status": s.status}
                             for s in self.sends_for(tx["id"])]
            transactions.append(item)
        return {"transactions": transactions, "reconciliation": self.reconciliation_items(),
                "pending_sends": [dataclasses.asdict(s) for s in self.pending_sends()]}

    def last_fact(self, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The latest fact of one of these kinds (journal order), without reading them all."""
        marks = ",".join("?" * len(kinds))
        rows = self._rows(f"SELECT * FROM facts WHERE kind IN ({marks}) ORDER BY id DESC LIMIT 1", kinds)
        return dict(rows[0]) if rows else None

    def facts(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        sql, params = "SELECT * FROM facts", ()
        if kind:
            sql, params = sql + " WHERE kind=?", (kind,)
        for r in self._rows(sql + " ORDER BY id", params):
            yield dict(r)
