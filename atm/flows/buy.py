"""The buy flow: a customer's cash becomes bitcoin sent to the address they showed.

Owns the buy's money rules: which address, the quote the customer is shown and
confirms (journaled with the transaction, refreshed when stale before the
customer commits), which notes fit the limit, the escrow decision (journaled
before STACK or RETURN), the minimum purchase, what the credited cash is worth
(fees over the total), settlement (atm.settlement) and the receipt. Device commands go out
through the kiosk's DeviceSet, blocking calls in a thread; nothing here
waits on a screen or a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from atm.amounts import Rate, SatCount
from atm.cas.interface import Quote
from atm.flows.base import FlowContext, TransactionFlow
from atm.flows.pricing import Pricing, quote_problem
from atm.journal import JournalWriteError
from atm.payloads import BitcoinAddress, PayloadError, PaymentRequest, parse_payload
from atm.settlement import Settlement
from atm.texts import message, rejection_key, scan_refusal
from hal import BillValidator, Fiat, NoteCredited, NoteEscrowed, NoteRejected, NoteReturned, NoteStacked, Sats
from hal.errors import DeviceError
from hal.events import Event

log = logging.getLogger("atm.flows.buy")


class BuyFlow(TransactionFlow):
    kind: ClassVar[str] = "buy"

    def __init__(self, ctx: FlowContext, validator: BillValidator, settlement: Settlement,
                 pricing: Pricing) -> None:
        super().__init__(ctx)
        self.validator = validator
        self.settlement = settlement
        self.pricing = pricing
        self.address: str | None = None
        self.scan_error: str | None = None
        self.quote: Quote | None = None          # the quote journaled with this transaction
        self.quote_at: float | None = None       # when the CAS gave it (pricing's clock)

    # -- address ----------------------------------------------------------------------

    def accept_address(self, text: str) -> bool:
        try:
            payload = parse_payload(text, network=self.ctx.config.network)
        except PayloadError as exc:
            self.scan_error = scan_refusal(exc.reason, self.ctx.config.network)
            log.info("scan refused (%s): %s", exc.reason, exc)
            return False
        if isinstance(payload, PaymentRequest):
            payload = payload.address
        if not isinstance(payload, BitcoinAddress):
            self.scan_error = message("message.scan_not_address")
            return False
        if self.pricing.quote is None:
            log.info("scan refused: buying is paused (%s)", self.pricing.why_not())
            self.scan_error = message("message.buy_paused")
            return False
        self.scan_error = None
        self.address = payload.address
        return True

    # -- opening and closing ------------------------------------------------------------

    def open(self) -> None:
        """The customer may now insert cash: the transaction is journaled with the quote
        the cash screen shows."""
        self.tx_id = f"buy-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.quote, self.quote_at = self.pricing.quote, self.pricing.fetched_at
        settings = self.ctx.settings()
        self.ctx.journal.open_buy(self.tx_id, self.address or "", self.ctx.config.currency, self.quote,
                                  settings.min_buy if settings else None)
        self.message = None

    def quote_is_fresh(self) -> bool:
        """The confirmed quote may be committed to: young enough, inside the bounds in force."""
        if self.quote is None or self.quote_at is None:
            return False
        if self.pricing.clock() - self.quote_at > self.pricing.max_age():
            return False
        return quote_problem(self.quote, self.ctx.settings()) is None

    async def refresh_quote(self) -> bool:
        """A stale quote is replaced by a fresh one before the customer commits, and shown
        again. False when no usable rate came (the customer cannot confirm yet)."""
        quote = await self.pricing.refresh()
        settings = self.ctx.settings()
        if quote is None or settings is None or not self.tx_id:
            log.info("price cannot be confirmed: %s", self.pricing.why_not())
            self.message = message("message.price_unavailable")
            return False
        self.ctx.journal.lock_quote(self.tx_id, quote, settings.min_buy)
        self.quote, self.quote_at = quote, self.pricing.fetched_at
        self.message = message("message.price_updated")
        return True

    def reaches_minimum(self) -> bool:
        settings = self.ctx.settings()
        return settings is not None and self.credited() >= settings.min_buy

    def why_not(self, action: str) -> dict[str, Any] | None:
        if action == "finish_cash" and self.has_money_in() and not self.reaches_minimum():
            settings = self.ctx.settings()
            if settings is None:
                return message("message.buy_paused_no_settings")
            return message("message.minimum_purchase", min=settings.min_buy, more=settings.min_buy - self.credited(),
                           credited=self.credited())
        if action == "finish_cash":
            return message("message.insert_first")
        if action == "confirm" and self.has_money_in():
            return self.message or message("message.price_updated")
        return None

    def waives_fixed_fee(self) -> bool:
        settings = self.ctx.settings()
        return settings is not None and self.credited() < settings.min_buy

    def close_cash(self) -> None:
        """No more cash. A customer who left without confirming (timeout, cancel, fault)
        committed to no price: a stale quote gives way to the fresh market one, journaled."""
        if not self.tx_id:
            return
        fresh = self.pricing.fresh()
        settings = self.ctx.settings()
        if not self.quote_is_fresh() and fresh is not None and settings is not None:
            self.ctx.journal.lock_quote(self.tx_id, fresh, settings.min_buy)
            self.quote, self.quote_at = fresh, self.pricing.fetched_at
        self.ctx.journal.close_cash(self.tx_id)

    def abandon(self) -> None:
        if self.tx_id and not self.has_money_in() and not self.money_in_flight() \
                and self.ctx.journal.transaction(self.tx_id)["status"] == "open":
            # left before sending: only possible with nothing credited (the table's guards)
            self.ctx.journal.finish(self.tx_id, "canceled")

    # -- guards -------------------------------------------------------------------------

    def credited(self) -> Fiat:
        if not self.tx_id:
            return Fiat.zero(self.ctx.config.currency)
        return self.ctx.journal.credited(self.tx_id)

    def has_money_in(self) -> bool:
        return bool(self.tx_id) and self.credited().minor > 0

    def money_in_flight(self) -> bool:
        return bool(self.tx_id) and self.ctx.journal.notes_in_flight(self.tx_id) > 0

    def room(self) -> Fiat:
        """How much more cash this purchase may take before it passes the signed limit."""
        settings = self.ctx.settings()
        if settings is None:
            return Fiat.zero(self.ctx.config.currency)
        return settings.max_buy - self.credited()

    def accepted_notes(self) -> list[Fiat]:
        room = self.room()
        return [d for d in self.validator.denominations if d.currency == room.currency and d <= room]

    # -- notes --------------------------------------------------------------------------

    async def on_escrow(self, event: NoteEscrowed, taking_cash: bool) -> bool:
        """Decide, journal, then tell the validator: stack if the note fits, else return.
        True when STACK went to the device (its settled event is now awaited)."""
        if event.value is None:                 # the driver already returned it
            self.message = message("message.note_returned_not_taken")
            return False
        reason = None
        words = None                            # what the customer is told
        currency = self.ctx.config.currency
        if not taking_cash or not self.tx_id:
            reason = "not taking cash now"
            words = message("message.note_returned_not_taking")
        elif event.value.currency != currency:
            reason = f"this kiosk takes {currency} only"
            words = message("message.note_returned_currency", currency=currency)
        elif self.ctx.journal.unresolved_on(event.device):
            # the previous note's settled event would be ambiguous: one note on its way at a time
            reason = "the previous note is still being processed"
            words = message("message.note_returned_busy")
        elif event.value > self.room():
            settings = self.ctx.settings()
            reason = f"it would pass the limit of {settings.max_buy}" if settings else "no limits configured"
            words = message("message.note_returned_over_limit", max=settings.max_buy if settings else "")
        decision = "return" if reason else "stack"
        try:
            self.ctx.journal.escrow_decided(event.device, event.code, event.value, decision,
                                            self.tx_id if decision == "stack" else None)
        except JournalWriteError:
            # nothing may be stacked unjournaled; giving the note back takes no money
            with contextlib.suppress(DeviceError):
                await asyncio.to_thread(self.validator.return_note)
            raise
        try:
            if decision == "stack":
                await asyncio.to_thread(self.validator.stack)
                return True
            log.info("note of %s returned: %s", event.value, reason)
            self.message = words
            await asyncio.to_thread(self.validator.return_note)
        except DeviceError as exc:
            self.ctx.alert("device", f"validator refused {decision}: {exc}", "warning")
            if decision == "stack" and self.tx_id:
                # STACK never reached the device: the note is not on its way to the cashbox
                self.ctx.journal.note_returned(event.device, self.tx_id)
                self.message = message("message.note_not_taken_retry")
        return False

    async def on_event(self, event: Event) -> str | None:
        if isinstance(event, NoteCredited):
            self.message = message("message.note_received", amount=event.value if event.value is not None else "")
            return "credited"
        if isinstance(event, NoteStacked):
            self.ctx.journal.note_stacked(event.device)
            return None
        if isinstance(event, NoteReturned):
            self.ctx.journal.note_returned(event.device, self.tx_id)
            returned_before = isinstance(self.message, dict) and self.message["key"].startswith("message.note_returned")
            self.message = self.message if returned_before else message("message.note_returned")
            return "credited"
        if isinstance(event, NoteRejected):
            self.message = message(rejection_key(event.reason),
                                   notes=self.accepted_notes())
            return "credited"
        return None

    # -- settlement and receipt ---------------------------------------------------------

    async def settle(self) -> None:
        if self.tx_id:
            await self.settlement.settle(self.tx_id)

    def receipt(self, when: datetime) -> Any:
        from atm import receipts
        config, journal = self.ctx.config, self.ctx.journal
        assert self.tx_id is not None
        summary = journal.summary(self.tx_id)
        sends = journal.sends_for(self.tx_id)
        fee = Fiat(sum(s.fee.minor for s in sends), summary["currency"])
        rate = sends[-1].rate if sends else (self.quote.rate if self.quote else Decimal(0))
        return receipts.buy_receipt(
            operator=receipts.OperatorInfo(config.operator_name, config.operator_contact),
            kiosk_id=config.kiosk_id, tx_id=self.tx_id, when=when,
            cash=Fiat(summary["fiat_minor"], summary["currency"]), fee=fee, rate=rate,
            currency=summary["currency"], sats=Sats(sum(s.sats.sat for s in sends)),
            address=summary["address"] or "", txid=(summary["txids"] or [None])[0], language=self.language or config.language)

    # -- screens ------------------------------------------------------------------------

    def terms(self) -> dict[str, Any]:
        """Fee terms and effective price of this purchase's quote (before any note goes in)."""
        if self.quote is None:
            return self.pricing.terms()
        settings = self.ctx.settings()
        currency = self.ctx.config.currency
        return {"fee_percent": str(self.quote.fee_percent),
                "fixed_fee": self.quote.fixed_fee or Fiat.zero(currency),
                "price_per_btc": Rate(self.quote.price_per_btc(), currency),
                "min": settings.min_buy if settings else "", "max": settings.max_buy if settings else ""}

    def screen_data(self, screen: str) -> dict[str, Any]:
        """What the screen shows of this purchase; amounts typed (Fiat, Sats, Rate), written
        in the customer's number format by atm.screens."""
        config = self.ctx.config
        currency = config.currency
        quote = self.quote
        if screen == "scan_address":
            return {"error": self.scan_error, "network": config.network, **self.pricing.terms()}
        if screen in ("insert_cash", "confirm"):
            credited = self.credited()
            waive = self.waives_fixed_fee()
            sats, fee = quote.sats_for(credited, waive_fixed=waive) if quote else (Sats(0), Fiat.zero(currency))
            if credited.minor == 0:
                fee = Fiat.zero(currency)
            data = {"address": self.address, "inserted": credited, "inserted_minor": credited.minor,
                    "sats": sats.sat, "sats_shown": SatCount(sats.sat), "btc": sats, "room": self.room(),
                    "message": self.message,
                    "can_finish": credited.minor > 0 and not self.money_in_flight() and self.reaches_minimum(),
                    "fee": fee, **self.terms()}
            if screen == "insert_cash":
                return data
            rate = Rate(quote.rate, currency) if quote else ""
            return {"address": self.address, "cash": credited, "fee": fee, "btc": sats,
                    "sats": sats.sat, "sats_shown": SatCount(sats.sat), "rate": rate,
                    "fixed_fee_waived": waive and quote is not None
                    and quote.fixed_fee is not None, "message": self.message, **self.terms()}
        if screen == "sending":
            return {"address": self.address, "btc": ""}
        if screen == "receipt":
            journal = self.ctx.journal
            summary = journal.summary(self.tx_id) if self.tx_id else {}
            sats = Sats(summary.get("sats", 0))
            pending = bool(self.tx_id and journal.pending_sends_for(self.tx_id))
            return {"txid": (summary.get("txids") or [None])[0],
                    "cash": Fiat(summary.get("fiat_minor", 0), currency), "btc": sats,
                    "address": self.address, "pending": pending, "message": self.message if pending else None}
        return {}


def now() -> datetime:
    return datetime.now(timezone.utc)
