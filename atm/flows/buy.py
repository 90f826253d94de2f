"""The buy flow: a customer's cash becomes bitcoin sent to the address they showed.

Owns the buy's money rules: which address, which notes fit the limit, the
escrow decision (journaled before STACK or RETURN), what the credited cash is
worth, settlement (atm.settlement) and the receipt. Device commands go out
through the kiosk's DeviceSet, blocking calls in a thread; nothing here
waits on a screen or a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, ClassVar

from atm.cas.interface import Quote
from atm.flows.base import FlowContext, TransactionFlow
from atm.payloads import BitcoinAddress, PayloadError, PaymentRequest, parse_payload
from atm.settlement import Settlement
from hal import BillValidator, Fiat, NoteCredited, NoteEscrowed, NoteRejected, NoteReturned, NoteStacked, Sats
from hal.errors import DeviceError
from hal.events import Event

log = logging.getLogger("atm.flows.buy")


class BuyFlow(TransactionFlow):
    kind: ClassVar[str] = "buy"

    def __init__(self, ctx: FlowContext, validator: BillValidator, settlement: Settlement,
                 market_quote: Callable[[], Quote | None]) -> None:
        super().__init__(ctx)
        self.validator = validator
        self.settlement = settlement
        self._market_quote = market_quote
        self.address: str | None = None
        self.scan_error: str | None = None

    # -- address ----------------------------------------------------------------------

    def accept_address(self, text: str) -> bool:
        try:
            payload = parse_payload(text, network=self.ctx.config.network)
        except PayloadError as exc:
            self.scan_error = str(exc)
            log.info("scan refused (%s): %s", exc.reason, exc)
            return False
        if isinstance(payload, PaymentRequest):
            payload = payload.address
        if not isinstance(payload, BitcoinAddress):
            self.scan_error = "That code is not a bitcoin address. Please show your wallet's receive address."
            return False
        self.scan_error = None
        self.address = payload.address
        return True

    # -- opening and closing ------------------------------------------------------------

    def open(self) -> None:
        """The customer may now insert cash: the transaction is journaled."""
        self.tx_id = f"buy-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.ctx.journal.open_buy(self.tx_id, self.address or "", self.ctx.config.currency)
        self.message = None

    def close_cash(self) -> None:
        if self.tx_id:
            self.ctx.journal.close_cash(self.tx_id)

    def abandon(self) -> None:
        if self.tx_id and self.ctx.journal.transaction(self.tx_id)["status"] == "open":
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

    async def on_escrow(self, event: NoteEscrowed, taking_cash: bool) -> None:
        """Decide, journal, then tell the validator: stack if the note fits, else return."""
        if event.value is None:                 # the driver already returned it
            self.message = "Note returned: this kiosk does not take that note."
            return
        reason = None
        currency = self.ctx.config.currency
        if not taking_cash or not self.tx_id:
            reason = "not taking cash now"
        elif event.value.currency != currency:
            reason = f"this kiosk takes {currency} only"
        elif event.value > self.room():
            settings = self.ctx.settings()
            reason = f"it would pass the limit of {settings.max_buy}" if settings else "no limits configured"
        decision = "return" if reason else "stack"
        self.ctx.journal.escrow_decided(event.device, event.code, event.value, decision,
                                        self.tx_id if decision == "stack" else None)
        try:
            if decision == "stack":
                await asyncio.to_thread(self.validator.stack)
            else:
                self.message = f"Note returned: {reason}."
                await asyncio.to_thread(self.validator.return_note)
        except DeviceError as exc:
            self.ctx.alert("device", f"validator refused {decision}: {exc}", "warning")
            if decision == "stack" and self.tx_id:
                # STACK never reached the device: the note is not on its way to the cashbox
                self.ctx.journal.note_returned(event.device, self.tx_id)
                self.message = "That note could not be taken. Please take it and try again."

    async def on_event(self, event: Event) -> str | None:
        if isinstance(event, NoteCredited):
            self.message = f"{event.value} received" if event.value is not None else "Note received"
            return "credited"
        if isinstance(event, NoteStacked):
            self.ctx.journal.note_stacked(event.device)
            return None
        if isinstance(event, NoteReturned):
            if self.tx_id:
                self.ctx.journal.note_returned(event.device, self.tx_id)
            self.message = self.message or f"Note returned: {event.reason}"
            return "credited"
        if isinstance(event, NoteRejected):
            self.message = f"Note not accepted ({event.reason}). Please try another note."
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
        quote = self._market_quote()
        rate = sends[-1].rate if sends else (quote.rate if quote else Decimal(0))
        return receipts.buy_receipt(
            operator=receipts.OperatorInfo(config.operator_name, config.operator_contact),
            kiosk_id=config.kiosk_id, tx_id=self.tx_id, when=when,
            cash=Fiat(summary["fiat_minor"], summary["currency"]), fee=fee, rate=rate,
            currency=summary["currency"], sats=Sats(sum(s.sats.sat for s in sends)),
            address=summary["address"] or "", txid=(summary["txids"] or [None])[0], language=config.language)

    # -- screens ------------------------------------------------------------------------

    def screen_data(self, screen: str) -> dict[str, Any]:
        config = self.ctx.config
        currency = config.currency
        quote = self._market_quote()
        if screen == "scan_address":
            return {"error": self.scan_error, "network": config.network}
        if screen in ("insert_cash", "confirm"):
            settings = self.ctx.settings()
            credited = self.credited()
            sats, fee = quote.sats_for(credited) if quote else (Sats(0), Fiat.zero(currency))
            data = {"address": self.address, "inserted": str(credited), "inserted_minor": credited.minor,
                    "sats": sats.sat, "btc": f"{sats.btc:.8f}", "min": str(settings.min_buy) if settings else "",
                    "max": str(settings.max_buy) if settings else "", "room": str(self.room()),
                    "message": self.message, "can_finish": credited.minor > 0 and not self.money_in_flight()}
            if screen == "insert_cash":
                return data
            rate = f"{quote.rate:,.2f} {currency}/BTC" if quote else ""
            return {"address": self.address, "cash": str(credited), "fee": str(fee),
                    "btc": data["btc"], "sats": sats.sat, "rate": rate}
        if screen == "sending":
            return {"address": self.address, "btc": ""}
        if screen == "receipt":
            journal = self.ctx.journal
            summary = journal.summary(self.tx_id) if self.tx_id else {}
            sats = Sats(summary.get("sats", 0))
            pending = bool(self.tx_id and journal.pending_sends_for(self.tx_id))
            return {"txid": (summary.get("txids") or [None])[0],
                    "cash": str(Fiat(summary.get("fiat_minor", 0), currency)), "btc": f"{sats.btc:.8f}",
                    "address": self.address, "pending": pending, "message": self.message if pending else None}
        return {}


def now() -> datetime:
    return datetime.now(timezone.utc)
