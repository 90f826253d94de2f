"""What the kiosk does at start (and while a dispense stays open) about cash-out work a
previous run left unfinished: a dispense journaled but not answered is asked of the device
and booked as it says, never repeated; interrupted sales and claimed codes are closed or parked.

Journal and dispenser only: no screens, no state table, no CAS (atm.kiosk calls it).
"""

from __future__ import annotations

from typing import Any

from hal.dispenser import CashDispenser
from hal.money import Fiat
from atm.flows.base import Alert
from atm.flows.cash_out import DeviceSilent, ask_device_last_operation, books_value
from atm.journal import Journal


class CashOutRecovery:
    """One pass over the journal's open cash-out work, made for each pass so that it
    uses the dispenser the kiosk has at that moment."""

    def __init__(self, journal: Journal, dispenser: CashDispenser | None, currency: str, alert: Alert) -> None:
        self.journal = journal
        self.dispenser = dispenser
        self.currency = currency
        self.alert = alert

    async def run(self) -> None:
        """Every dispense intent with no answer is asked about, never repeated; sales that
        were showing their address when the kiosk stopped go to the operator; codes claimed
        by a dispense that never went out are free again."""
        journal, dispenser = self.journal, self.dispenser
        for intent in journal.open_dispenses():
            try:
                self._reconcile_dispense(intent, await ask_device_last_operation(dispenser)
                                         if dispenser is not None else None)
            except DeviceSilent as exc:
                # asked again by the background loop; no cash-out starts meanwhile
                self.alert("dispense_open", f"dispense {intent['request_id']} has no answer and the dispenser "
                           f"cannot be asked now ({exc}); asking again later", "critical")
                return
        for claimed in journal.claimed_codes():
            journal.settle_redeem(claimed["tx_id"])
        for tx in journal.transactions(("open", "dispensing")):
            if tx["type"] != "sell":
                continue
            deposit = journal.deposit(tx["id"]) or {}
            owed = journal.owed(tx["id"])
            if tx["status"] == "open" and deposit.get("state") in (None, "quoted"):
                journal.finish(tx["id"], "canceled")         # no address was shown: nothing can be paid
            elif journal.redeem_code(tx["id"]) is None and (owed.minor > 0 or deposit.get("state") != "proven"):
                journal.park(tx["id"], f"sale {tx['id']}: the kiosk stopped before the customer got a redeem code; "
                             f"address {deposit.get('address')}, {owed} owed by the journal: pay by hand once the "
                             "payment is proven")
                self.alert("sell_interrupted", f"sale {tx['id']} interrupted: parked for the operator", "critical")
            elif owed.minor == 0 and deposit.get("state") == "proven":
                unknown = any(d["outcome"] == "unknown" for d in journal.dispenses_for(tx["id"]))
                if unknown:
                    journal.park(tx["id"], f"sale {tx['id']}: a dispense has an unknown outcome")
                else:
                    journal.finish(tx["id"], "completed")
            else:
                journal.set_status(tx["id"], "owed", "sell_recovered")

    def _reconcile_dispense(self, intent: dict[str, Any], op: Any) -> None:
        """Book an intent with no answer from what the device itself remembers (LCDM-4000
        LAST STATUS), following the host rules of the LCDM fact sheet: a dispense that differs
        from the last booked answer is this one; anything else is an unknown outcome for the
        operator, who counts and books it (`atm cassettes resolve`)."""
        journal, dispenser = self.journal, self.dispenser
        plan = {k: int(v) for k, v in intent["plan"].items() if v}
        books = journal.cassette_books()
        model = getattr(dispenser, "model", None)
        # LAST STATUS covers one command: only a plan the driver sent as one command is decided by it
        one_command = model is not None and sum(plan.values()) <= model.max_per_command and all(
            n <= model.max_per_cassette for n in plan.values())
        booked: tuple[dict[str, int], dict[str, int], str] | None = None
        if op is not None and one_command:
            exited = {k: v for k, v in op.exited.items() if v}
            rejected = {k: v for k, v in op.rejected.items() if v}
            # "none" (nothing since power-on) decides nothing: a unit that lost power may have
            # forgotten notes that left (the fact sheet's host rules book that as unknown)
            if op.command == "dispense" and (exited, rejected) != self._last_booked_outcome() \
                    and all(exited.get(k, 0) <= plan.get(k, 0) for k in exited):
                complete = all(exited.get(k, 0) >= n for k, n in plan.items())
                booked = (exited, rejected, "complete" if complete else "partial")
        if booked is not None:
            exited, rejected, outcome = booked
            journal.dispense_outcome(intent["request_id"], "success" if outcome == "complete" else "hardwareError",
                                     exited, rejected, books_value(books, exited, self.currency),
                                     outcome=outcome, source="recovery")
            self.alert("dispense_recovered", f"dispense {intent['request_id']} booked from the dispenser's own "
                       f"record after a restart: {exited or 'nothing'} exited", "warning")
        else:
            journal.dispense_outcome(intent["request_id"], "timeOut", {}, {}, Fiat.zero(self.currency),
                                     outcome="unknown", uncertain=plan,
                                     uncertain_value=books_value(books, plan, self.currency),
                                     source="recovery")
            self.alert("dispense_unknown", f"dispense {intent['request_id']} was under way when the kiosk "
                       "stopped and the dispenser cannot tell what left: reconcile", "critical")

    def _last_booked_outcome(self) -> tuple[dict[str, int], dict[str, int]] | None:
        """The device's last answer the journal booked: the baseline LAST STATUS must differ from."""
        rows = [d for d in self.journal.dispenses_for_all() if d["outcome"] not in (None, "unknown")
                and d["source"] in ("device", "recovery")]
        if not rows:
            return None
        return ({k: v for k, v in rows[-1]["exited"].items() if v}, {k: v for k, v in rows[-1]["rejected"].items() if v})
