"""A sell-capable kiosk for tests: the stand-in CAS with signed cash-out settings and a
payment the test controls (the two cash-out calls of atm.cas.interface, exactly), and
the real LCDM driver on the LCDM wire simulator over TCP, cassettes booked in the journal."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from atm.cas.interface import CasUnavailable, PaymentRefused, SellPayment, SellSettings
from atm.cas.payment_proof import Checkpoint, VerifiedPayment
from atm.cas.standin import StandinCas, standin_settings
from atm.cas.wire import SellInvoice
from atm.journal import Journal
from atm.kiosk import DeviceSet, Kiosk
from drivers.lcdm.driver import Lcdm2000Dispenser, Lcdm4000Dispenser
from hal import Fiat
from simulators.lcdm import LcdmSimulator
from simulators.standin import StandinPrinter, StandinScanner, StandinValidator
from tests.atm.kiosk_harness import _PIN_HASH, make_config

DEPOSIT = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
CASSETTES_4000 = [(1000, 30), (2000, 30), (5000, 20)]


def sell_settings(**overrides: Any) -> SellSettings:
    base = SellSettings(min_sell=Fiat(1000, "EUR"), max_sell=Fiat(50_000, "EUR"), fee_percent=Decimal("5"),
                        fixed_fee=None, zero_conf_cap_sats=1_000_000, confirmations_required=1, invoice_ttl_s=600,
                        checkpoint=Checkpoint(0, bytes(32), 2 ** 255))
    return dataclasses.replace(base, **overrides)


class SellCas(StandinCas):
    """The stand-in CAS plus cash-out. `payment` is what sell_payment reports next (the
    kiosk-proven view); `refuse_address` makes sell_invoice fail as the real client does
    for an address not derived from the signed xpub; `hostile` raises PaymentRefused."""

    def __init__(self, ledger: Path, sell: SellSettings | None = None) -> None:
        signed = dataclasses.replace(standin_settings(Fiat(500, "EUR"), Fiat(10_000, "EUR"), "5", _PIN_HASH),
                                     sell=sell or sell_settings())
        super().__init__(ledger, settings=signed)
        self.invoices: dict[str, SellInvoice] = {}
        self.payments: dict[str, SellPayment] = {}
        self.refuse_address = False
        self.hostile: str | None = None
        self.unreachable = False
        self.payment_calls = 0

    async def report_alert(self, kind: str, detail: Any = None, severity: str = "warning") -> str:
        # the kiosk hands a text; the stand-in keeps mappings
        return await super().report_alert(kind, detail if not isinstance(detail, str) else {"text": detail},
                                          severity)

    async def sell_invoice(self, invoice_id: str, cash: Fiat, amount: Any) -> SellInvoice:
        from atm.cas.errors import AddressRefused
        if self.unreachable:
            raise CasUnavailable("test: CAS away")
        if self.refuse_address:
            raise AddressRefused(f"sell invoice {invoice_id}: address is not 0/7 of the signed xpub; refused")
        invoice = SellInvoice(id=invoice_id, address=DEPOSIT, index=len(self.invoices), sats=amount.sat,
                              expires_at=int(time.time()) + 600)
        self.invoices[invoice_id] = invoice
        return invoice

    async def sell_payment(self, invoice_id: str) -> SellPayment:
        self.payment_calls += 1
        if self.unreachable:
            raise CasUnavailable("test: CAS away")
        if self.hostile:
            raise PaymentRefused(f"sell payment {invoice_id}: evidence refused", self.hostile)
        return self.payments.get(invoice_id, SellPayment(invoice_id, "waiting", detail="waiting for your payment"))

    def pay(self, invoice_id: str, sats: int | None = None, confirmations: int = 1, in_time: bool = True) -> None:
        """The kiosk can now prove a payment of `sats` (default: exactly what was asked)."""
        asked = self.invoices[invoice_id].sats
        self.payments[invoice_id] = SellPayment(invoice_id, "proven", VerifiedPayment(
            "ab" * 32, asked if sats is None else sats, confirmations), in_time=in_time)


class SellKiosk:
    """A kiosk with a dispenser on the LCDM simulator (or none), the SellCas, stand-ins elsewhere."""

    def __init__(self, tmp: Path, *, model: str = "lcdm4000", cassettes: list[tuple[int, int]] | None = None,
                 cas: SellCas | None = None, sim: LcdmSimulator | None = None, book: bool = True,
                 **config: Any) -> None:
        cassettes = cassettes or (CASSETTES_4000 if model == "lcdm4000" else [(2000, 30), (5000, 20)])
        self.config = make_config(tmp, kiosk_id="kiosk-1", **config)
        self.journal = Journal(tmp / "journal.sqlite")
        self.cas = cas or SellCas(tmp / "cas-ledger.sqlite")
        self.sim = sim or LcdmSimulator(model, cassettes, note_s=0.001)
        self.own_sim = sim is None
        url = self.sim.url or self.sim.start("tcp")
        cls = Lcdm4000Dispenser if model == "lcdm4000" else Lcdm2000Dispenser
        self.dispenser = cls(url, currency="EUR", denominations=[d for d, _ in cassettes], response_timeout=10.0)
        ids = self.dispenser.cassette_ids
        if book and not self.journal.cassette_loads():
            for cid, (denomination, count) in zip(ids, cassettes):
                self.journal.load_cassette(cid, Fiat(denomination, "EUR"), count, near_empty=3)
        self.scanner = StandinScanner()
        self.printer = StandinPrinter()
        self.kiosk = Kiosk(self.config, self.journal, self.cas,
                           DeviceSet(validator=StandinValidator(), scanner=self.scanner, printer=self.printer,
                                     dispenser=self.dispenser))
        self.kiosk.payment_poll_s = 0.05

    async def __aenter__(self) -> "SellKiosk":
        await self.kiosk.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.kiosk.stop()
        self.journal.close()
        if self.own_sim:
            self.sim.stop()

    @property
    def screen(self) -> str:
        return self.kiosk.snapshot()["screen"]

    @property
    def data(self) -> dict[str, Any]:
        return self.kiosk.snapshot()["data"]

    async def wait_for(self, predicate: Any, timeout: float = 15.0) -> None:
        import asyncio
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met; state {self.kiosk.state}, screen {self.kiosk.snapshot()}")
            await asyncio.sleep(0.01)

    async def act(self, action: str, **fields: Any) -> dict[str, Any]:
        return await self.kiosk.handle_action({"action": action, **fields})

    async def sell(self, minor: int) -> str:
        """Choose `minor` and wait for the deposit address; returns the sale's id."""
        assert (await self.act("start_sell"))["ok"], self.data
        await self.wait_for(lambda: self.screen == "sell_amount")
        answer = await self.act("choose_amount", minor=minor)
        assert answer["ok"], (answer, self.data)
        await self.wait_for(lambda: self.screen in ("sell_pay", "sell_receipt"))
        assert self.kiosk.tx_id is not None
        return self.kiosk.tx_id

    def exited_notes(self) -> int:
        return sum(c.dispensed for c in self.sim.cassettes)
