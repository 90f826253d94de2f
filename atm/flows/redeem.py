"""Redeem: a customer scans the code of an earlier sale and collects what is still owed.

A code is only a claim ticket (atm.redeem_codes): what is owed lives in the journal. An
unconfirmed payment is proven again first (CasService.sell_payment, never the CAS's
word). The claim and the dispense intent are one atomic journal step
(Journal.claim_redeem), so a code pays at most once, across restarts and even when it
is scanned twice at the same moment.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from hal.dispenser import CashDispenser
from hal.events import DispenseCompleted, Event
from hal.money import Fiat, Sats
from atm.cas.interface import CasError, PaymentRefused
from atm.flows.base import FlowContext
from atm.flows.cash_out import CashOutFlow
from atm import texts
from atm.flows.sell import prove_and_entitle, policy_words, sell_settings
from atm.journal import JournalError
from atm.redeem_codes import RedeemCodeError, RedeemCodes


class RedeemFlow(CashOutFlow):
    kind = "redeem"

    def __init__(self, ctx: FlowContext, dispenser: CashDispenser | None, codes: RedeemCodes) -> None:
        super().__init__(ctx, dispenser)
        self.codes = codes
        self.code: str | None = None
        self.paid_now = Fiat.zero(ctx.config.currency)

    def has_money_in(self) -> bool:
        return self.request_id is not None

    # -- the claim ---------------------------------------------------------------------------

    async def claim(self, text: str) -> str:
        """Check the scanned code, prove the payment if it was not yet, claim and start the
        dispense. Returns "dispensing" or "redeem_refused" (self.message says why)."""
        try:
            claim = self.codes.check(text)
        except RedeemCodeError as exc:
            self.message = self.say({"not_a_code": "redeem.not_a_code", "other_kiosk": "redeem.other_kiosk"}
                               .get(exc.reason, "redeem.invalid"))
            if exc.reason == "forged":
                self.ctx.alert("redeem_forged", "a forged redeem code was scanned", "warning")
            return "redeem_refused"
        journal = self.ctx.journal
        row = journal.redeem_code(claim.tx_id)
        if row is None or journal.code_hash(text) != row["code_hash"]:
            self.message = self.say("redeem.unknown_code")
            return "redeem_refused"
        self.tx_id, self.code = claim.tx_id, text.strip()
        if row["state"] == "redeemed":
            self.message = self.say("redeem.already_paid")
            return "redeem_refused"
        if row["state"] != "issued":
            self.message = self.say("redeem.in_progress")
            return "redeem_refused"
        deposit = journal.deposit(claim.tx_id) or {}
        if deposit.get("state") != "proven":
            verdict = await self._prove(claim.tx_id)
            if verdict is None:
                return "redeem_refused"
            if verdict != "pay":
                deposit = journal.deposit(claim.tx_id) or {}
                self.message = policy_words(self.ctx, verdict, self._policy(verdict), language=self.language)
                journal.set_status(claim.tx_id, "completed", "tx_completed")
                return "redeem_refused"
        owed = self.owed()
        if owed.minor <= 0:
            self.message = self.say("redeem.nothing_owed")
            return "redeem_refused"
        plan = self.plan(owed)
        value = owed
        if plan is None:
            best = self.largest_payable(owed)
            if best is None:
                self.message = self.say("redeem.cannot_pay_now")
                return "redeem_refused"
            value, plan = best
        request_id = f"{claim.tx_id}-r{uuid.uuid4().hex[:8]}"
        try:
            won = journal.claim_redeem(self.code, claim.tx_id, request_id, self._device(), plan, value)
        except JournalError as exc:              # a dispense of this sale still has no answer
            self.message = self.say("redeem.blocked")
            self.ctx.alert("redeem_blocked", f"redeem {claim.tx_id}: {exc}", "warning")
            return "redeem_refused"
        if not won:
            self.message = self.say("redeem.in_progress")
            return "redeem_refused"
        self.dispenses += 1
        self.send(request_id, plan)
        return "dispensing"

    async def _prove(self, tx_id: str) -> str | None:
        sell = sell_settings(self.ctx)
        check = getattr(self.ctx.cas, "sell_payment", None)
        if sell is None or check is None:
            self.message = self.say("redeem.unavailable")
            return None
        try:
            payment = await check(tx_id)
        except PaymentRefused as exc:
            self.ctx.alert("payment_refused", f"redeem {tx_id}: payment evidence refused ({exc.reason}): {exc}",
                           "critical")
            self.message = self.say("redeem.not_verified")
            return None
        except CasError:
            self.message = self.say("redeem.cannot_check")
            return None
        verdict = prove_and_entitle(self.ctx, tx_id, payment, sell)
        if verdict is None:
            self.message = self.say("redeem.not_confirmed")
            return None
        return verdict.value

    def _policy(self, verdict: str) -> str:
        sell = sell_settings(self.ctx)
        if sell is None:
            return "hold"
        return sell.late_payment if verdict == "late" else sell.invalid_payment

    # -- the payout --------------------------------------------------------------------------

    async def on_event(self, event: Event) -> str | None:
        if not isinstance(event, DispenseCompleted) or event.request_id != self.request_id:
            return None
        self.record(event)
        return self._finish()

    def timed_out(self) -> None:
        self.give_up_waiting()
        self._finish()

    def _finish(self) -> str:
        assert self.tx_id is not None
        journal = self.ctx.journal
        # the device's answer is journaled (record) before the code can be marked redeemed
        state = journal.settle_redeem(self.tx_id)
        self.paid_now = sum((Fiat(d["exited_minor"] or 0, self.ctx.config.currency)
                             for d in journal.dispenses_for(self.tx_id) if d["request_id"].startswith(
                                 f"{self.tx_id}-r")), Fiat.zero(self.ctx.config.currency))
        unknown = any(d["outcome"] == "unknown" for d in journal.dispenses_for(self.tx_id))
        if state == "redeemed" and not unknown:
            journal.set_status(self.tx_id, "completed", "tx_completed")
            self.message = None
        elif unknown:
            journal.park(self.tx_id, f"redeem {self.tx_id}: a dispense has an unknown outcome")
            self.message = self.say("sell.unknown")
        else:
            self.message = self.say("redeem.partial", amount=self.owed())
        return "dispensed"

    def abandon(self) -> None:
        return None

    async def settle(self) -> None:
        return None

    def receipt(self, when: datetime) -> Any:
        from atm import receipts
        config = self.ctx.config
        assert self.tx_id is not None
        deposit = self.ctx.journal.deposit(self.tx_id) or {}
        return receipts.sell_receipt(
            operator=receipts.OperatorInfo(config.operator_name, config.operator_contact), kiosk_id=config.kiosk_id,
            tx_id=self.tx_id, when=when, cash=self.paid_now, fee=Fiat(deposit.get("fee_minor") or 0, config.currency),
            rate=Decimal(deposit.get("rate") or 0), currency=config.currency,
            sats=Sats(int(deposit.get("sats_received") or 0)), address=deposit.get("address") or "",
            txid=deposit.get("txid"), language=self.language or config.language)

    def screen_data(self, screen: str) -> dict[str, Any]:
        data: dict[str, Any] = {"currency": self.ctx.config.currency, "message": self.message,
                                "labels": dict(texts.catalogue(self.language or self.ctx.config.language).get("sell_screen", {}))}
        if self.tx_id is not None and screen == "redeem_receipt":
            data.update(tx_id=self.tx_id, paid_out=self.paid_now,
                        owed=self.owed() if self.ctx.journal.deposit(self.tx_id) else None)
        return data
