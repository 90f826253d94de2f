"""Paying cash out of the dispenser, for the flows that owe a customer cash (sell, redeem).

Write-ahead as everywhere: the dispense intent (notes per cassette, request id) is in
the journal before the command, the device's answer after it. A command is never sent
twice: a partial answer is followed by a *new* dispense for the rest (planned from the
books after the rejects), an unknown one by a question to the device and otherwise a
reconciliation item. No I/O of its own beyond the dispenser's non-blocking dispense().
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from hal.dispenser import CashDispenser
from hal.errors import DeviceError
from hal.events import DispenseCompleted
from hal.money import Fiat
from atm.cash_units import CashBooks, payable_amounts, plan_dispense
from atm.flows.base import FlowContext, TransactionFlow

log = logging.getLogger("atm.flows.cash_out")

MAX_DISPENSES = 3            # commands per payout (the first and the rest after rejects), then a redeem code


def books_value(books: CashBooks, notes: Mapping[str, int], currency: str) -> Fiat:
    """What `notes` are worth by the books; cassettes the books do not know are worth
    nothing here (reported by the books as a mismatch instead)."""
    total = Fiat.zero(currency)
    for unit in books.units:
        total = total + unit.denomination * int(notes.get(unit.id, 0))
    return total


def payable_now(ctx: FlowContext, dispenser: CashDispenser | None, up_to: Fiat | None = None) -> list[Fiat]:
    """Amounts the cassettes can pay exactly now, by the journal's books."""
    if dispenser is None:
        return []
    books = ctx.journal.cassette_books()
    if books.currency != ctx.config.currency:
        return []
    return payable_amounts(books, up_to=up_to)


