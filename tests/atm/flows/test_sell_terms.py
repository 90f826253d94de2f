"""A sale's money rules: the customer always sends at least the cash plus the fee at
the confirmed rate, and a payment entitles to cash only when verified, full and in time."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from atm.flows.sell_terms import PaymentVerdict, SellQuote, bip21_uri, entitlement
from atm.payloads import PaymentRequest, parse_payload
from hal.money import Fiat, Sats

QUOTE = SellQuote("EUR", Decimal("50000"), Decimal("5"), Fiat(100, "EUR"))


def test_fee_is_percent_of_the_cash_plus_the_fixed_fee_once():
    assert QUOTE.fee_for(Fiat(10_000, "EUR")) == Fiat(600, "EUR")


def test_sats_to_send_cover_cash_and_fee_rounded_up():
    sats, fee = QUOTE.sats_for(Fiat(10_000, "EUR"))        # 106.00 EUR at 50,000 EUR/BTC
    assert fee == Fiat(600, "EUR")
    assert sats == Sats(212_000)


@given(cash=st.integers(1, 10_000_00), rate=st.integers(1_000, 500_000_00), pct=st.integers(0, 20))
def test_the_kiosk_is_never_paid_less_than_cash_plus_fee(cash, rate, pct):
    quote = SellQuote("EUR", Decimal(rate) / 100, Decimal(pct))
    sats, fee = quote.sats_for(Fiat(cash, "EUR"))
    value_minor = Decimal(sats.sat) / Decimal(100_000_000) * quote.rate * 100
    assert value_minor >= cash + fee.minor
    # and not a whole satoshi more than needed
    assert (Decimal(sats.sat - 1) / Decimal(100_000_000) * quote.rate * 100) < cash + fee.minor


def test_a_full_payment_in_time_pays_the_cash_asked_and_keeps_the_excess_under_policy():
    result = entitlement(1000, 1500, Fiat(5000, "EUR"), in_time=True, invalid_payment="hold", late_payment="hold")
    assert result.verdict is PaymentVerdict.PAY and result.cash == Fiat(5000, "EUR") and result.excess_sats == 500


def test_an_underpayment_pays_nothing_and_follows_the_invalid_payment_policy():
    result = entitlement(1000, 999, Fiat(5000, "EUR"), in_time=True, invalid_payment="refund", late_payment="hold")
    assert result.verdict is PaymentVerdict.UNDERPAID and not result.cash and result.policy == "refund"


def test_a_late_payment_pays_nothing_and_follows_the_late_payment_policy():
    result = entitlement(1000, 1000, Fiat(5000, "EUR"), in_time=False, invalid_payment="refund", late_payment="hold")
    assert result.verdict is PaymentVerdict.LATE and not result.cash and result.policy == "hold"


def test_a_bad_rate_or_amount_is_refused():
    with pytest.raises(ValueError):
        SellQuote("EUR", Decimal(0)).sats_for(Fiat(100, "EUR"))
    with pytest.raises(ValueError):
        QUOTE.sats_for(Fiat(0, "EUR"))
    with pytest.raises(ValueError):
        QUOTE.sats_for(Fiat(100, "USD"))


def test_the_bip21_link_carries_the_exact_amount_and_parses_back():
    address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    uri = bip21_uri(address, Sats(212_000), label="ATM sale 7")
    assert uri == f"bitcoin:{address}?amount=0.00212000&label=ATM%20sale%207"
    parsed = parse_payload(uri, network="regtest")
    assert isinstance(parsed, PaymentRequest) and parsed.address.address == address
