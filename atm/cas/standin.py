"""An in-process stand-in for the CAS, for a kiosk that is not paired (development,
tests of the kiosk core). It keeps its own wallet ledger in SQLite so that it,
like a real server, outlives a kiosk crash and dedupes sends by request id.

It never routes real money: the txids it returns are derived from the request id.
With signed-style sell rules (`sell=`) it also sells: deposit addresses from a regtest
wallet of its own, payments made on a simulated chain (simulators.cas.chain, replayed
from the ledger after a restart) and judged by the same code as CasClient's
(atm.cas.sell), so a stand-in kiosk proves its payments too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from hal.money import Fiat, Sats
from atm.cas.alerts import make_alert
from atm.cas.interface import (CasRefused, CasUnavailable, KioskSettings, PaymentRefused, Quote, SellPayment,
                               SellSettings, SendResult)
from atm.cas.payment_proof import PaymentProofError
from atm.cas.sell import CUSTOMER_REASONS, AcceptedInvoice, invoice_expiry, judge_payment
from atm.cas.wire import SellInvoice


class StandinCas:
    def __init__(self, ledger_path: str | Path, *, settings: KioskSettings, rate: Decimal = Decimal("50000"),
                 currency: str = "EUR", sell: Mapping[str, Any] | None = None) -> None:
        """`sell`: the sell rules as the operator would sign them (min_sell_minor,
        max_sell_minor, fee_percent, fixed_fee_minor, zero_conf_cap_sats,
        confirmations_required, invoice_ttl_s); the checkpoint is the simulated chain's."""
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
        self.clock = time.time       # the kiosk's wall clock for sell invoices; tests move it
        self.chain: Any = None
        if sell is not None:
            self._open_sell(sell)

    # ---- cash-out -------------------------------------------------------------------

    def _open_sell(self, sell: Mapping[str, Any]) -> None:
        # Simulation only: imported here so a kiosk that does not sell never loads it.
        from embit import bip32
        from embit.networks import NETWORKS
        from simulators.cas.chain import SimChain
        self._db.execute("CREATE TABLE IF NOT EXISTS sell_kv (name TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS sell_invoices (id TEXT PRIMARY KEY, record TEXT, txids TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS chain_ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT)")
        seed = self._kv("wallet_seed")
        if seed is None:
            seed = os.urandom(32).hex()
            self._db.execute("INSERT INTO sell_kv VALUES ('wallet_seed', ?)", (seed,))
        net = NETWORKS["regtest"]
        self.xpub = (bip32.HDKey.from_seed(bytes.fromhex(seed), version=net["xprv"]).derive("m/84h/1h/0h")
                     .to_public().to_string(version=net["zpub"]))
        # The chain is deterministic: replaying its operations rebuilds it after a restart.
        self.chain = SimChain()
        self._txs: dict[str, Any] = {}
        for (op,) in self._db.execute("SELECT op FROM chain_ops ORDER BY seq").fetchall():
            self._apply(json.loads(op))
        fixed = int(sell.get("fixed_fee_minor", 0))
        currency = self._quote.currency
        self._settings = dataclasses.replace(self._settings, wallet={"xpub": self.xpub, "network": "regtest"},
                                             sell=SellSettings(
            min_sell=Fiat(int(sell["min_sell_minor"]), currency), max_sell=Fiat(int(sell["max_sell_minor"]), currency),
            fee_percent=Decimal(str(sell.get("fee_percent", "0"))),
            fixed_fee=Fiat(fixed, currency) if fixed else None,
            zero_conf_cap_sats=int(sell["zero_conf_cap_sats"]),
            confirmations_required=int(sell["confirmations_required"]),
            invoice_ttl_s=int(sell["invoice_ttl_s"]), checkpoint=self.chain.checkpoint))

    def _kv(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM sell_kv WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def _apply(self, op: Mapping[str, Any]) -> None:
        if op["op"] == "pay":
            tx = self.chain.pay(op["address"], op["sats"])
            self._txs[tx.txid().hex()] = tx
        else:
            self.chain.mine(op["count"])

    def _record(self, op: Mapping[str, Any]) -> None:
        self._db.execute("INSERT INTO chain_ops (op) VALUES (?)", (json.dumps(op),))
        self._apply(op)

    def _invoice(self, invoice_id: str) -> tuple[AcceptedInvoice, list[str]]:
        row = self._db.execute("SELECT record, txids FROM sell_invoices WHERE id=?", (invoice_id,)).fetchone()
        if row is None:
            raise CasRefused(f"sell invoice {invoice_id}: the stand-in CAS never made it")
        return AcceptedInvoice.from_json(json.loads(row[0])), json.loads(row[1])

    def _require_sell(self) -> SellSettings:
        if self._settings.sell is None or self.chain is None:
            raise CasRefused("the stand-in CAS has no sell rules ([sell] table), so the kiosk does not sell")
        return self._settings.sell

    async def sell_invoice(self, invoice_id: str, cash: Fiat, amount: Sats) -> SellInvoice:
        """A deposit address of the stand-in's own wallet, idempotent by invoice id."""
        self._check()
        sell = self._require_sell()
        from atm.cas.wallet import deposit_address
        with self._lock:
            row = self._db.execute("SELECT record FROM sell_invoices WHERE id=?", (invoice_id,)).fetchone()
            if row is None:
                index = self._db.execute("SELECT COUNT(*) FROM sell_invoices").fetchone()[0]
                now = self.clock()
                record = AcceptedInvoice(id=invoice_id, address=deposit_address(self.xpub, "regtest", index),
                                         index=index, sats=amount.sat, network="regtest", accepted_at=now,
                                         expires_at=invoice_expiry(int(now) + sell.invoice_ttl_s, now, sell))
                self._db.execute("INSERT INTO sell_invoices VALUES (?, ?, '[]')",
                                 (invoice_id, json.dumps(record.to_json())))
            else:
                record = AcceptedInvoice.from_json(json.loads(row[0]))
        if record.sats != amount.sat:
            raise CasRefused(f"sell invoice {invoice_id}: made for {record.sats} sat, asked again for {amount.sat}")
        return SellInvoice(id=invoice_id, address=record.address, index=record.index, sats=record.sats,
                           expires_at=int(record.expires_at))

    async def sell_payment(self, invoice_id: str) -> SellPayment:
        """The invoice's payment as proven from the simulated chain (see CasClient.sell_payment)."""
        self._check()
        sell = self._require_sell()
        with self._lock:
            invoice, txids = self._invoice(invoice_id)
            evidence = self.chain.evidence(self._txs[txids[0]]) if txids else None

        def first_seen(txid: str, now: float) -> float:
            with self._lock:
                self._db.execute("INSERT OR IGNORE INTO sell_kv VALUES (?, ?)", (f"seen:{invoice_id}:{txid}", repr(now)))
                return float(self._kv(f"seen:{invoice_id}:{txid}"))  # type: ignore[arg-type]

        try:
            return judge_payment(invoice, evidence, cas_claims_payment=False, sell=sell, now=self.clock(),
                                 first_seen=first_seen)
        except PaymentProofError as exc:
            detail = f"sell invoice {invoice_id}: {exc}"
            await self.report_alert("payment_refused", {"what": "sell-payment", "reason": exc.reason,
                                                        "detail": detail},
                                    "warning" if exc.reason in CUSTOMER_REASONS else "critical")
            raise PaymentRefused(f"{detail}; not paid out", exc.reason) from None

    def pay_invoice(self, invoice_id: str, sats: int, *, confirmations: int = 0) -> str:
        """Simulate the customer's payment of `sats` to the invoice's address (then
        `confirmations` blocks mined); returns the txid."""
        self._require_sell()
        with self._lock:
            invoice, txids = self._invoice(invoice_id)
            self._record({"op": "pay", "address": invoice.address, "sats": sats})
            txid = self.chain.mempool[-1].txid().hex()
            self._db.execute("UPDATE sell_invoices SET txids=? WHERE id=?", (json.dumps([*txids, txid]), invoice_id))
            if confirmations:
                self._record({"op": "mine", "count": confirmations})
        return txid

    def mine(self, count: int = 1) -> None:
        """Mine `count` blocks on the simulated chain."""
        self._require_sell()
        with self._lock:
            self._record({"op": "mine", "count": count})

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
