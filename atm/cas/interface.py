"""What the kiosk needs from the CAS, as an interface, so the buy flow does not
care whether an in-process stand-in or the pinned mutual-TLS client serves it.

Rules every implementation keeps:
- `send_coins` is idempotent by `request_id`: asking twice never sends twice.
  The kiosk journals the request before the first call and may call again
  with the same id after a crash or an outage.
- `upload_transaction` makes the record durable locally (an outbox) and
  returns; delivery happens later, keyed by id with a version that only goes up.
- Failures raise CasError subclasses, never bare network exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Protocol

from hal.money import Fiat, Sats
from atm.cas.payment_proof import Checkpoint, VerifiedPayment


class CasError(Exception):
    """The CAS could not do what was asked."""


class CasUnavailable(CasError):
    """Not reachable now (network, TLS, timeout). Safe to retry later with the same ids."""


class CasRefused(CasError):
    """The CAS answered, but refused (or answered something the kiosk refuses)."""


class PaymentRefused(CasRefused):
    """The CAS claimed a sell payment that its evidence does not prove (no transaction,
    another address, a wrong merkle branch, too little work). `reason` is the
    payment_proof reason code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Quote:
    """Price of one bitcoin in `currency`, and the operator's fees for a buy.

    Fees are over a transaction's total: the percent fee of the whole cash, the
    fixed fee once (waived when the purchase ends below the minimum)."""

    currency: str
    rate: Decimal                    # fiat major units per 1 BTC
    fee_percent: Decimal = Decimal(0)  # taken from the fiat before conversion
    fixed_fee: Fiat | None = None

    def fee_for(self, cash: Fiat, waive_fixed: bool = False) -> Fiat:
        """The whole fee for a purchase of `cash` in total (percent rounded up)."""
        if cash.currency != self.currency:
            raise ValueError(f"quote is in {self.currency}, cash is {cash.currency}")
        fee_minor = (Decimal(cash.minor) * self.fee_percent / 100).to_integral_value(rounding="ROUND_CEILING")
        fee = Fiat(int(fee_minor), cash.currency)
        if self.fixed_fee is not None and not waive_fixed:
            fee = fee + self.fixed_fee
        return fee

    def sats_for(self, cash: Fiat, waive_fixed: bool = False) -> tuple[Sats, Fiat]:
        """Satoshis bought with `cash` (a purchase's total), and the fee charged. Rounded
        down: the kiosk never promises a satoshi it cannot account for."""
        fee = self.fee_for(cash, waive_fixed)
        net = cash - fee
        if net.minor <= 0 or self.rate <= 0:
            return Sats(0), fee
        sats = (net.major / self.rate * Decimal(100_000_000)).to_integral_value(rounding="ROUND_FLOOR")
        return Sats(int(sats)), fee

    def price_per_btc(self) -> Decimal:
        """What one bitcoin costs the customer with the percent fee (fixed fee aside)."""
        keep = 1 - self.fee_percent / 100
        return self.rate / keep if keep > 0 else self.rate


@dataclass(frozen=True)
class SendResult:
    request_id: str
    txid: str


@dataclass(frozen=True)
class KioskSettings:
    """Settings that route money or open the kiosk. From a real CAS these come only
    from a bundle signed by the operator's key; the stand-in builds them from local
    configuration."""

    version: int
    min_buy: Fiat
    max_buy: Fiat
    fee_percent: Decimal = Decimal(0)
    technician_pin_hash: str | None = None
    wallet: Mapping[str, Any] = field(default_factory=dict)
    fixed_fee: Fiat | None = None               # charged once per transaction, never per send
    quote_max_age_s: int = 60                   # a confirmed quote older than this is refreshed first
    # (low, high) fiat per BTC for the kiosk's currency; a signed bundle without them is refused
    rate_bounds: tuple[Decimal, Decimal] | None = None
    max_offline_s: int | None = None            # signed: no new purchase after this long without the CAS
    sell: "SellSettings | None" = None          # None: the operator did not sign cash-out; the kiosk does not sell
    # signed: the languages the customer may choose on screen (ISO 639-1 codes); empty: the
    # kiosk's configured language only
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class SellSettings:
    """The signed rules of cash-out (a customer sends bitcoin, the kiosk pays notes)."""

    min_sell: Fiat
    max_sell: Fiat
    fee_percent: Decimal
    fixed_fee: Fiat | None
    zero_conf_cap_sats: int                     # paid out on an unconfirmed transaction up to this
    confirmations_required: int                 # for payments above the cap
    invoice_ttl_s: int                          # how long a deposit address waits for its payment
    checkpoint: Checkpoint                      # newest block the operator signed, and the least work after it
    invalid_payment: str = "hold"               # hold | refund: under- and overpayments
    late_payment: str = "hold"                  # hold | refund: payments after the expiry


@dataclass(frozen=True)
class SellPayment:
    """What the kiosk itself could prove about a sell invoice's payment (never the CAS's
    word): `proof` is set only after atm.cas.payment_proof verified the evidence under the
    signed checkpoint and policy."""

    invoice_id: str
    state: str                                  # "waiting" | "proven" | "expired"
    proof: VerifiedPayment | None = None
    in_time: bool = True                        # the payment arrived before the invoice expired
    detail: str = ""                            # what the kiosk is waiting for, in plain words


class CasService(Protocol):
    async def quote(self, currency: str) -> Quote: ...

    async def send_coins(self, request_id: str, address: str, amount: Sats) -> SendResult: ...

    async def upload_transaction(self, record: Mapping[str, Any]) -> None: ...

    def settings(self) -> KioskSettings | None:
        """The settings currently in force (None: none accepted yet)."""
        ...

    # Cash-out (only when settings().sell is set):
    # async def sell_invoice(self, invoice_id: str, cash: Fiat, amount: Sats) -> SellInvoice
    #     a deposit address that derives from the signed xpub (else AddressRefused, alerted)
    # async def sell_payment(self, invoice_id: str) -> SellPayment
    #     the payment as the kiosk proved it; hostile evidence raises PaymentRefused
    #     (a CasRefused), is alerted, and is never "proven"
