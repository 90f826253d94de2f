"""The market price the kiosk may sell at now, and the rules that make a rate usable.

A rate comes from the CAS (unsigned, soft data); the fees, limits, the rate's
signed bounds and the quote age limit come from the operator's signed settings.
A quote is usable only while it is fresh, inside the bounds, and sane (the
limits buy a positive and bounded number of satoshis). A refused or missing
rate ends the quote in force: no new purchase starts on an old price.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from atm.amounts import Rate
from atm.cas.interface import CasError, CasService, KioskSettings, Quote
from hal.money import Fiat

log = logging.getLogger("atm.flows.pricing")

MAX_SATS = 21_000_000 * 100_000_000      # no purchase buys more than all bitcoin there will ever be


def quote_problem(quote: Quote, settings: KioskSettings | None) -> str | None:
    """Why this quote must not price a purchase under these settings, or None."""
    try:
        if not quote.rate.is_finite() or quote.rate <= 0:
            return f"the rate {quote.rate} is not a positive price"
    except (AttributeError, InvalidOperation):
        return f"the rate {quote.rate!r} is not a number"
    if settings is None:
        return "no signed configuration in force"
    if quote.currency != settings.min_buy.currency:
        return f"the rate is in {quote.currency}, the kiosk sells in {settings.min_buy.currency}"
    bounds = settings.rate_bounds
    if bounds is not None and not bounds[0] <= quote.rate <= bounds[1]:
        return f"the rate {quote.rate} is outside the operator's signed range {bounds[0]}..{bounds[1]}"
    # The biggest purchase may buy at most what it buys at the low bound (or all bitcoin)
    # and the smallest must buy something: a rate near zero or near infinity never prices.
    try:
        ceiling = MAX_SATS
        if bounds is not None:
            low = Quote(quote.currency, bounds[0], quote.fee_percent, quote.fixed_fee)
            ceiling = min(ceiling, low.sats_for(settings.max_buy, waive_fixed=True)[0].sat)
        if quote.sats_for(settings.max_buy, waive_fixed=True)[0].sat > ceiling:
            return f"the rate {quote.rate} would buy more than the limits allow"
        if quote.sats_for(settings.min_buy, waive_fixed=True)[0].sat <= 0:
            return f"the rate {quote.rate} buys nothing for the minimum purchase"
    except ArithmeticError:             # Decimal overflow: far outside any sane price
        return f"the rate {quote.rate} cannot price a purchase"
    return None


def with_signed_fees(quote: Quote, settings: KioskSettings | None) -> Quote:
    """The CAS's rate with the fees the operator signed (they route money; the rate may not)."""
    if settings is None:
        return quote
    fixed = settings.fixed_fee if settings.fixed_fee is not None else quote.fixed_fee
    if fixed is not None and fixed.minor == 0:
        fixed = None
    return Quote(quote.currency, quote.rate, settings.fee_percent, fixed)


class Pricing:
    """The latest usable market quote and when it was fetched (monotonic seconds)."""

    def __init__(self, cas: CasService, currency: str, settings: Callable[[], KioskSettings | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cas = cas
        self.currency = currency
        self._settings = settings
        self.clock = clock
        self.quote: Quote | None = None
        self.fetched_at: float | None = None
        self.problem: str | None = "no exchange rate from the server yet"

    async def refresh(self) -> Quote | None:
        """Ask the CAS for a rate. Any failure or refusal ends the quote in force."""
        try:
            raw = await self.cas.quote(self.currency)
        except CasError as exc:
            self._end(f"no usable rate from the server ({exc})")
            return None
        settings = self._settings()
        quote = with_signed_fees(raw, settings)
        problem = quote_problem(quote, settings)
        if problem is not None:
            self._end(problem)
            return None
        self.quote, self.fetched_at, self.problem = quote, self.clock(), None
        return quote

    def recheck(self) -> None:
        """New signed settings: the quote in force must pass the new bounds and fees."""
        if self.quote is None:
            return
        settings = self._settings()
        quote = with_signed_fees(self.quote, settings)
        problem = quote_problem(quote, settings)
        if problem is not None:
            self._end(problem)
        else:
            self.quote = quote

    def _end(self, why: str) -> None:
        if self.quote is not None:
            log.warning("quote ended: %s", why)
        self.quote = self.fetched_at = None
        self.problem = why

    def age(self) -> float | None:
        return None if self.fetched_at is None else self.clock() - self.fetched_at

    def max_age(self) -> float:
        settings = self._settings()
        return float(settings.quote_max_age_s) if settings is not None else 60.0

    def fresh(self) -> Quote | None:
        """The quote in force if it is younger than the signed age limit."""
        age = self.age()
        if self.quote is None or age is None or age > self.max_age():
            return None
        return self.quote

    def why_not(self) -> str | None:
        """Why no purchase may start on the current price, or None."""
        if self.quote is None:
            return self.problem or "no exchange rate from the server"
        if self.fresh() is None:
            return "the exchange rate is out of date"
        return None

    def terms(self) -> dict[str, Any]:
        """Fee terms and the effective price, for screens shown before any note goes in.
        Amounts stay typed: atm.screens writes them in the customer's number format."""
        settings = self._settings()
        quote = self.fresh()
        fixed = quote.fixed_fee if quote is not None else (settings.fixed_fee if settings else None)
        percent = quote.fee_percent if quote is not None else (settings.fee_percent if settings else Decimal(0))
        return {
            "fee_percent": str(percent),
            "fixed_fee": fixed if fixed is not None else Fiat.zero(self.currency),
            "price_per_btc": Rate(quote.price_per_btc(), self.currency) if quote is not None else None,
            "min": settings.min_buy if settings else "",
            "max": settings.max_buy if settings else "",
        }
