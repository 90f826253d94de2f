"""The sale: a customer sends bitcoin, the kiosk pays cash (beside the buy in atm.flows).

Money rules: only amounts the cassettes can pay now and the signed limits allow; the
satoshis asked are priced once (atm.flows.sell_terms) and journaled before the CAS is
asked for a deposit address; the address must derive from the operator's signed xpub
(the CAS client refuses any other); cash leaves only on a payment the kiosk proved
itself (CasService.sell_payment), under the signed zero-conf cap and policy. Whatever
is still owed when the screen ends (unconfirmed at the expiry, a partial payout) is
printed as a redeem code. No screens or timers here: atm.kiosk routes and draws.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from hal.dispenser import CashDispenser
from hal.events import DispenseCompleted, Event
from hal.money import Fiat, Sats
from atm.cas.interface import CasError, CasRefused, CasUnavailable, PaymentRefused, SellSettings
from atm.flows.base import FlowContext
from atm.flows.cash_out import CashOutFlow, payable_now
from atm.flows.sell_terms import PaymentVerdict, SellQuote, bip21_uri, entitlement
from atm.redeem_codes import RedeemCodes
from atm import texts

MAX_OFFERED = 8              # amounts on the choice screen


def sell_settings(ctx: FlowContext) -> SellSettings | None:
    settings = ctx.settings()
    return getattr(settings, "sell", None) if settings is not None else None


def payable_in_limits(ctx: FlowContext, dispenser: CashDispenser | None) -> list[Fiat]:
    """Every amount the cassettes can pay exactly now inside the signed sell limits."""
    sell = sell_settings(ctx)
    if sell is None or sell.max_sell.currency != ctx.config.currency:
        return []
    return [a for a in payable_now(ctx, dispenser, up_to=sell.max_sell) if a.minor >= sell.min_sell.minor]


def offered_amounts(ctx: FlowContext, dispenser: CashDispenser | None) -> list[Fiat]:
    """The buttons of the choice screen: a few of the payable amounts, round ones first
    (multiples of the largest note the cassettes hold), spread over the range."""
    amounts = payable_in_limits(ctx, dispenser)
    if len(amounts) <= MAX_OFFERED:
        return amounts
    books = ctx.journal.cassette_books()
    largest = max((u.denomination.minor for u in books.units if u.available), default=1)
    round_ones = [a for a in amounts if a.minor % largest == 0] or amounts
    if len(round_ones) <= MAX_OFFERED:
        return round_ones
    step = (len(round_ones) - 1) / (MAX_OFFERED - 1)
    picked = sorted({round(i * step) for i in range(MAX_OFFERED)})
    return [round_ones[i] for i in picked]


def prove_and_entitle(ctx: FlowContext, tx_id: str, payment: Any, sell: SellSettings) -> PaymentVerdict | None:
    """Journal a payment the kiosk proved and what it entitles to (the signed policy)."""
    if payment.state != "proven" or payment.proof is None:
        return None
    deposit = ctx.journal.deposit(tx_id)
    assert deposit is not None
    cash = Fiat(deposit["cash_minor"], deposit["currency"])
    verdict = entitlement(deposit["sats_due"], payment.proof.paid_sats, cash, in_time=payment.in_time,
                          invalid_payment=sell.invalid_payment, late_payment=sell.late_payment)
    ctx.journal.payment_proven(tx_id, payment.proof.txid, payment.proof.paid_sats, payment.proof.confirmations,
                               payment.in_time, verdict.verdict.value, verdict.cash)
    if verdict.verdict is not PaymentVerdict.PAY or verdict.excess_sats:
        ctx.alert("sell_payment", f"sale {tx_id}: {verdict.verdict.value}, {payment.proof.paid_sats} sat of "
                  f"{deposit['sats_due']} ({verdict.excess_sats} sat over); policy {verdict.policy}", "warning")
    return verdict.verdict


def say(ctx: FlowContext, key: str, *, language: str | None = None, **values: Any) -> str:
    """A customer text from the language files (atm/locale/*.toml), in the customer's
    language where they chose one."""
    return texts.text(language or ctx.config.language, key, **values)


def policy_words(ctx: FlowContext, verdict: str | None, policy: str, excess_sats: int = 0,
                 language: str | None = None) -> str:
    """The signed policy, in words for the customer."""
    keep = say(ctx, "sell.keep_hold" if policy == "hold" else "sell.keep_refund", language=language)
    if verdict == PaymentVerdict.UNDERPAID.value:
        return say(ctx, "sell.underpaid", language=language) + " " + keep
    if verdict == PaymentVerdict.LATE.value:
        return say(ctx, "sell.late", language=language) + " " + keep
    if excess_sats:
        return say(ctx, "sell.overpaid", language=language, sats=excess_sats) + " " + keep
    return ""


class SellFlow(CashOutFlow):
    kind = "sell"

    def __init__(self, ctx: FlowContext, dispenser: CashDispenser | None, codes: RedeemCodes) -> None:
        super().__init__(ctx, dispenser)
        self.codes = codes
        self.cash: Fiat | None = None
        self.sats: Sats | None = None
        self.fee: Fiat | None = None
        self.rate: Decimal | None = None
        self.address: str | None = None
        self.expires_at: float | None = None     # wall clock (the invoice's expiry, at most the signed life)
        self.verdict: str | None = None
        self.redeem_code: str | None = None
        self.shown_address = False
        self.error: str | None = None            # why a choice was refused (for the screen)
        self.error_key: str | None = None        # ...as a key of the language files
        self.status_text = ""                    # what the kiosk waits for, from sell_payment

    # -- guards ----------------------------------------------------------------------------

    def has_money_in(self) -> bool:
        """The deposit address was shown: the customer may have paid; the sale ends with a
        payout or a redeem code, never silently."""
        return self.shown_address

    def why_not(self, action: str) -> dict[str, Any] | None:
        return texts.message(self.error_key) if self.error_key else None

    def _refuse(self, key: str) -> bool:
        self.error_key, self.error = key, self.say(key)
        return False

    # -- choose an amount --------------------------------------------------------------------

    def amounts(self) -> list[Fiat]:
        return offered_amounts(self.ctx, self.dispenser)

    def choose(self, minor: Any, rate: Decimal | None) -> bool:
        """The customer picked an amount: price it and journal the sale (before the CAS is asked)."""
        self.error = self.error_key = None
        sell = sell_settings(self.ctx)
        if sell is None:
            return self._refuse("sell.not_available")
        if isinstance(minor, bool) or not isinstance(minor, int):
            return self._refuse("sell.choose_shown")
        cash = Fiat(minor, self.ctx.config.currency)
        if cash not in payable_in_limits(self.ctx, self.dispenser):
            return self._refuse("sell.cannot_pay")
        if rate is None:
            return self._refuse("sell.no_price")
        quote = SellQuote(cash.currency, rate, sell.fee_percent, sell.fixed_fee)
        sats, fee = quote.sats_for(cash)
        tx_id = f"sell-{uuid.uuid4().hex[:16]}"
        self.ctx.journal.open_sell(tx_id, cash, fee, rate, sats)
        self.tx_id, self.cash, self.sats, self.fee, self.rate = tx_id, cash, sats, fee, rate
        return True

    # -- the invoice ---------------------------------------------------------------------------

    async def request_invoice(self) -> str:
        """Ask the CAS for the deposit address; returns the trigger: "invoiced" or "sell_refused"."""
        assert self.tx_id is not None and self.cash is not None and self.sats is not None
        sell = sell_settings(self.ctx)
        ask = getattr(self.ctx.cas, "sell_invoice", None)
        try:
            if sell is None or ask is None:
                raise CasRefused("the CAS offers no sell invoices")
            invoice = await ask(self.tx_id, self.cash, self.sats)
        except CasError as exc:
            if not isinstance(exc, CasUnavailable):
                self.ctx.alert("sell_refused", f"sale {self.tx_id}: {exc}", "critical")
            self.message = self.say("sell.not_available")
            self.ctx.journal.finish(self.tx_id, "canceled")
            return "sell_refused"
        expires = min(float(invoice.expires_at), time.time() + sell.invoice_ttl_s)
        self.ctx.journal.sell_invoiced(self.tx_id, invoice.address, invoice.index, expires)
        self.address, self.expires_at = invoice.address, expires
        return "invoiced"

    def showing_address(self) -> None:
        self.shown_address = True

    # -- the payment -----------------------------------------------------------------------

    def seconds_left(self) -> int:
        return max(0, round((self.expires_at or 0) - time.time()))

    async def poll_payment(self) -> str | None:
        """One look at the payment, as the kiosk proved it. Returns "paid" (dispense),
        "unpaid" (proven, but under the policy no cash), or None (keep waiting)."""
        assert self.tx_id is not None
        sell = sell_settings(self.ctx)
        check = getattr(self.ctx.cas, "sell_payment", None)
        if sell is None or check is None:
            return None
        try:
            payment = await check(self.tx_id)
        except PaymentRefused as exc:
            # hostile or broken evidence: alerted, never paid on
            self.ctx.alert("payment_refused", f"sale {self.tx_id}: payment evidence refused ({exc.reason}): {exc}",
                           "critical")
            return None
        except CasError as exc:
            self.status_text = self.say("sell.waiting_network")
            return None
        # The kiosk's own words, never the link's detail text (English, and partly the CAS's).
        self.status_text = self.say("sell.waiting_payment") if payment.state == "waiting" else ""
        verdict = prove_and_entitle(self.ctx, self.tx_id, payment, sell)
        if verdict is None:
            return None
        self.verdict = verdict.value
        return "paid" if verdict is PaymentVerdict.PAY else "unpaid"

    def unpaid(self) -> None:
        """A proven payment that entitles to no cash (under- or late payment)."""
        assert self.tx_id is not None
        self.message = policy_words(self.ctx, self.verdict, self._policy(), language=self.language)
        self.ctx.journal.finish(self.tx_id, "completed")

    def _policy(self) -> str:
        sell = sell_settings(self.ctx)
        if sell is None:
            return "hold"
        return sell.late_payment if self.verdict == PaymentVerdict.LATE.value else sell.invalid_payment

    def no_proof_yet(self) -> None:
        """The time ran out (or the customer left) with no payment proven: whatever arrives
        for this address is collected later with a redeem code, once proven."""
        assert self.tx_id is not None
        self.issue_code(Fiat.zero(self.ctx.config.currency))
        self.message = self.say("sell.not_confirmed")

    def issue_code(self, owed: Fiat) -> None:
        assert self.tx_id is not None
        code = self.codes.issue(self.tx_id)
        self.ctx.journal.issue_redeem(self.tx_id, code, owed)
        self.redeem_code = code

    # -- the payout -------------------------------------------------------------------------

    def start_payout(self) -> str | None:
        """Journal the first dispense and send it; returns "dispensed" when nothing can be
        dispensed now (a redeem code is issued instead)."""
        assert self.tx_id is not None
        self.ctx.journal.set_status(self.tx_id, "dispensing", "sell_dispensing")
        ready = self.next_dispense()
        if ready is None:
            return self._finish_payout()
        self.send(*ready)
        return None

    async def on_event(self, event: Event) -> str | None:
        if not isinstance(event, DispenseCompleted) or event.request_id != self.request_id:
            return None
        self.record(event)
        if event.outcome != "unknown":
            ready = self.next_dispense()
            if ready is not None:
                self.send(*ready)
                return None
        return self._finish_payout()

    def timed_out(self) -> None:
        self.give_up_waiting()
        self._finish_payout()

    def _finish_payout(self) -> str:
        assert self.tx_id is not None
        owed = self.owed()
        unknown = any(d["outcome"] == "unknown" for d in self.ctx.journal.dispenses_for(self.tx_id))
        if owed.minor == 0 and not unknown:
            self.ctx.journal.finish(self.tx_id, "completed")
            deposit = self.ctx.journal.deposit(self.tx_id) or {}
            excess = int(deposit.get("sats_received", 0)) - int(deposit.get("sats_due", 0))
            self.message = policy_words(self.ctx, None, self._policy(), max(0, excess), language=self.language) or None
        else:
            if owed.minor > 0:
                self.issue_code(owed)
            if unknown:
                self.ctx.journal.park(self.tx_id, f"sale {self.tx_id}: a dispense has an unknown outcome")
                self.message = self.say("sell.unknown") + (
                    " " + self.say("sell.unknown_rest") if owed.minor else "")
            else:
                self.message = self.say("sell.partial", amount=owed)
        return "dispensed"

    # -- lifecycle ---------------------------------------------------------------------------

    def abandon(self) -> None:
        """Left before the address was shown: nothing can have been paid, the sale is canceled."""
        if self.tx_id is None or self.shown_address:
            return
        if self.ctx.journal.transaction(self.tx_id)["status"] == "open":
            self.ctx.journal.finish(self.tx_id, "canceled")

    async def settle(self) -> None:
        return None

    def receipt(self, when: datetime) -> Any:
        from atm import receipts
        config = self.ctx.config
        assert self.tx_id is not None and self.cash is not None
        deposit = self.ctx.journal.deposit(self.tx_id) or {}
        operator = receipts.OperatorInfo(config.operator_name, config.operator_contact)
        common = dict(operator=operator, kiosk_id=config.kiosk_id, tx_id=self.tx_id, when=when,
                      fee=self.fee or Fiat.zero(config.currency), rate=self.rate or Decimal(0),
                      currency=config.currency, sats=Sats(int(deposit.get("sats_received") or 0)),
                      language=self.language or config.language)
        if self.redeem_code:
            owed = self.owed()
            return receipts.redeem_receipt(cash=owed if owed.minor else self.cash, redeem_code=self.redeem_code,
                                           **common)
        return receipts.sell_receipt(cash=self.ctx.journal.dispensed(self.tx_id), address=self.address or "",
                                     txid=deposit.get("txid"), **common)

    def screen_data(self, screen: str) -> dict[str, Any]:
        currency = self.ctx.config.currency
        data: dict[str, Any] = {"currency": currency, "message": self.message, "error": self.error,
                                "labels": dict(texts.catalogue(self.language or self.ctx.config.language).get("sell_screen", {}))}
        if screen == "sell_amount":
            sell = sell_settings(self.ctx)
            data["amounts"] = [{"minor": a.minor, "text": a} for a in self.amounts()]     # atm.screens writes the text
            if sell is not None:
                data["fee_percent"] = str(sell.fee_percent)
        if self.cash is not None:
            data.update(cash_minor=self.cash.minor, cash=self.cash, sats=self.sats.sat if self.sats else None,
                        fee=self.fee if self.fee else None)
        if screen == "sell_pay" and self.address and self.sats:
            uri = bip21_uri(self.address, self.sats)
            data.update(address=self.address, uri=uri, qr=qr_image(uri), btc=self.sats,
                        seconds_left=self.seconds_left(), status=self.status_text, tx_id=self.tx_id)
        if screen == "sell_receipt" and self.tx_id:
            owed = self.owed()
            # A code for a payment not yet proven is worth the sale's cash once it is (as printed).
            shown = owed if owed.minor or not self.redeem_code else self.cash
            data.update(tx_id=self.tx_id, paid_out=self.ctx.journal.dispensed(self.tx_id),
                        redeem_code=self.redeem_code, owed=shown,
                        redeem_qr=qr_image(self.redeem_code) if self.redeem_code else None)
        return data


def qr_image(text: str) -> str:
    """A QR code of `text` as an SVG data URL, drawn by the kiosk itself (the page has no
    QR library and loads nothing from outside); shown as an image, never as markup."""
    import segno
    return segno.make(text, error="m").svg_data_uri(scale=6, border=2)


def now() -> datetime:
    return datetime.now(timezone.utc)
