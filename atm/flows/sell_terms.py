"""The money rules of a sale (the customer sends bitcoin, the kiosk pays cash), with
no I/O: what the customer must send for an amount of cash, and what a verified
payment entitles them to under the operator's signed policy.

The fee is added on top of the cash asked for, computed once over the amount
(percent, then the fixed fee), and the satoshis are rounded *up*: the kiosk never
pays a note it was not paid for. What a payment entitles to is decided from the
verified amount (atm.cas.payment_proof), never from what the CAS claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from enum import Enum
from urllib.parse import quote

from hal.money import Fiat, Sats, minor_digits

SATS_PER_BTC = Decimal(100_000_000)


@dataclass(frozen=True)
class SellQuote:
    """The terms a sell customer confirms, journaled with the transaction."""

    currency: str
    rate: Decimal                    # fiat major units per 1 BTC
    fee_percent: Decimal = Decimal(0)
    fixed_fee: Fiat | None = None

    def fee_for(self, cash: Fiat) -> Fiat:
        self._same_currency(cash)
        percent = (Decimal(cash.minor) * self.fee_percent / 100).to_integral_value(rounding=ROUND_CEILING)
        fixed = self.fixed_fee.minor if self.fixed_fee is not None else 0
        return Fiat(int(percent) + fixed, cash.currency)

    def sats_for(self, cash: Fiat) -> tuple[Sats, Fiat]:
        """Satoshis the customer sends to receive `cash`, and the fee inside them."""
        if cash.minor <= 0:
            raise ValueError("a sale pays out a positive amount of cash")
        if not self.rate.is_finite() or self.rate <= 0:
            raise ValueError(f"rate {self.rate} is not a positive price")
        fee = self.fee_for(cash)
        total_major = Decimal(cash.minor + fee.minor) / (Decimal(10) ** minor_digits(cash.currency))
        sats = (total_major / self.rate * SATS_PER_BTC).to_integral_value(rounding=ROUND_CEILING)
        return Sats(int(sats)), fee

    def _same_currency(self, cash: Fiat) -> None:
        if cash.currency != self.currency:
            raise ValueError(f"quote is in {self.currency}, cash is {cash.currency}")


class PaymentVerdict(str, Enum):
    PAY = "pay"                      # paid in full, in time: dispense the cash asked for
    UNDERPAID = "underpaid"          # less than asked: follow the invalid-payment policy
    LATE = "late"                    # arrived after the expiry: follow the late-payment policy


@dataclass(frozen=True)
class Entitlement:
    verdict: PaymentVerdict
    cash: Fiat                       # what may be paid out now (zero unless PAY)
    excess_sats: int                 # an overpayment beyond what was asked
    policy: str                      # "hold" or "refund": what happens to money not paid out


def entitlement(asked_sats: int, paid_sats: int, cash: Fiat, *, in_time: bool, invalid_payment: str,
                late_payment: str) -> Entitlement:
    """What a verified payment of `paid_sats` for a sale of `cash` (asked `asked_sats`)
    entitles the customer to. An overpayment pays the cash asked for and keeps the
    excess under the invalid-payment policy; nothing is ever paid above the quote."""
    if paid_sats < 0 or asked_sats <= 0:
        raise ValueError("amounts must be positive")
    if not in_time:
        return Entitlement(PaymentVerdict.LATE, Fiat.zero(cash.currency), 0, late_payment)
    if paid_sats < asked_sats:
        return Entitlement(PaymentVerdict.UNDERPAID, Fiat.zero(cash.currency), 0, invalid_payment)
    return Entitlement(PaymentVerdict.PAY, cash, paid_sats - asked_sats, invalid_payment)


def bip21_uri(address: str, sats: Sats, label: str | None = None) -> str:
    """The payment request shown as a QR code: the address and the exact amount in BTC."""
    btc = (Decimal(sats.sat) / SATS_PER_BTC).quantize(Decimal("0.00000001"))
    uri = f"bitcoin:{address}?amount={format(btc, 'f')}"
    if label:
        uri += "&label=" + quote(label, safe="")
    return uri
