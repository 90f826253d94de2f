"""An in-process stand-in for the CAS, for a kiosk that is not paired (development,
tests of the kiosk core). It keeps its own wallet ledger in SQLite so that it,
like a real server, outlives a kiosk crash and dedupes sends by request id.

It never routes real money: the txids it returns are derived from the request id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from hal.money import Fiat, Sats
from atm.cas.alerts import make_alert
from atm.cas.interface import CasUnavailable, KioskSettings, Quote, SendResult


class StandinCas:
    def __init__(self, ledger_path: str | Path, *, settings: KioskSettings, rate: Decimal = Decimal("50000"),
                 currency: str = "EUR") -> None:
        if settings.rate_bounds is None:
            # As an operator would sign them: its own rate sits well inside.
            settings = dataclasses.replace(settings, rate_bounds=(rate / 10, rate * 10))
        self._settings = settings
        self._quote = Quote(currency=currency, rate=rate, fee_percent=settings.fee_percent,
                            fixed_fee=settings.fixed_fee)
        self.available = True          # tests flip this to simulate an outage
        path = Path(ledger_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS sends (request_id TEXT PRIMARY KEY, address TEXT, sats INTEGER,"
                         " txid TEXT, at REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, version INTEGER, record TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS alerts (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE,"
                         " kind TEXT, severity TEXT, at REAL, detail TEXT)")

    def settings(self) -> KioskSettings:
        return self._settings

    async def quote(self, currency: str) -> Quote:
        self._check()
        if currency != self._quote.currency:
            raise CasUnavailable(f"stand-in CAS quotes {self._quote.currency}, not {currency}")
        return self._quote

    async def send_coins(self, request_id: str, address: str, amount: Sats) -> SendResult:
        self._check()
        with self._lock:
            row = self._db.execute("SELECT txid FROM sends WHERE request_id=?", (request_id,)).fetchone()
            if row:
                return SendResult(request_id, row[0])
            txid = hashlib.sha256(f"standin:{request_id}".encode()).hexdigest()
            self._db.execute("INSERT INTO sends VALUES (?, ?, ?, ?, ?)",
                             (request_id, address, amount.sat, txid, time.time()))
        return SendResult(request_id, txid)

    async def upload_transaction(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            row = self._db.execute("SELECT version FROM uploads WHERE id=?", (record["id"],)).fetchone()
            if row and row[0] >= record["version"]:
                return
            self._db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?)",
                             (record["id"], record["version"], json.dumps(record, default=str)))

    async def report_alert(self, kind: str, detail: Mapping[str, Any] | None = None,
                           severity: str = "warning") -> str:
        """Keep an alert as the CAS would (same arguments as CasClient.report_alert)."""
        alert = make_alert(kind, detail, severity)
        with self._lock:
            self._db.execute("INSERT INTO alerts (id, kind, severity, at, detail) VALUES (?, ?, ?, ?, ?)",
                             (alert["id"], kind, severity, alert["at"], json.dumps(alert["detail"])))
        return alert["id"]

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, kind, severity, at, detail FROM alerts ORDER BY seq").fetchall()
        return [{"id": r[0], "kind": r[1], "severity": r[2], "at": r[3], "detail": json.loads(r[4])} for r in rows]

    def status(self) -> dict[str, Any]:
        with self._lock:
            alerts = self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
        return {"mode": "standin", "reachable": self.available, "paired": False,
                "note": "not paired with a CAS: development stand-in", "alerts": alerts}

    def is_reachable(self, max_offline_s: float) -> bool:
        return self.available

    def sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"request_id": r[0], "address": r[1], "sats": r[2], "txid": r[3]}
                    for r in self._db.execute("SELECT request_id, address, sats, txid FROM sends ORDER BY at")]

    def _check(self) -> None:
        if not self.available:
            raise CasUnavailable("stand-in CAS set unavailable")


def standin_settings(min_buy: Fiat, max_buy: Fiat, fee_percent: str, pin_hash: str | None, *,
                     fixed_fee: Fiat | None = None, quote_max_age_s: int = 60) -> KioskSettings:
    return KioskSettings(version=0, min_buy=min_buy, max_buy=max_buy, fee_percent=Decimal(fee_percent),
                         technician_pin_hash=pin_hash, fixed_fee=fixed_fee if fixed_fee and fixed_fee.minor else None,
                         quote_max_age_s=quote_max_age_s)
