"""Cassette books and denomination for the cash dispenser, in XFS4IoT's storage-unit terms.

The books are a plain value computed from what the technician loaded (per cassette:
denomination, initial count, near-empty threshold) and the movements the dispenser
reported (notes exited, notes rejected): count = initial - exited - rejected. A count that
does not add up is reported as a mismatch, never corrected. The planner pays an exact
amount from the books with the fewest notes. Pure: no I/O, no journal, no device.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from math import gcd
from typing import Collection, Iterable, Mapping, Sequence

from hal.events import DispenseCompleted
from hal.money import Fiat
from hal.status import UnitStatus

_PAYS = (UnitStatus.OK, UnitStatus.LOW)
_INF = 1 << 60


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class UnitConfig:
    """One cassette as the technician loaded it."""

    id: str
    denomination: Fiat
    initial: int
    near_empty: int = 10             # status "low" at or below this many notes

    def __post_init__(self) -> None:
        if not isinstance(self.denomination, Fiat) or self.denomination.minor <= 0:
            raise ValueError(f"cassette {self.id!r}: denomination must be a positive Fiat, got {self.denomination!r}")
        _count(f"cassette {self.id!r} initial count", self.initial)
        _count(f"cassette {self.id!r} near-empty threshold", self.near_empty)


@dataclass(frozen=True)
class Movement:
    """Notes that left one cassette in one dispenser answer. `device_status` is what the
    device said about the cassette in that answer (EMPTY after a bill-end error,
    MISSING, INOPERATIVE), None when it said nothing."""

    unit: str
    exited: int = 0
    rejected: int = 0
    device_status: UnitStatus | None = None

    def __post_init__(self) -> None:
        _count(f"movement for cassette {self.unit!r}: exited", self.exited)
        _count(f"movement for cassette {self.unit!r}: rejected", self.rejected)


@dataclass(frozen=True)
class StorageUnit:
    id: str
    denomination: Fiat
    initial: int
    dispensed: int                   # notes that exited to customers
    rejected: int                    # notes that went to the reject tray
    near_empty: int
    status: UnitStatus

    @property
    def count(self) -> int:
        """Notes in the cassette by the books: initial - out."""
        return self.initial - self.dispensed - self.rejected

    @property
    def available(self) -> int:
        """Notes the planner may pay from: none from an empty, missing or inoperative unit."""
        return max(0, self.count) if self.status in _PAYS else 0


@dataclass(frozen=True)
class Mismatch:
    unit: str
    detail: str


@dataclass(frozen=True)
class CashBooks:
    units: tuple[StorageUnit, ...]
    mismatches: tuple[Mismatch, ...] = ()

    def unit(self, unit_id: str) -> StorageUnit:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(f"no cassette {unit_id!r} in the books (cassettes: {', '.join(u.id for u in self.units)})")

    @property
    def currency(self) -> str | None:
        return self.units[0].denomination.currency if self.units else None

    def value(self, notes: Mapping[str, int]) -> Fiat:
        """What `notes` (cassette id -> notes) are worth."""
        total = Fiat.zero(self.currency or "XXX")
        for unit_id, n in notes.items():
            total = total + self.unit(unit_id).denomination * _count(f"notes from {unit_id!r}", n)
        return total


def movements_from(event: DispenseCompleted) -> list[Movement]:
    """The movements one dispenser answer reports, to append to the books' list. Notes the
    device could not account for (`uncertain`, outcome "unknown") are not movements: they
    are a reconciliation item until a technician counts the cassette."""
    units = sorted(set(event.exited) | set(event.rejected))
    return [Movement(unit, exited=event.exited.get(unit, 0), rejected=event.rejected.get(unit, 0))
            for unit in units if event.exited.get(unit, 0) or event.rejected.get(unit, 0)]


def compute_books(config: Sequence[UnitConfig], movements: Iterable[Movement] = (), *,
                  sensors: Mapping[str, UnitStatus] | None = None) -> CashBooks:
    """The books from what was loaded and what moved since. `sensors` is the dispenser's
    latest view per cassette (MISSING, LOW, EMPTY, OK, INOPERATIVE) from its status."""
    ids = [c.id for c in config]
    if len(set(ids)) != len(ids):
        raise ValueError(f"cassette ids must be unique, got {ids}")
    currencies = {c.denomination.currency for c in config}
    if len(currencies) > 1:
        raise ValueError(f"all cassettes must hold one currency, got {sorted(currencies)}")
    out = {c.id: [0, 0] for c in config}
    said: dict[str, UnitStatus] = {}
    mismatches: list[Mismatch] = []
    for move in movements:
        if move.unit not in out:
            mismatches.append(Mismatch(move.unit, f"{move.exited} exited and {move.rejected} rejected from cassette "
                                                  f"{move.unit!r}, which is not in the books"))
            continue
        out[move.unit][0] += move.exited
        out[move.unit][1] += move.rejected
        if move.device_status is not None:
            said[move.unit] = move.device_status
        elif move.exited or move.rejected:
            said.pop(move.unit, None)        # notes left it since it last complained
    sensors = sensors or {}
    units = []
    for c in config:
        dispensed, rejected = out[c.id]
        count = c.initial - dispensed - rejected
        device = sensors.get(c.id)
        last_said = said.get(c.id)
        if count < 0:
            mismatches.append(Mismatch(c.id, f"{dispensed + rejected} notes left cassette {c.id!r} but "
                                             f"{c.initial} were loaded: count it"))
        if last_said is UnitStatus.EMPTY and count > 0:
            mismatches.append(Mismatch(c.id, f"the dispenser reports cassette {c.id!r} empty with {count} notes "
                                             f"in the books: count it"))
        if device is UnitStatus.MISSING or last_said is UnitStatus.MISSING:
            status = UnitStatus.MISSING
        elif count < 0 or UnitStatus.INOPERATIVE in (device, last_said):
            status = UnitStatus.INOPERATIVE
        elif count == 0 or UnitStatus.EMPTY in (device, last_said):
            status = UnitStatus.EMPTY
        elif count <= c.near_empty:
            status = UnitStatus.LOW
        else:
            status = UnitStatus.OK
        units.append(StorageUnit(c.id, c.denomination, c.initial, dispensed, rejected, c.near_empty, status))
    return CashBooks(tuple(units), tuple(mismatches))


# ---------------------------------------------------------------------------- denomination

@dataclass(frozen=True)
class DispensePlan:
    notes: Mapping[str, int] = field(default_factory=dict)   # cassette id -> notes, only those used
    amount: Fiat | None = None

    @property
    def count(self) -> int:
        return sum(self.notes.values())


class _Table:
    """Fewest notes for every amount 0..top (in steps of the denominations' gcd), with the
    choice per cassette to rebuild a plan: a bounded change-making table, one pass per
    cassette with a sliding-window minimum, so O(top x cassettes)."""

    def __init__(self, units: Sequence[tuple[str, int, int]], top_minor: int, max_notes: int | None):
        self.units = [(uid, d, n) for uid, d, n in units if n > 0]
        self.step = 0
        for _, d, _ in self.units:
            self.step = gcd(self.step, d)
        self.step = self.step or 1
        top = top_minor // self.step
        best = [0] + [_INF] * top
        self.choices: list[list[int]] = []
        for _, d, n in self.units:
            v = d // self.step
            cap = n if max_notes is None else min(n, max_notes)
            new = [_INF] * (top + 1)
            took = [0] * (top + 1)
            for r in range(min(v, top + 1)):
                window: deque[tuple[int, int]] = deque()    # (j, best[r + j v] - j), increasing value
                j = 0
                for a in range(r, top + 1, v):
                    f = best[a] - j if best[a] < _INF else _INF
                    while window and window[-1][1] >= f:
                        window.pop()
                    window.append((j, f))
                    while window[0][0] < j - cap:
                        window.popleft()
                    i, fi = window[0]
                    if fi < _INF:
                        new[a] = fi + j
                        took[a] = j - i
                    j += 1
            best = new
            self.choices.append(took)
        self.best = best
        self.max_notes = max_notes

    def notes_for(self, amount_minor: int) -> int | None:
        if amount_minor % self.step:
            return None
        a = amount_minor // self.step
        if a >= len(self.best) or self.best[a] >= _INF:
            return None
        if self.max_notes is not None and self.best[a] > self.max_notes:
            return None
        return self.best[a]

    def plan(self, amount_minor: int) -> dict[str, int] | None:
        if self.notes_for(amount_minor) is None:
            return None
        a = amount_minor // self.step
        notes: dict[str, int] = {}
        for (uid, d, _), took in zip(reversed(self.units), reversed(self.choices)):
            k = took[a]
            if k:
                notes[uid] = k
            a -= k * (d // self.step)
        assert a == 0, "change-making table rebuilt a plan that does not add up"
        return notes


def _usable(books: CashBooks, exclude: Collection[str], max_per_unit: int | None) -> list[tuple[str, int, int]]:
    units = sorted((u for u in books.units if u.id not in exclude and u.available > 0),
                   key=lambda u: -u.denomination.minor)
    return [(u.id, u.denomination.minor, u.available if max_per_unit is None else min(u.available, max_per_unit))
            for u in units]


def _check_currency(books: CashBooks, amount: Fiat) -> None:
    if not isinstance(amount, Fiat):
        raise TypeError(f"amount must be Fiat, got {type(amount).__name__}")
    if books.currency is not None and amount.currency != books.currency:
        raise ValueError(f"the cassettes hold {books.currency}, cannot pay {amount}")


def plan_dispense(books: CashBooks, amount: Fiat, *, max_notes: int | None = None,
                  max_per_unit: int | None = None, exclude: Collection[str] = ()) -> DispensePlan | None:
    """Exactly `amount` with the fewest notes from cassettes that can pay (not empty,
    missing, inoperative or excluded), at most `max_notes` notes in all; None when no
    such plan exists. Never more than asked: an amount it cannot pay exactly is refused."""
    _check_currency(books, amount)
    if amount.minor < 0:
        raise ValueError(f"cannot pay a negative amount {amount}")
    if amount.minor == 0:
        return DispensePlan({}, amount)
    notes = _Table(_usable(books, exclude, max_per_unit), amount.minor, max_notes).plan(amount.minor)
    return None if notes is None else DispensePlan(notes, amount)


def plan_rest(books_after: CashBooks, requested: Fiat, exited: Mapping[str, int], *, max_notes: int | None = None,
              max_per_unit: int | None = None, exclude: Collection[str] = ()) -> DispensePlan | None:
    """After a partial dispense: the rest of `requested` beyond what exited, from the books
    as they are now (rejects and exits already booked as movements). Cassettes in
    `exclude` (the one that failed) are not used. None when the rest cannot be paid."""
    paid = books_after.value(exited)
    rest = requested - paid
    if rest.minor < 0:
        raise ValueError(f"{paid} exited, more than the {requested} asked: report it, do not plan")
    return plan_dispense(books_after, rest, max_notes=max_notes, max_per_unit=max_per_unit, exclude=exclude)


def payable_amounts(books: CashBooks, *, max_notes: int | None = None, max_per_unit: int | None = None,
                    up_to: Fiat | None = None) -> list[Fiat]:
    """Every amount above zero the cassettes can pay exactly now (for the sell screen),
    smallest first, up to `up_to` when given."""
    if books.currency is None:
        return []
    usable = _usable(books, (), max_per_unit)
    if max_notes is not None:
        usable = [(uid, d, min(n, max_notes)) for uid, d, n in usable]
    top = sum(d * n for _, d, n in usable)
    if up_to is not None:
        _check_currency(books, up_to)
        top = min(top, up_to.minor)
    table = _Table(usable, top, max_notes)
    return [Fiat(a, books.currency) for a in range(table.step, top + 1, table.step)
            if table.notes_for(a) is not None]
