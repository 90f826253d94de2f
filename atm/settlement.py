"""Settlement: turns credited cash into coins sent, and nothing else.

Every send is journaled with its request id before the CAS is asked; a send the
CAS did not confirm is asked again with the same id, so the CAS never sends
twice. After a crash, `recover` finishes what can be finished and parks, for
the operator, what cannot be decided alone. No screens, no devices: the kiosk
calls this and shows the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from atm.cas.interface import CasService, Quote
from atm.journal import Journal, SendRequest

log = logging.getLogger("atm.settlement")


class Settlement:
    def __init__(self, journal: Journal, cas: CasService, latest_quote: Callable[[], Quote | None]) -> None:
        self.journal = journal
        self.cas = cas
        self._latest_quote = latest_quote
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
                quote = self._latest_quote() or await self.cas.quote(tx["currency"])
                sats, fee = quote.sats_for(unsent)
                number = len(journal.sends_for(tx_id)) + 1
                request = journal.request_send(tx_id, f"{tx_id}-send-{number}", tx["address"], unsent, fee, sats,
                                               quote.rate)
                await self._deliver(request)
            if (journal.unsent(tx_id).minor == 0 and not journal.pending_sends_for(tx_id)
                    and journal.notes_in_flight(tx_id) == 0 and journal.transaction(tx_id)["status"] == "sending"):
                journal.finish(tx_id, "completed" if journal.credited(tx_id).minor else "canceled")
                await self.cas.upload_transaction(journal.summary(tx_id))

    def needs_settling(self, tx_id: str) -> bool:
        return self.journal.unsent(tx_id).minor > 0 or bool(self.journal.pending_sends_for(tx_id))

    def unsettled(self) -> list[str]:
        """Transactions past taking cash that still owe coins (after an outage, or a late credit)."""
        return [tx["id"] for tx in self.journal.transactions(("sending", "parked", "completed", "canceled"))
                if self.needs_settling(tx["id"])]

    async def _deliver(self, request: SendRequest) -> None:
        if request.sats.sat <= 0:               # the fee took it all: nothing to send, nothing owed
            self.journal.send_confirmed(request.request_id, "")
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
            tx_id = tx["id"]
            if tx["status"] == "open":
                in_flight = journal.notes_in_flight(tx_id)
                if in_flight:
                    journal.park(tx_id, f"{in_flight} note(s) were on their way to the cashbox when the kiosk "
                                 "stopped, and the validator never confirmed them; count the cashbox")
                if journal.credited(tx_id).minor == 0 and not in_flight:
                    journal.finish(tx_id, "canceled")
                    continue
                journal.close_cash(tx_id)
            journal.record_fact("recovered", tx_id, status=tx["status"])
            ids.append(tx_id)
        return ids
