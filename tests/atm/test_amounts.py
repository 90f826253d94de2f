"""Amounts in each language's number format (atm.amounts, through atm.texts): the one
writer for receipts and screens. Integers in, text out; the text reads back as the same
integer with that language's separators."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from atm import texts
from atm.amounts import Rate, SatCount, format_amount, format_fiat, format_minor, format_sats
from atm.screens import localise
from hal import Fiat, Sats

LANGUAGES = texts.available_languages()


def _read_back(text: str, digits: int, decimal: str, thousands: str) -> int:
    """The integer a reader gets from `text`: groups of three after the first (one to
    three digits), `digits` fraction digits after the decimal separator."""
    sign = -1 if text.startswith("-") else 1
    body = text.removeprefix("-")
    whole, fraction = body.rsplit(decimal, 1) if digits else (body, "")
    assert len(fraction) == digits and fraction.isdigit() or digits == 0, text
    groups = whole.split(thousands)
    assert re.fullmatch(r"[0-9]{1,3}", groups[0]) and all(re.fullmatch(r"[0-9]{3}", g) for g in groups[1:]), text
    assert groups[0] != "0" or len(groups) == 1, text          # no leading zero group
    return sign * int("".join(groups) + fraction)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-10**18, max_value=10**18), st.integers(min_value=0, max_value=8),
       st.sampled_from(LANGUAGES))
def test_any_minor_amount_reads_back_as_the_same_integer_with_the_languages_separators(minor, digits, language):
    fmt = texts.number_format(language)
    written = format_minor(minor, digits, fmt)
    assert _read_back(written, digits, fmt["decimal"], fmt["thousands"]) == minor


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-10**15, max_value=10**15), st.sampled_from(["EUR", "JPY", "KWD", "USD"]),
       st.sampled_from(LANGUAGES))
def test_fiat_is_written_with_its_currency_exponent_and_reads_back(minor, currency, language):
    fmt = texts.number_format(language)
    number, _, unit = format_fiat(Fiat(minor, currency), fmt).rpartition(" ")
    digits = {"JPY": 0, "KWD": 3}.get(currency, 2)
    assert unit == currency and _read_back(number, digits, fmt["decimal"], fmt["thousands"]) == minor


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=21 * 10**14), st.sampled_from(LANGUAGES))
def test_a_satoshi_count_is_grouped_by_thousands_and_reads_back(sat, language):
    fmt = texts.number_format(language)
    written = texts.shown(language, SatCount(sat))
    assert _read_back(written, 0, fmt["decimal"], fmt["thousands"]) == sat
    assert fmt["decimal"] not in written


@pytest.mark.parametrize("bad", [-1, True, 1.5, "38000", None])
def test_a_satoshi_count_is_a_whole_number_not_below_zero(bad):
    with pytest.raises(ValueError):
        SatCount(bad)


@pytest.mark.parametrize("language, fiat, btc, rate", [
    ("en", "1,234,567.50 EUR", "12.34567890 BTC", "52,631.58 EUR/BTC"),
    ("de", "1.234.567,50 EUR", "12,34567890 BTC", "52.631,58 EUR/BTC"),
    ("fr", "1 234 567,50 EUR", "12,34567890 BTC", "52 631,58 EUR/BTC"),
    ("es", "1.234.567,50 EUR", "12,34567890 BTC", "52.631,58 EUR/BTC"),
])
def test_each_language_writes_fiat_bitcoin_and_rates_with_its_own_separators(language, fiat, btc, rate):
    fmt = texts.number_format(language)
    assert format_fiat(Fiat(123_456_750, "EUR"), fmt) == fiat
    assert format_sats(Sats(1_234_567_890), fmt) == btc
    assert format_amount(Rate(Decimal("52631.578947"), "EUR"), fmt) == rate


def test_english_is_written_as_the_money_types_write_themselves():
    """English screens read as before this writer existed (Fiat and Sats str())."""
    fmt = texts.number_format("en")
    for amount in (Fiat(123_456_750, "EUR"), Fiat(5000, "JPY"), Fiat(-1500, "KWD"), Sats(46_284)):
        assert format_amount(amount, fmt) == str(amount)


@pytest.mark.parametrize("bad", [1.5, True, "100", Decimal("1")])
def test_an_amount_is_written_only_from_an_int(bad):
    with pytest.raises(TypeError, match="int"):
        format_minor(bad, 2, texts.number_format("en"))


def test_a_rate_is_a_decimal_never_a_float():
    with pytest.raises(TypeError, match="rate"):
        Rate(52631.5, "EUR")
    with pytest.raises(ValueError, match="rate"):
        Rate(Decimal("NaN"), "EUR")


def test_a_message_keeps_its_amounts_typed_until_the_screen_leaves_the_kiosk():
    """A note returned over the limit, said to a German and a French customer."""
    said = texts.message("message.note_returned_over_limit", max=Fiat(123_450, "EUR"))
    assert said["values"] == {"max": Fiat(123_450, "EUR")}
    assert localise(said, "de") == {"key": "message.note_returned_over_limit", "values": {"max": "1.234,50 EUR"}}
    assert "1 234,50 EUR" in texts.render("fr", said)
    assert "1,234.50 EUR" in texts.render("en", said)


def test_a_list_of_notes_in_a_message_is_one_text_and_in_screen_data_a_list():
    notes = [Fiat(500, "EUR"), Fiat(100_000, "EUR")]
    said = texts.message("message.note_not_accepted_now", notes=notes)
    assert localise(said, "de")["values"] == {"notes": "5,00 EUR, 1.000,00 EUR"}
    assert localise({"notes": notes, "count": 2, "label": "x"}, "fr") == {
        "notes": ["5,00 EUR", "1 000,00 EUR"], "count": 2, "label": "x"}
    assert texts.message("message.note_not_accepted_now", notes=[])["values"] == {"notes": ()}
    assert texts.render("en", texts.message("message.note_not_accepted_now", notes=[])).endswith(": .")


def test_other_message_values_are_kept_as_text():
    assert texts.message("service.locked", wait=30)["values"] == {"wait": "30"}