class CashOutFlow(TransactionFlow):
    """A transaction that pays cash: the dispensing half shared by sell and redeem."""

    def __init__(self, ctx: FlowContext, dispenser: CashDispenser | None) -> None:
        super().__init__(ctx)
        self.dispenser = dispenser
        self.request_id: str | None = None       # the dispense on its way
        self.dispenses = 0
        self.failed_units: set[str] = set()
        self.outcome_note: str | None = None     # what to tell the customer about the payout

    def say(self, key: str, **values: Any) -> str:
        """A customer text in the customer's language (atm/locale/*.toml)."""
        from atm import texts
        return texts.text(self.language or self.ctx.config.language, key, **values)

    # -- guards ----------------------------------------------------------------------------

    def money_in_flight(self) -> bool:
        return self.request_id is not None

    # -- dispensing ------------------------------------------------------------------------

    def owed(self) -> Fiat:
        assert self.tx_id is not None
        return self.ctx.journal.owed(self.tx_id)

    def plan(self, amount: Fiat) -> dict[str, int] | None:
        books = self.ctx.journal.cassette_books()
        plan = plan_dispense(books, amount, exclude=self.failed_units)
        return None if plan is None else dict(plan.notes)

    def largest_payable(self, amount: Fiat) -> tuple[Fiat, dict[str, int]] | None:
        """The most of `amount` the cassettes can pay exactly now (a partial payout)."""
        books = self.ctx.journal.cassette_books()
        for value in reversed(payable_amounts(books, up_to=amount)):
            plan = plan_dispense(books, value, exclude=self.failed_units)
            if plan is not None:
                return value, dict(plan.notes)
        return None

    def _new_request(self) -> str:
        assert self.tx_id is not None
        self.dispenses += 1
        return f"{self.tx_id}-d{len(self.ctx.journal.dispenses_for(self.tx_id)) + 1}"

    def intend(self, plan: dict[str, int], value: Fiat) -> str:
        """Journal the intent; the command goes out only after this returned."""
        assert self.tx_id is not None and self.dispenser is not None
        request_id = self._new_request()
        self.ctx.journal.dispense_intended(self.tx_id, request_id, self._device(), plan, value)
        return request_id

    def send(self, request_id: str, plan: dict[str, int]) -> None:
        """The dispense command, once, after its intent is durable."""
        assert self.dispenser is not None
        self.request_id = request_id
        try:
            self.dispenser.dispense(request_id, plan)
            self.ctx.journal.crash_point("dispense_sent")     # the command is out, its answer not yet in
        except DeviceError as exc:
            # The command never went out (busy, port closed): the answer is "nothing exited".
            self.ctx.alert("dispenser", f"dispense {request_id} not started: {exc}", "critical")
            self.record(DispenseCompleted(device=self._device(), request_id=request_id, completion=_hw_error(),
                                          exited={}, rejected={}, detail=str(exc), requested=plan,
                                          outcome="partial", error="notStarted"), source="kiosk")

    def _device(self) -> str:
        return str(getattr(self.dispenser, "name", "dispenser"))

    def record(self, event: DispenseCompleted, source: str = "device") -> None:
        """The device's answer, journaled once; notes it cannot account for go to the operator."""
        if source == "device":
            self.ctx.journal.crash_point("dispense_answered")  # the notes are out, the journal does not know
        books = self.ctx.journal.cassette_books()
        currency = self.ctx.config.currency
        exited = {k: int(v) for k, v in event.exited.items() if v}
        rejected = {k: int(v) for k, v in event.rejected.items() if v}
        uncertain = {k: int(v) for k, v in event.uncertain.items() if v} if event.outcome == "unknown" else {}
        self.ctx.journal.dispense_outcome(
            event.request_id, event.completion.value, exited, rejected, books_value(books, exited, currency),
            outcome=event.outcome, uncertain=uncertain, uncertain_value=books_value(books, uncertain, currency),
            source=source)
        if event.outcome == "unknown":
            self.ctx.alert("dispense_unknown", f"dispense {event.request_id}: the dispenser cannot tell what left "
                           f"({event.detail or event.error}); parked for reconciliation", "critical")
        elif event.outcome == "partial":
            self.ctx.alert("dispense_partial", f"dispense {event.request_id}: {event.error or 'stopped'} "
                           f"({event.detail})", "warning")
            for unit, asked in event.requested.items():
                if event.exited.get(unit, 0) < asked:
                    self.failed_units.add(unit)
        if self.request_id == event.request_id:
            self.request_id = None

    def give_up_waiting(self) -> None:
        """The dispenser never answered within the screen's bound: the notes asked for are
        booked as uncertain (the operator counts), never dispensed again."""
        if self.request_id is None or self.tx_id is None:
            return
        request_id = self.request_id
        intent = next((d for d in self.ctx.journal.dispenses_for(self.tx_id) if d["request_id"] == request_id), None)
        plan = intent["plan"] if intent else {}
        self.record(DispenseCompleted(device=self._device(), request_id=request_id, completion=_timeout(),
                                      exited={}, rejected={}, detail="no answer from the dispenser in time",
                                      requested=plan, outcome="unknown", uncertain=plan, error="noAnswer"),
                    source="kiosk")

    def next_dispense(self) -> tuple[str, dict[str, int]] | None:
        """After an answer: the next dispense for what is still owed, journaled and ready to
        send; None when nothing is owed or the cassettes cannot pay it (a redeem code then)."""
        owed = self.owed()
        if owed.minor <= 0 or self.dispenses >= MAX_DISPENSES or self.dispenser is None:
            return None
        plan = self.plan(owed)
        value = owed
        if plan is None:
            best = self.largest_payable(owed)
            if best is None:
                return None
            value, plan = best
        return self.intend(plan, value), plan


def _hw_error() -> Any:
    from hal.status import Completion
    return Completion.HARDWARE_ERROR


def _timeout() -> Any:
    from hal.status import Completion
    return Completion.TIMEOUT


class DeviceSilent(Exception):
    """The dispenser keeps a record of its last operation but could not be asked now."""


async def ask_device_last_operation(dispenser: CashDispenser) -> Any:
    """The device's own record of its last operation (LCDM-4000 LAST STATUS); None on a
    model that keeps none. Raises DeviceSilent when the device could not be asked."""
    try:
        return await asyncio.to_thread(dispenser.last_operation)
    except DeviceError as exc:
        raise DeviceSilent(str(exc)) from exc
