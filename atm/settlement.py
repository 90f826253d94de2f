"""Settlement of buys: turns credited cash into coins sent, and nothing else.

Every send is journaled with its request id before the CAS is asked; a send the
CAS did not confirm is asked again with the same id, so the CAS never sends
twice. Every send of a transaction is priced with the quote journaled with it
(what the customer confirmed), and fees are over the transaction's total: the
percent fee of all its cash, the fixed fee once, waived when the purchase ended
below the minimum, so a customer's cash never buys 0 sats. After a crash, `recover` finishes what can be finished and parks, for
the operator, what cannot be decided alone. No screens, no devices: the kiosk
calls this and shows the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from atm.cas.interface import CasError, CasService, KioskSettings, Quote
from atm.journal import Journal, SendRequest
from hal.money import Fiat, Sats

log = logging.getLogger("atm.settlement")


class QuoteRefused(CasError):
    """The transaction's confirmed quote is outside the signed bounds now in force."""


class Settlement:
    def __init__(self, journal: Journal, cas: CasService, latest_quote: Callable[[], Quote | None],
                 settings: Callable[[], KioskSettings | None] | None = None) -> None:
        self.journal = journal
        self.cas = cas
        self._latest_quote = latest_quote
        self._settings = settings or (lambda: None)
        self._lock = asyncio.Lock()        # one settlement at a time: request ids are numbered per transaction

    async def settle(self, tx_id: str) -> None:
        """Send whatever this transaction's credited cash has not yet paid for, and close it
        once everything is sent. Raises CasError when the CAS cannot be reached: the journal
        keeps the request, and a later call sends it with the same id."""
        journal = self.journal
        async with self._lock:
            tx = journal.transaction(tx_id)
            for request in journal.pending_sends_for(tx_id):
                await self._deliver(request)
            unsent = journal.unsent(tx_id)
            if unsent.minor > 0 and tx["status"] != "open":
                request = await self._price(tx, unsent)
                if request.status == "requested":
                    await self._deliver(request)
            if (journal.unsent(tx_id).minor == 0 and not journal.pending_sends_for(tx_id)
                    and journal.notes_in_flight(tx_id) == 0 and journal.transaction(tx_id)["status"] == "sending"):
                journal.finish(tx_id, "completed" if journal.credited(tx_id).minor else "canceled")
                await self.cas.upload_transaction(journal.summary(tx_id))

    async def _price(self, tx: dict, unsent: Fiat) -> SendRequest:
        """Journal the next send: what the whole credited cash buys at the confirmed quote,
        less what earlier sends of this transaction already paid and charged."""
        journal, tx_id = self.journal, tx["id"]
        locked = journal.quote_for(tx_id)
        if locked is None:                  # a journal from before quotes were locked
            quote = self._latest_quote() or await self.cas.quote(tx["currency"])
            min_buy, waived = Fiat.zero(tx["currency"]), None
        else:
            quote, min_buy, waived = locked.quote, locked.min_buy, locked.fixed_waived
        settings = self._settings()
        bounds = settings.rate_bounds if settings is not None else None
        if bounds is not None and not bounds[0] <= quote.rate <= bounds[1]:
            if tx["status"] != "parked":
                journal.park(tx_id, f"the confirmed rate {quote.rate} is outside the signed range {bounds[0]}.."
                             f"{bounds[1]} now in force: nothing was sent; send at an agreed rate or refund")
            raise QuoteRefused(f"{tx_id}: the confirmed rate {quote.rate} is outside the signed range "
                               f"{bounds[0]}..{bounds[1]} now in force; the operator must decide")
        total = journal.credited(tx_id)
        earlier = journal.sends_for(tx_id)
        if waived is None:                  # decided once, at the first send, then kept
            waived = total < min_buy
        sats_total, fee_total = quote.sats_for(total, waive_fixed=waived)
        fee = fee_total - Fiat(sum(s.fee.minor for s in earlier), total.currency)
        sats = Sats(max(0, sats_total.sat - sum(s.sats.sat for s in earlier)))
        if fee.minor < 0:                   # rounding never gives back more than was charged
            fee = Fiat.zero(total.currency)
        return journal.request_send(tx_id, f"{tx_id}-send-{len(earlier) + 1}", tx["address"], unsent, fee, sats,
                                    quote.rate, fixed_waived=waived)

    def needs_settling(self, tx_id: str) -> bool:
        return self.journal.unsent(tx_id).minor > 0 or bool(self.journal.pending_sends_for(tx_id))

    def unsettled(self) -> list[str]:
        """Transactions past taking cash that still owe coins (after an outage, or a late credit)."""
        return [tx["id"] for tx in self.journal.transactions(("sending", "parked", "completed", "canceled"))
                if tx["type"] == "buy" and self.needs_settling(tx["id"])]

    async def _deliver(self, request: SendRequest) -> None:
        if request.sats.sat <= 0:               # never asked, never marked sent: parked for the operator
            return
        result = await self.cas.send_coins(request.request_id, request.address, request.sats)
        self.journal.crash_point("coins_sent")      # the CAS sent, the journal does not know yet
        self.journal.send_confirmed(request.request_id, result.txid)

    def reopen_interrupted(self) -> list[str]:
        """After a crash: close every transaction that was still taking cash. A note that was
        on its way to the cashbox with no settled event is parked for the operator; a
        transaction with no cash at all is canceled. Returns the ids that need settling."""
        journal = self.journal
        ids = []
        for tx in journal.transactions(("open", "sending", "parked")):
            if tx["type"] != "buy":         # each flow kind recovers its own transactions
                continue
            tx_id = tx["id"]
            if tx["status"] == "open":
                in_flight = journal.notes_in_flight(tx_id)
                if in_flight:
                    journal.park(tx_id, f"{in_flight} note(s) were on their way to the cashbox when the kiosk "
                                 "stopped, and the validator never confirmed them; count the cashbox")
                    for device in journal.devices_in_flight(tx_id):
                        journal.note_unresolved(device, "the kiosk stopped before the validator settled it")
                if journal.credited(tx_id).minor == 0 and not in_flight:
                    journal.finish(tx_id, "canceled")
                    continue
                journal.close_cash(tx_id)
            journal.record_fact("recovered", tx_id, status=tx["status"])
            ids.append(tx_id)
        return ids
