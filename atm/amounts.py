"""Amounts in words a customer reads, on the receipt and on the screen: integers in
(Fiat minor units, satoshis; a Decimal only for a rate), text out, in a language's
number format. The format is the [format] section of atm/locale/<language>.toml
(`decimal` and `thousands` separators; atm.texts.number_format reads it). Nothing here
does arithmetic on money; no float is ever accepted.

Screens keep amounts typed (Fiat, Sats, Rate) until the one place where a screen leaves
the kiosk (atm.screens.localise), so the same number reads "1,234.50 EUR" in English,
"1.234,50 EUR" in German and "1 234,50 EUR" in French, exactly as on the receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Mapping

from hal.money import Fiat, Sats, minor_digits

BTC_DIGITS = 8          # satoshis per bitcoin: 10**8


@dataclass(frozen=True)
class Rate:
    """The price of one bitcoin in `currency` (rates and prices are Decimal, never money):
    shown rounded half to even at the currency's minor unit, e.g. "52,631.58 EUR/BTC"."""

    per_btc: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.per_btc, Decimal):
            raise TypeError(f"rate must be a Decimal, got {type(self.per_btc).__name__} {self.per_btc!r}")
        if not self.per_btc.is_finite() or self.per_btc < 0:
            raise ValueError(f"rate must be a finite, non-negative Decimal, got {self.per_btc!r}")

    def __str__(self) -> str:            # as Fiat and Sats: English, for logs
        return format_rate(self.per_btc, self.currency, {"decimal": ".", "thousands": ","})


@dataclass(frozen=True)
class SatCount:
    """A number of satoshis shown as a count ("38.000 Satoshi" in German), beside the
    amount in bitcoin; the screen's "sats" field stays the plain int the tests and
    tools read."""

    sat: int

    def __post_init__(self) -> None:
        if isinstance(self.sat, bool) or not isinstance(self.sat, int) or self.sat < 0:
            raise ValueError(f"a satoshi count is a whole number >= 0, got {self.sat!r}")

    def __str__(self) -> str:
        return format_count(self.sat, {"decimal": ".", "thousands": ","})


# What a screen or a message may carry as an amount, to be written in the reader's language.
AMOUNT_TYPES = (Fiat, Sats, Rate, SatCount)


def _group(digits: str, separator: str) -> str:
    head = len(digits) % 3 or 3
    return separator.join([digits[:head]] + [digits[i:i + 3] for i in range(head, len(digits), 3)])


def format_minor(minor: int, digits: int, number_format: Mapping[str, str]) -> str:
    """`minor` units with `digits` fraction digits, grouped by thousands:
    format_minor(123450, 2, {"decimal": ",", "thousands": "."}) == "1.234,50"."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"an amount is written from an int, got {type(minor).__name__} {minor!r}")
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10 ** digits)
    text = sign + _group(str(whole), number_format["thousands"])
    if digits:
        text += number_format["decimal"] + str(fraction).zfill(digits)
    return text


def format_fiat(amount: Fiat, number_format: Mapping[str, str]) -> str:
    """"1.234,50 EUR": the currency's own minor digits (JPY none, KWD three)."""
    return f"{format_minor(amount.minor, minor_digits(amount.currency), number_format)} {amount.currency}"


def format_sats(amount: Sats, number_format: Mapping[str, str]) -> str:
    """"0,00046284 BTC": satoshis written as bitcoin with all eight digits."""
    return f"{format_minor(amount.sat, BTC_DIGITS, number_format)} BTC"


def format_rate(rate: Decimal, currency: str, number_format: Mapping[str, str]) -> str:
    """"52.631,58 EUR/BTC": the price of one bitcoin, rounded half to even at the minor unit."""
    per_btc = Rate(rate, currency).per_btc          # refuses a float, NaN or a negative price
    digits = minor_digits(currency)
    minor = int(per_btc.scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return f"{format_minor(minor, digits, number_format)} {currency}/BTC"


def format_count(count: int, number_format: Mapping[str, str]) -> str:
    """"38.000": a whole number grouped by thousands."""
    return format_minor(count, 0, number_format)


def format_amount(value: "Fiat | Sats | Rate | SatCount", number_format: Mapping[str, str]) -> str:
    """Any of AMOUNT_TYPES in words."""
    if isinstance(value, Fiat):
        return format_fiat(value, number_format)
    if isinstance(value, Sats):
        return format_sats(value, number_format)
    if isinstance(value, Rate):
        return format_rate(value.per_btc, value.currency, number_format)
    if isinstance(value, SatCount):
        return format_count(value.sat, number_format)
    raise TypeError(f"not an amount: {type(value).__name__} {value!r}")
