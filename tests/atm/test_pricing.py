"""Whatever rate the CAS answers (unsigned soft data), pricing gives a usable quote or a
reason, never an exception, and a usable quote buys something and never more than the
limits allow."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings, strategies as st

from atm.cas.interface import KioskSettings, Quote
from atm.flows.pricing import MAX_SATS, quote_problem
from hal import Fiat

SETTINGS = KioskSettings(version=1, min_buy=Fiat(500, "EUR"), max_buy=Fiat(100_000, "EUR"),
                         fee_percent=Decimal(5), fixed_fee=Fiat(100, "EUR"))


@settings(max_examples=300, deadline=None)
@given(rate=st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [Decimal("1E-30"), Decimal("1E+12"), Decimal("1E-999999"), Decimal("1E+999999"), Decimal("sNaN")]),
    bounded=st.booleans())
def test_any_rate_gives_a_usable_quote_or_a_reason_never_an_exception(rate, bounded):
    signed = SETTINGS if not bounded else KioskSettings(**{**SETTINGS.__dict__,
                                                           "rate_bounds": (Decimal(20000), Decimal(90000))})
    quote = Quote("EUR", rate, Decimal(5), Fiat(100, "EUR"))
    problem = quote_problem(quote, signed)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert 0 < quote.sats_for(signed.min_buy, waive_fixed=True)[0].sat
        assert quote.sats_for(signed.max_buy)[0].sat <= MAX_SATS
        if bounded:
            assert Decimal(20000) <= rate <= Decimal(90000)


def test_the_rates_of_the_attacks_are_refused_with_a_reason():
    for rate in ("1E-30", "1000000000000", "0", "-1"):
        assert quote_problem(Quote("EUR", Decimal(rate), Decimal(5)), SETTINGS)
    assert quote_problem(Quote("EUR", Decimal(50000), Decimal(5)), SETTINGS) is None
