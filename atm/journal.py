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
    exited_minor INTEGER NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'complete',   -- complete | partial | unknown
    uncertain TEXT NOT NULL DEFAULT '{}',       -- JSON {cassette id: notes} that may or may not have left
    uncertain_minor INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'device'       -- device | recovery (asked after a restart) | operator
);
-- Cassette books: what a technician loaded; movements are the dispense outcomes of
-- intents journaled after the load (journal order, never the clock).
CREATE TABLE IF NOT EXISTS cassette_loads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cassette TEXT NOT NULL,
    denomination_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    count INTEGER NOT NULL,
    near_empty INTEGER NOT NULL,
    after_intent INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reject_bin_counts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    counted INTEGER NOT NULL,
    expected INTEGER NOT NULL,
    after_intent INTEGER NOT NULL
);
-- Sell: the quote, the deposit address (derived from the signed xpub) and what was
-- proven paid. `entitled_minor` is the cash the verified payment entitles to.
CREATE TABLE IF NOT EXISTS deposits (
    tx_id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL,
    cash_minor INTEGER NOT NULL,
    fee_minor INTEGER NOT NULL,
    rate TEXT NOT NULL,
    sats_due INTEGER NOT NULL,
    address TEXT,
    derivation_index INTEGER,
    expires_at REAL,
    txid TEXT,
    sats_received INTEGER NOT NULL DEFAULT 0,
    confirmations INTEGER,
    in_time INTEGER,
    verdict TEXT,                  -- pay | underpaid | late (atm.flows.sell_terms)
    entitled_minor INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL            -- quoted, invoiced, proven, unproven (ended without proof)
);
-- Redeem: codes printed for a later cash-out. A claim is one atomic state change
-- together with the dispense intent it pays: two scans cannot both pay.
CREATE TABLE IF NOT EXISTS redeem_codes (
    code_hash TEXT PRIMARY KEY,
    tx_id TEXT NOT NULL UNIQUE,
    value_minor INTEGER NOT NULL,  -- owed when issued (what is owed now: Journal.owed)
    currency TEXT NOT NULL,
    state TEXT NOT NULL,           -- issued, claimed (a dispense is on its way), redeemed, void
    claim_request TEXT
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
        self._migrate()

    def _migrate(self) -> None:
        """Journals written before the cash-out columns existed: add them (nothing is lost)."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(dispense_outcomes)")}
        for column, ddl in (("outcome", "TEXT NOT NULL DEFAULT 'complete'"), ("uncertain", "TEXT NOT NULL DEFAULT '{}'"),
                            ("uncertain_minor", "INTEGER NOT NULL DEFAULT 0"),
                            ("source", "TEXT NOT NULL DEFAULT 'device'")):
            if column not in have:
                self._db.execute(f"ALTER TABLE dispense_outcomes ADD COLUMN {column} {ddl}")
        # The first shapes of these two tables were never written to: replace them when empty.
        for table, column in (("deposits", "cash_minor"), ("redeem_codes", "claim_request")):
            if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                if self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]:
                    raise JournalError(f"{self.path}: table {table} has an old shape with rows in it; "
                                       "migrate it by hand before starting this version")
                self._db.execute(f"DROP TABLE {table}")
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
                # (dispensing and owed: cash-out transactions)
                db.execute("UPDATE transactions SET status='parked', updated_at=?, version=version+1"
                           " WHERE id=? AND status IN ('open', 'sending', 'dispensing', 'owed')", (time.time(), tx_id))
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
        if tx["type"] == "sell":
            return self._sell_summary(tx)
        sends = self.sends_for(tx_id)
        return {
            "id": tx_id, "type": tx["type"], "status": tx["status"], "version": tx["version"],
            "fiat_minor": self.credited(tx_id).minor, "currency": tx["currency"],
            "sats": sum(s.sats.sat for s in sends if s.status == "sent"),
            "address": tx["address"], "notes": self.credited_notes(tx_id),
            "txids": [s.txid for s in sends if s.txid],
        }

    def _sell_summary(self, tx: dict[str, Any]) -> dict[str, Any]:
        deposit = self.deposit(tx["id"]) or {}
        return {
            "id": tx["id"], "type": "sell", "status": tx["status"], "version": tx["version"],
            "fiat_minor": self.dispensed(tx["id"]).minor, "currency": tx["currency"],
            "cash_asked_minor": deposit.get("cash_minor"), "fee_minor": deposit.get("fee_minor"),
            "sats": deposit.get("sats_received", 0), "sats_due": deposit.get("sats_due"),
            "address": tx["address"], "txids": [deposit["txid"]] if deposit.get("txid") else [], "notes": [],
            "confirmations": deposit.get("confirmations"), "owed_minor": self.owed(tx["id"]).minor,
            "dispenses": [{"request_id": d["request_id"], "plan": d["plan"], "exited": d["exited"],
                           "rejected": d["rejected"], "outcome": d["outcome"]} for d in self.dispenses_for(tx["id"])],
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

    # -- cash-out: dispenses ---------------------------------------------------------------

    def dispense_intended(self, tx_id: str, request_id: str, device: str, plan: dict[str, int],
                          value: Fiat) -> int:
        """Before a dispense command: which notes from which cassette, for which transaction.
        Refused while another dispense of the same transaction has no answer: a dispense
        whose outcome is unknown is asked about, never followed by another one blindly."""
        def go(db):
            self._no_open_intent(db, tx_id)
            return db.execute("INSERT INTO dispense_intents (tx_id, request_id, device, plan, value_minor, currency)"
                              " VALUES (?, ?, ?, ?, ?, ?)", (tx_id, request_id, device, json.dumps(plan),
                                                              value.minor, value.currency)).lastrowid
        return self._write("dispense_intent", tx_id, {"request_id": request_id, "plan": plan,
                                                      "value_minor": value.minor}, go)

    @staticmethod
    def _no_open_intent(db: sqlite3.Connection, tx_id: str) -> None:
        if db.execute("SELECT 1 FROM dispense_intents i LEFT JOIN dispense_outcomes o ON o.intent_id = i.id"
                      " WHERE i.tx_id=? AND o.intent_id IS NULL", (tx_id,)).fetchone():
            raise JournalError(f"{tx_id}: a dispense has no answer yet; ask the device, do not dispense again")

    def dispense_outcome(self, request_id: str, completion: str, exited: dict[str, int],
                         rejected: dict[str, int], exited_value: Fiat, *, outcome: str = "",
                         uncertain: dict[str, int] | None = None, uncertain_value: Fiat | None = None,
                         source: str = "device") -> None:
        """After it: what the dispenser reports as exited (the count that is paid out).
        Once per intent: a repeated answer changes nothing. Notes the device cannot account
        for (`uncertain`) go to the operator as a reconciliation item, and count as paid
        for what the kiosk owes (never paid twice), until the operator decides."""
        outcome = outcome or ("complete" if completion == "success" else "partial")
        uncertain = {k: v for k, v in (uncertain or {}).items() if v}

        def go(db):
            row = db.execute("SELECT id, tx_id, value_minor, currency FROM dispense_intents WHERE request_id=?",
                             (request_id,)).fetchone()
            if row is None:
                raise JournalError(f"no dispense intent {request_id!r}: journal the intent before dispensing")
            if db.execute("SELECT 1 FROM dispense_outcomes WHERE intent_id=?", (row["id"],)).fetchone():
                return False
            u_minor = uncertain_value.minor if uncertain_value is not None else 0
            db.execute("INSERT INTO dispense_outcomes (intent_id, completion, exited, rejected, exited_minor, outcome,"
                       " uncertain, uncertain_minor, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (row["id"], completion, json.dumps(exited), json.dumps(rejected), exited_value.minor,
                        outcome, json.dumps(uncertain), u_minor, source))
            if outcome == "unknown":
                db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (?, ?, ?)",
                           (row["tx_id"], f"dispense {request_id}: the dispenser cannot tell whether "
                            f"{json.dumps(uncertain)} notes ({u_minor} minor units) left; {exited_value.minor} minor "
                            "units are known to have exited. Count the cassettes and the customer's claim; they "
                            "are not paid again on their own", time.time()))
            self._bump(db, row["tx_id"])
            return True
        self._write("dispense_outcome", None, {"request_id": request_id, "completion": completion,
                                               "exited": exited, "rejected": rejected, "outcome": outcome,
                                               "uncertain": uncertain, "source": source}, go)

    def resolve_dispense(self, request_id: str, exited: dict[str, int], rejected: dict[str, int],
                         exited_value: Fiat | None = None, by: str = "operator") -> dict[str, Any]:
        """The operator counted what a dispense of unknown outcome really paid out: the
        answer is booked as theirs, its reconciliation item resolved, and what the sale still
        owes is collectable again with its redeem code. Only an unknown outcome is resolved,
        once: a second count of the same dispense is refused (it could re-open a code that
        has since been paid). Without `exited_value`, the notes are valued at the
        denominations the cassettes were booked with when the dispense was journaled (the
        `atm cassettes resolve` command and the service menu both book this way)."""
        def go(db):
            row = db.execute("SELECT i.id, i.tx_id, i.plan, i.currency, o.outcome FROM dispense_intents i JOIN"
                             " dispense_outcomes o ON o.intent_id = i.id WHERE i.request_id=?",
                             (request_id,)).fetchone()
            if row is None or row["outcome"] != "unknown":
                raise JournalError(f"dispense {request_id!r} has no unknown outcome to resolve (it was resolved "
                                   "already, or its outcome is known): nothing was booked")
            plan = json.loads(row["plan"])
            for what, counts in (("exited", exited), ("rejected", rejected)):
                for k, n in counts.items():
                    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or k not in plan:
                        raise JournalError(f"dispense {request_id}: {what} {counts} must be whole numbers >= 0 "
                                           f"for the cassettes it asked for, {plan}")
            if any(n > plan.get(k, 0) for k, n in exited.items()):
                raise JournalError(f"dispense {request_id}: {exited} exited is not within what was asked, {plan}")
            value = exited_value if exited_value is not None else \
                self._value_at_intent(db, row["id"], row["currency"], exited)
            complete = all(exited.get(k, 0) >= n for k, n in plan.items())
            db.execute("UPDATE dispense_outcomes SET exited=?, rejected=?, exited_minor=?, uncertain='{}',"
                       " uncertain_minor=0, outcome=?, source='operator' WHERE intent_id=?",
                       (json.dumps(exited), json.dumps(rejected), value.minor,
                        "complete" if complete else "partial", row["id"]))
            db.execute("UPDATE reconciliation SET resolved_at=? WHERE tx_id=? AND resolved_at IS NULL"
                       " AND summary LIKE ?", (time.time(), row["tx_id"], f"dispense {request_id}:%"))
            if db.execute("SELECT 1 FROM deposits WHERE tx_id=?", (row["tx_id"],)).fetchone() is None:
                # a dispense of no sale (the service menu's test dispense): only the books move
                return {"tx_id": row["tx_id"], "owed_minor": 0, "status": None}
            owed = self._owed(db, row["tx_id"]).minor
            code = db.execute("SELECT state FROM redeem_codes WHERE tx_id=?", (row["tx_id"],)).fetchone()
            if owed > 0 and code is not None:
                db.execute("UPDATE redeem_codes SET state='issued', claim_request=NULL WHERE tx_id=?", (row["tx_id"],))
                status = "owed"
            else:
                status = "completed" if owed == 0 else "parked"
            db.execute("UPDATE transactions SET status=?, updated_at=?, version=version+1 WHERE id=?",
                       (status, time.time(), row["tx_id"]))
            return {"tx_id": row["tx_id"], "owed_minor": owed, "status": status}
        return self._write("dispense_resolved", None, {"request_id": request_id, "exited": exited,
                                                       "rejected": rejected, "by": by}, go)

    @staticmethod
    def _value_at_intent(db: sqlite3.Connection, intent_id: int, currency: str, notes: dict[str, int]) -> Fiat:
        """What `notes` (cassette id -> notes) were worth by the loads in force when intent
        `intent_id` was journaled (a later refill with other notes does not change it)."""
        total = 0
        for cassette, n in notes.items():
            if not n:
                continue
            load = db.execute("SELECT denomination_minor, currency FROM cassette_loads WHERE cassette=? AND"
                              " after_intent < ? ORDER BY id DESC LIMIT 1", (cassette, intent_id)).fetchone()
            if load is None or load["currency"] != currency:
                raise JournalError(f"cassette {cassette} had no load in {currency} booked before this dispense: "
                                   "its notes cannot be valued; book them with an explicit value")
            total += load["denomination_minor"] * n
        return Fiat(total, currency)

    def unknown_dispenses(self) -> list[dict[str, Any]]:
        """Dispenses whose outcome is unknown (a power cut, a lost answer), oldest first, with
        what was asked, what is known to have exited and when the intent was journaled:
        they wait for a technician's count (resolve_dispense)."""
        out = []
        for r in self._rows("SELECT i.id, i.tx_id, i.request_id, i.plan, i.value_minor, i.currency, o.exited,"
                            " o.rejected, o.uncertain FROM dispense_intents i JOIN dispense_outcomes o"
                            " ON o.intent_id = i.id WHERE o.outcome='unknown' ORDER BY i.id"):
            item = dict(r)
            for key in ("plan", "exited", "rejected", "uncertain"):
                item[key] = json.loads(item[key])
            at = self._rows("SELECT at FROM facts WHERE kind IN ('dispense_intent', 'redeem_claimed') AND"
                            " json_extract(data, '$.request_id')=? ORDER BY id LIMIT 1", (r["request_id"],))
            item["at"] = at[0]["at"] if at else None
            out.append(item)
        return out

    def open_dispenses(self) -> list[dict[str, Any]]:
        """Intents with no outcome: after a crash, ask the device, never dispense again."""
        return [dict(r) | {"plan": json.loads(r["plan"])} for r in self._rows(
            "SELECT i.* FROM dispense_intents i LEFT JOIN dispense_outcomes o ON o.intent_id = i.id"
            " WHERE o.intent_id IS NULL ORDER BY i.id")]

    def dispenses_for(self, tx_id: str) -> list[dict[str, Any]]:
        out = []
        for r in self._rows("SELECT i.id, i.request_id, i.plan, i.value_minor, o.completion, o.exited, o.rejected,"
                            " o.exited_minor, o.outcome, o.uncertain, o.uncertain_minor, o.source"
                            " FROM dispense_intents i LEFT JOIN dispense_outcomes o ON o.intent_id = i.id"
                            " WHERE i.tx_id=? ORDER BY i.id", (tx_id,)):
            item = dict(r)
            for key in ("plan", "exited", "rejected", "uncertain"):
                item[key] = json.loads(item[key]) if item[key] is not None else None
            out.append(item)
        return out

    def dispenses_for_all(self) -> list[dict[str, Any]]:
        """Every dispense with its answer, in journal order."""
        out = []
        for tx in {r["tx_id"]: None for r in self._rows("SELECT tx_id FROM dispense_intents ORDER BY id")}:
            out += self.dispenses_for(tx)
        return sorted(out, key=lambda d: d["id"])

    def dispensed(self, tx_id: str) -> Fiat:
        """Cash that exited for this transaction, by the device's own counts."""
        currency = self.transaction(tx_id)["currency"]
        total = self._rows("SELECT COALESCE(SUM(o.exited_minor), 0) AS s FROM dispense_outcomes o JOIN"
                           " dispense_intents i ON i.id = o.intent_id WHERE i.tx_id=?", (tx_id,))[0]["s"]
        return Fiat(int(total), currency)

    # -- cash-out: cassette books -----------------------------------------------------------

    def load_cassette(self, cassette: str, denomination: Fiat, count: int, near_empty: int = 10,
                      by: str = "technician") -> None:
        """A technician (re)filled `cassette`: its count starts again from `count`."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise JournalError(f"cassette {cassette}: count must be a whole number >= 0, got {count!r}")
        if not isinstance(denomination, Fiat) or denomination.minor <= 0:
            raise JournalError(f"cassette {cassette}: denomination must be a positive amount, got {denomination!r}")

        def go(db):
            upto = db.execute("SELECT COALESCE(MAX(id), 0) FROM dispense_intents").fetchone()[0]
            db.execute("INSERT INTO cassette_loads (cassette, denomination_minor, currency, count, near_empty,"
                       " after_intent) VALUES (?, ?, ?, ?, ?, ?)",
                       (cassette, denomination.minor, denomination.currency, count, near_empty, upto))
        self._write("cassette_loaded", None, {"cassette": cassette, "denomination_minor": denomination.minor,
                                              "count": count, "near_empty": near_empty, "by": by}, go)

    def cassette_loads(self) -> list[dict[str, Any]]:
        """The latest load of every cassette, in cassette id order."""
        return [dict(r) for r in self._rows(
            "SELECT * FROM cassette_loads WHERE id IN (SELECT MAX(id) FROM cassette_loads GROUP BY cassette)"
            " ORDER BY cassette")]

    def cassette_movements(self) -> list[Any]:
        """Per cassette, what left it since its latest load (atm.cash_units.Movement)."""
        from atm.cash_units import Movement
        moves = []
        for load in self.cassette_loads():
            for r in self._rows("SELECT o.exited, o.rejected FROM dispense_outcomes o WHERE o.intent_id > ?"
                                " ORDER BY o.intent_id", (load["after_intent"],)):
                exited = json.loads(r["exited"]).get(load["cassette"], 0)
                rejected = json.loads(r["rejected"]).get(load["cassette"], 0)
                if exited or rejected:
                    moves.append(Movement(load["cassette"], exited=exited, rejected=rejected))
        return moves

    def cassette_books(self, sensors: Any = None) -> Any:
        """The books (atm.cash_units.CashBooks) from the loads and the journaled outcomes."""
        from atm.cash_units import UnitConfig, compute_books
        config = [UnitConfig(l["cassette"], Fiat(l["denomination_minor"], l["currency"]), l["count"],
                             l["near_empty"]) for l in self.cassette_loads()]
        return compute_books(config, self.cassette_movements(), sensors=sensors)

    def reject_bin(self) -> int:
        """Notes that went to the reject bin since it was last counted."""
        rows = self._rows("SELECT after_intent FROM reject_bin_counts ORDER BY id DESC LIMIT 1")
        after = rows[0]["after_intent"] if rows else 0
        total = 0
        for r in self._rows("SELECT rejected FROM dispense_outcomes WHERE intent_id > ?", (after,)):
            total += sum(json.loads(r["rejected"]).values())
        return total

    def count_reject_bin(self, counted: int, by: str = "technician") -> int:
        """A technician counted (and emptied) the reject bin. A count that differs from the
        books is a reconciliation item, never corrected silently. Returns the expected count."""
        if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
            raise JournalError(f"reject bin count must be a whole number >= 0, got {counted!r}")
        expected = self.reject_bin()

        def go(db):
            upto = db.execute("SELECT COALESCE(MAX(id), 0) FROM dispense_intents").fetchone()[0]
            db.execute("INSERT INTO reject_bin_counts (counted, expected, after_intent) VALUES (?, ?, ?)",
                       (counted, expected, upto))
            if counted != expected:
                db.execute("INSERT INTO reconciliation (tx_id, summary, created_at) VALUES (NULL, ?, ?)",
                           (f"reject bin counted {counted} notes, the books expected {expected}", time.time()))
        self._write("reject_bin_counted", None, {"counted": counted, "expected": expected, "by": by}, go)
        return expected

    # -- cash-out: sell ----------------------------------------------------------------------

    def open_sell(self, tx_id: str, cash: Fiat, fee: Fiat, rate: Decimal, sats: Sats) -> None:
        """A sale is priced: the cash asked for, the fee and the satoshis to send, journaled
        before the CAS is asked for a deposit address (the invoice id is the transaction id)."""
        def go(db):
            if db.execute("SELECT 1 FROM transactions WHERE status='open'").fetchone():
                raise JournalError("another transaction is still open")
            now = time.time()
            db.execute("INSERT INTO transactions (id, type, status, currency, address, created_at, updated_at)"
                       " VALUES (?, 'sell', 'open', ?, NULL, ?, ?)", (tx_id, cash.currency, now, now))
            db.execute("INSERT INTO deposits (tx_id, invoice_id, cash_minor, fee_minor, rate, sats_due, state)"
                       " VALUES (?, ?, ?, ?, ?, ?, 'quoted')", (tx_id, tx_id, cash.minor, fee.minor, str(rate),
                                                               sats.sat))
        self._write("sell_opened", tx_id, {"cash_minor": cash.minor, "fee_minor": fee.minor, "rate": str(rate),
                                           "sats": sats.sat}, go)

    def sell_invoiced(self, tx_id: str, address: str, index: int, expires_at: float) -> None:
        """The deposit address (already checked against the signed xpub by the CAS client)."""
        def go(db):
            db.execute("UPDATE deposits SET address=?, derivation_index=?, expires_at=?, state='invoiced'"
                       " WHERE tx_id=? AND state='quoted'", (address, index, expires_at, tx_id))
            db.execute("UPDATE transactions SET address=?, updated_at=?, version=version+1 WHERE id=?",
                       (address, time.time(), tx_id))
        self._write("sell_invoiced", tx_id, {"address": address, "index": index, "expires_at": expires_at}, go)

    def payment_proven(self, tx_id: str, txid: str, paid_sats: int, confirmations: int, in_time: bool,
                       verdict: str, entitled: Fiat) -> None:
        """The payment the kiosk verified itself, and what it entitles to. Kept once: a later
        proof of the same payment only raises the confirmations."""
        def go(db):
            row = db.execute("SELECT state FROM deposits WHERE tx_id=?", (tx_id,)).fetchone()
            if row is None:
                raise JournalError(f"no sale {tx_id!r} to prove a payment for")
            if row["state"] == "proven":
                db.execute("UPDATE deposits SET confirmations=MAX(COALESCE(confirmations, 0), ?) WHERE tx_id=?",
                           (confirmations, tx_id))
                return
            db.execute("UPDATE deposits SET txid=?, sats_received=?, confirmations=?, in_time=?, verdict=?,"
                       " entitled_minor=?, state='proven' WHERE tx_id=?",
                       (txid, paid_sats, confirmations, int(in_time), verdict, entitled.minor, tx_id))
            self._bump(db, tx_id)
        self._write("payment_proven", tx_id, {"txid": txid, "sats": paid_sats, "confirmations": confirmations,
                                              "in_time": in_time, "verdict": verdict,
                                              "entitled_minor": entitled.minor}, go)

    def deposit(self, tx_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT d.*, t.currency FROM deposits d JOIN transactions t ON t.id = d.tx_id"
                          " WHERE d.tx_id=?", (tx_id,))
        return dict(rows[0]) if rows else None

    def owed(self, tx_id: str) -> Fiat:
        """Cash the kiosk still owes for a sale: what the proven payment entitles to, less
        what exited and less what the device could not account for (the operator's to
        settle: never paid a second time on the kiosk's own decision)."""
        return self._owed(self._db_reader(), tx_id)

    def _db_reader(self) -> sqlite3.Connection:
        return self._db

    def _owed(self, db: sqlite3.Connection, tx_id: str) -> Fiat:
        with self._lock:
            row = db.execute("SELECT d.entitled_minor, t.currency FROM deposits d JOIN transactions t ON"
                             " t.id = d.tx_id WHERE d.tx_id=?", (tx_id,)).fetchone()
            if row is None:
                raise JournalError(f"no sale {tx_id!r}")
            out = db.execute("SELECT COALESCE(SUM(o.exited_minor + o.uncertain_minor), 0) FROM dispense_outcomes o"
                             " JOIN dispense_intents i ON i.id = o.intent_id WHERE i.tx_id=?", (tx_id,)).fetchone()[0]
            in_flight = db.execute("SELECT COALESCE(SUM(i.value_minor), 0) FROM dispense_intents i LEFT JOIN"
                                   " dispense_outcomes o ON o.intent_id = i.id WHERE i.tx_id=? AND o.intent_id IS NULL",
                                   (tx_id,)).fetchone()[0]
        return Fiat(max(0, row["entitled_minor"] - out - in_flight), row["currency"])

    def set_status(self, tx_id: str, status: str, point: str) -> None:
        """A cash-out transaction's status: open, dispensing, owed (a redeem code is out),
        completed, canceled, parked."""
        def go(db):
            db.execute("UPDATE transactions SET status=?, updated_at=?, version=version+1 WHERE id=?",
                       (status, time.time(), tx_id))
        self._write(point, tx_id, {"status": status}, go)

    # -- cash-out: redeem codes ------------------------------------------------------------

    @staticmethod
    def code_hash(code: str) -> str:
        import hashlib
        return hashlib.sha256(code.strip().upper().encode()).hexdigest()

    def issue_redeem(self, tx_id: str, code: str, owed: Fiat) -> None:
        """Journal the code before it is printed: what it stands for is the sale's owed cash."""
        def go(db):
            db.execute("INSERT OR IGNORE INTO redeem_codes (code_hash, tx_id, value_minor, currency, state)"
                       " VALUES (?, ?, ?, ?, 'issued')", (self.code_hash(code), tx_id, owed.minor, owed.currency))
            db.execute("UPDATE transactions SET status='owed', updated_at=?, version=version+1 WHERE id=?"
                       " AND status IN ('open', 'dispensing')", (time.time(), tx_id))
        self._write("redeem_issued", tx_id, {"owed_minor": owed.minor}, go)

    def redeem_code(self, tx_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM redeem_codes WHERE tx_id=?", (tx_id,))
        return dict(rows[0]) if rows else None

    def claim_redeem(self, code: str, tx_id: str, request_id: str, device: str, plan: dict[str, int],
                     value: Fiat) -> bool:
        """Claim a redeem code and journal the dispense that pays it, in one atomic step:
        the code must be `issued` (not claimed by a dispense on its way, not redeemed),
        and `value` must not exceed what is owed. False when the claim loses (already
        claimed or redeemed, or nothing owed): nothing is written then."""
        def go(db):
            row = db.execute("SELECT tx_id, state FROM redeem_codes WHERE code_hash=?",
                             (self.code_hash(code),)).fetchone()
            if row is None or row["tx_id"] != tx_id or row["state"] != "issued":
                return None
            if value.minor <= 0 or value.minor > self._owed(db, tx_id).minor:
                return None
            self._no_open_intent(db, tx_id)
            changed = db.execute("UPDATE redeem_codes SET state='claimed', claim_request=? WHERE code_hash=?"
                                 " AND state='issued'", (request_id, self.code_hash(code))).rowcount
            if changed != 1:
                return None
            return db.execute("INSERT INTO dispense_intents (tx_id, request_id, device, plan, value_minor, currency)"
                              " VALUES (?, ?, ?, ?, ?, ?)", (tx_id, request_id, device, json.dumps(plan),
                                                              value.minor, value.currency)).lastrowid
        # one fact, one crash point: the claim and the dispense intent are durable together
        intent = self._write("redeem_claimed", tx_id, {"request_id": request_id, "plan": plan,
                                                       "value_minor": value.minor}, go)
        return intent is not None

    def settle_redeem(self, tx_id: str) -> str:
        """After a claimed dispense's outcome (or its reconciliation): the code is redeemed
        when nothing is owed any more, else it can be scanned again for the rest."""
        def go(db):
            owed = self._owed(db, tx_id).minor
            state = "redeemed" if owed == 0 else "issued"
            db.execute("UPDATE redeem_codes SET state=?, claim_request=NULL WHERE tx_id=? AND state='claimed'",
                       (state, tx_id))
            return state
        return self._write("redeem_settled", tx_id, {}, go)

    def claimed_codes(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM redeem_codes WHERE state='claimed'")]

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
