"""Money value types. Fiat in integer minor units with its currency, bitcoin in
integer satoshis. No float ever becomes money: constructors refuse anything
that is not an int (bool included, since bool is an int in Python)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# ISO 4217 minor-unit digits for the currencies that differ from the usual 2.
_MINOR_DIGITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}


def minor_digits(currency: str) -> int:
    """How many digits the currency's minor unit has (EUR 2, JPY 0, KWD 3)."""
    return _MINOR_DIGITS.get(currency, 2)


def _require_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Fiat:
    """An amount of cash: `minor` units (cents) of `currency` (ISO 4217 code)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        _require_int("Fiat.minor", self.minor)
        if not (isinstance(self.currency, str) and len(self.currency) == 3
                and self.currency.isascii() and self.currency.isupper()):
            raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> "Fiat":
        return cls(0, currency)

    @classmethod
    def from_major(cls, amount: int | str | Decimal, currency: str) -> "Fiat":
        """Fiat from a major-unit amount given as int, str or Decimal ("20", "0.50")."""
        if isinstance(amount, float):
            raise TypeError("money is never built from a float; pass a str or Decimal")
        scaled = Decimal(amount) * (10 ** minor_digits(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} {currency} has more decimals than the currency")
        return cls(int(scaled), currency)

    def _same(self, other: "Fiat") -> None:
        if not isinstance(other, Fiat):
            raise TypeError(f"cannot combine Fiat with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: "Fiat") -> "Fiat":
        self._same(other)
        return Fiat(self.minor + other.minor, self.currency)

    def __sub__(self, other: "Fiat") -> "Fiat":
        self._same(other)
        return Fiat(self.minor - other.minor, self.currency)

    def __mul__(self, count: int) -> "Fiat":
        return Fiat(self.minor * _require_int("multiplier", count), self.currency)

    def __lt__(self, other: "Fiat") -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: "Fiat") -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: "Fiat") -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: "Fiat") -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __bool__(self) -> bool:
        return self.minor != 0

    @property
    def major(self) -> Decimal:
        """The amount in major units, for display and rate arithmetic only."""
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def __str__(self) -> str:
        digits = minor_digits(self.currency)
        return f"{self.major:,.{digits}f} {self.currency}"


@dataclass(frozen=True, slots=True, order=True)
class Sats:
    """An amount of bitcoin in satoshis (1 BTC = 100,000,000 sat)."""

    sat: int

    def __post_init__(self) -> None:
        _require_int("Sats.sat", self.sat)

    def __add__(self, other: "Sats") -> "Sats":
        if not isinstance(other, Sats):
            raise TypeError(f"cannot add Sats and {type(other).__name__}")
        return Sats(self.sat + other.sat)

    def __sub__(self, other: "Sats") -> "Sats":
        if not isinstance(other, Sats):
            raise TypeError(f"cannot subtract {type(other).__name__} from Sats")
        return Sats(self.sat - other.sat)

    def __bool__(self) -> bool:
        return self.sat != 0

    @property
    def btc(self) -> Decimal:
        return Decimal(self.sat).scaleb(-8)

    def __str__(self) -> str:
        return f"{self.btc:.8f} BTC"
