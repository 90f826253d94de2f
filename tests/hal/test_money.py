"""Money types: integers only, one currency at a time, readable when shown."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from hal import Fiat, Sats


def test_money_is_never_built_from_a_float_or_a_bool():
    with pytest.raises(TypeError):
        Fiat(10.5, "EUR")
    with pytest.raises(TypeError):
        Fiat(True, "EUR")
    with pytest.raises(TypeError):
        Sats(1.0)
    with pytest.raises(TypeError):
        Fiat.from_major(0.1, "EUR")


def test_currencies_do_not_mix():
    with pytest.raises(ValueError, match="currency mismatch"):
        Fiat(100, "EUR") + Fiat(100, "USD")
    with pytest.raises(ValueError):
        _ = Fiat(100, "EUR") < Fiat(100, "USD")
    with pytest.raises(ValueError, match="ISO 4217"):
        Fiat(100, "euro")


def test_major_amounts_convert_exactly_with_the_currency_minor_digits():
    assert Fiat.from_major("20", "EUR") == Fiat(2000, "EUR")
    assert Fiat.from_major("0.50", "EUR") == Fiat(50, "EUR")
    assert Fiat.from_major("1000", "JPY") == Fiat(1000, "JPY")
    with pytest.raises(ValueError, match="decimals"):
        Fiat.from_major("0.005", "EUR")


def test_amounts_are_shown_with_grouping_and_the_currency_minor_digits():
    assert str(Fiat(100_000, "EUR")) == "1,000.00 EUR"
    assert str(Fiat(1500, "JPY")) == "1,500 JPY"
    assert str(Fiat(1234, "KWD")) == "1.234 KWD"
    assert str(Sats(133_000)) == "0.00133000 BTC"


@given(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12))
def test_fiat_arithmetic_is_integer_arithmetic(a, b):
    assert (Fiat(a, "EUR") + Fiat(b, "EUR")).minor == a + b
    assert (Fiat(a, "EUR") - Fiat(b, "EUR")).minor == a - b
    assert Fiat(a, "EUR").major == Decimal(a) / 100
