"""Cassette books and the denomination planner: counts follow initial - out with
mismatches reported, and the planner pays exactly, from cassettes that can pay, with the
fewest notes (checked against brute force), and pays the rest after rejects."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings, strategies as st

from atm.cash_units import (
    Movement,
    UnitConfig,
    compute_books,
    payable_amounts,
    plan_dispense,
    plan_rest,
)
from hal.money import Fiat
from hal.status import UnitStatus


def eur(minor: int) -> Fiat:
    return Fiat(minor, "EUR")


FOUR = [UnitConfig("1", eur(1000), 50), UnitConfig("2", eur(2000), 50),
        UnitConfig("3", eur(5000), 50), UnitConfig("4", eur(10000), 50)]


def test_counts_follow_initial_minus_exited_and_rejected():
    books = compute_books(FOUR, [Movement("1", exited=3, rejected=1), Movement("1", exited=2), Movement("3", rejected=2)])
    one = books.unit("1")
    assert (one.initial, one.dispensed, one.rejected, one.count) == (50, 5, 1, 44)
    assert books.unit("3").count == 48 and books.unit("2").count == 50
    assert books.mismatches == ()
    assert all(u.status is UnitStatus.OK for u in books.units)


def test_a_dispenser_answer_becomes_movements_and_uncertain_notes_do_not():
    from atm.cash_units import movements_from
    from hal.events import DispenseCompleted
    from hal.status import Completion
    done = DispenseCompleted(device="dispenser", request_id="r", completion=Completion.HARDWARE_ERROR,
                             exited={"1": 2, "2": 0, "3": 0}, rejected={"1": 1, "2": 0, "3": 1})
    assert movements_from(done) == [Movement("1", exited=2, rejected=1), Movement("3", rejected=1)]
    lost = DispenseCompleted(device="dispenser", request_id="r", completion=Completion.TIMEOUT, outcome="unknown",
                             exited={"1": 0}, rejected={"1": 0}, uncertain={"1": 4})
    assert movements_from(lost) == []
    books = compute_books(FOUR, movements_from(done))
    assert books.unit("1").count == 47 and books.unit("3").count == 49


def test_status_low_empty_missing_and_inoperative():
    config = [UnitConfig("a", eur(1000), 12, near_empty=10), UnitConfig("b", eur(2000), 5),
              UnitConfig("c", eur(5000), 40), UnitConfig("d", eur(10000), 40)]
    books = compute_books(config, [Movement("a", exited=2), Movement("b", exited=5)],
                          sensors={"c": UnitStatus.MISSING, "d": UnitStatus.INOPERATIVE})
    assert [u.status for u in books.units] == [UnitStatus.LOW, UnitStatus.EMPTY, UnitStatus.MISSING,
                                               UnitStatus.INOPERATIVE]
    assert [u.available for u in books.units] == [10, 0, 0, 0]


def test_more_out_than_loaded_is_a_reported_mismatch_not_a_corrected_count():
    books = compute_books([UnitConfig("1", eur(1000), 3)], [Movement("1", exited=4)])
    unit = books.unit("1")
    assert unit.count == -1 and unit.status is UnitStatus.INOPERATIVE and unit.available == 0
    assert len(books.mismatches) == 1 and "count it" in books.mismatches[0].detail


def test_device_saying_empty_while_the_books_hold_notes_is_a_mismatch_and_the_unit_pays_nothing():
    books = compute_books(FOUR, [Movement("2", exited=2, device_status=UnitStatus.EMPTY)])
    unit = books.unit("2")
    assert unit.count == 48 and unit.status is UnitStatus.EMPTY and unit.available == 0
    assert [m.unit for m in books.mismatches] == ["2"]


def test_movement_for_an_unknown_cassette_is_reported():
    books = compute_books(FOUR, [Movement("9", exited=1)])
    assert books.mismatches[0].unit == "9"


@pytest.mark.parametrize("bad", [lambda: Movement("1", exited=-1), lambda: Movement("1", rejected=1.0),
                                 lambda: UnitConfig("1", eur(0), 10), lambda: UnitConfig("1", eur(100), -1)])
def test_bad_inputs_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


def test_plan_pays_exactly_with_the_fewest_notes():
    books = compute_books(FOUR)
    plan = plan_dispense(books, eur(18000))
    assert plan.notes == {"4": 1, "3": 1, "2": 1, "1": 1}
    assert books.value(plan.notes) == eur(18000)
    # Greedy would take 50+10+10+10 (4 notes); 20+20+20 is 3.
    three = compute_books([UnitConfig("a", eur(5000), 9), UnitConfig("b", eur(2000), 9), UnitConfig("c", eur(1000), 9)])
    assert plan_dispense(three, eur(6000)).count == 2          # 50 + 10
    no_tens = compute_books([UnitConfig("a", eur(5000), 9), UnitConfig("b", eur(2000), 9)])
    assert plan_dispense(no_tens, eur(6000)).notes == {"b": 3}


def test_plan_refuses_what_it_cannot_pay_exactly_and_never_pays_more():
    books = compute_books(FOUR)
    assert plan_dispense(books, eur(1500)) is None
    assert plan_dispense(books, eur(0)).count == 0
    assert plan_dispense(books, eur(18000), max_notes=3) is None
    with pytest.raises(ValueError):
        plan_dispense(books, Fiat(1000, "USD"))


def test_plan_uses_no_empty_missing_excluded_or_capped_cassette():
    books = compute_books(FOUR, [Movement("4", exited=50)], sensors={"3": UnitStatus.MISSING})
    plan = plan_dispense(books, eur(10000))
    assert plan.notes == {"2": 5}
    assert plan_dispense(books, eur(10000), exclude={"2"}).notes == {"1": 10}
    assert plan_dispense(books, eur(10000), max_per_unit=4).notes == {"2": 4, "1": 2}
    assert plan_dispense(books, eur(10000), max_per_unit=3) is None          # 3 x 20 + 3 x 10 is short


def test_the_rest_after_a_partial_dispense_with_rejects_is_paid_from_the_other_cassettes():
    config = [UnitConfig("1", eur(2000), 10), UnitConfig("2", eur(1000), 30)]
    books = compute_books(config)
    plan = plan_dispense(books, eur(16000))
    assert plan.notes == {"1": 8}
    # The device paid 5 of them, rejected 2, and stopped (too many rejects).
    after = compute_books(config, [Movement("1", exited=5, rejected=2)])
    rest = plan_rest(after, eur(16000), {"1": 5}, exclude={"1"})
    assert rest.notes == {"2": 6}
    assert after.value({"1": 5}) + after.value(rest.notes) == eur(16000)


def test_payable_amounts_are_the_ones_the_planner_can_pay():
    books = compute_books([UnitConfig("a", eur(2000), 2), UnitConfig("b", eur(5000), 1)])
    assert [a.minor for a in payable_amounts(books)] == [2000, 4000, 5000, 7000, 9000]
    assert [a.minor for a in payable_amounts(books, max_notes=1)] == [2000, 5000]
    assert [a.minor for a in payable_amounts(books, up_to=eur(5000))] == [2000, 4000, 5000]
    assert payable_amounts(compute_books([])) == []


# ---------------------------------------------------------------------------- properties

DENOMS = [500, 1000, 2000, 5000, 10000, 20000]


@st.composite
def cassette_books(draw):
    n = draw(st.integers(1, 4))
    config = [UnitConfig(str(i + 1), eur(draw(st.sampled_from(DENOMS))), draw(st.integers(0, 8)), near_empty=2)
              for i in range(n)]
    sensors = {c.id: draw(st.sampled_from([UnitStatus.OK, UnitStatus.OK, UnitStatus.MISSING, UnitStatus.INOPERATIVE]))
               for c in config}
    moves = [Movement(c.id, exited=draw(st.integers(0, c.initial))) for c in config]
    return compute_books(config, moves, sensors=sensors)


def brute_force_fewest(books, amount: int, max_notes: int | None) -> int | None:
    units = [u for u in books.units if u.available > 0]
    best = None
    for combo in itertools.product(*[range(u.available + 1) for u in units]):
        if sum(k * u.denomination.minor for k, u in zip(combo, units)) == amount:
            count = sum(combo)
            if (max_notes is None or count <= max_notes) and (best is None or count < best):
                best = count
    return best


@settings(max_examples=300, deadline=None)
@given(books=cassette_books(), amount=st.integers(0, 200) .map(lambda k: k * 500),
       max_notes=st.one_of(st.none(), st.integers(1, 12)))
def test_plans_never_pay_more_never_use_unusable_cassettes_and_use_fewest_notes(books, amount, max_notes):
    """Mutations caught: letting a missing/inoperative/empty cassette count as available,
    and a broken sliding-window minimum (more notes than brute force, or no plan)."""
    plan = plan_dispense(books, eur(amount), max_notes=max_notes)
    expected = brute_force_fewest(books, amount, max_notes)
    if plan is None:
        assert expected is None
        return
    assert books.value(plan.notes) == eur(amount)                      # exactly, never more
    for unit_id, n in plan.notes.items():
        unit = books.unit(unit_id)
        assert unit.status in (UnitStatus.OK, UnitStatus.LOW)            # not empty, missing, inoperative
        assert 0 < n <= unit.count
    assert plan.count == expected                                       # fewest notes
    assert max_notes is None or plan.count <= max_notes


@st.composite
def loaded_books(draw):
    n = draw(st.integers(1, 4))
    config = [UnitConfig(str(i + 1), eur(draw(st.sampled_from(DENOMS))), draw(st.integers(1, 20)), near_empty=2)
              for i in range(n)]
    return config, compute_books(config)


@settings(max_examples=200, deadline=None)
@given(loaded=loaded_books(), data=st.data())
def test_the_rest_after_rejects_completes_the_amount_exactly(loaded, data):
    config, books = loaded
    # An amount the cassettes can pay: some notes from each.
    asked = {u.id: data.draw(st.integers(0, u.available)) for u in books.units}
    amount = books.value(asked)
    assume(amount.minor > 0)
    plan = plan_dispense(books, amount)
    assert plan is not None
    # The device stops part way through the plan: some notes exited, some were rejected.
    moves, exited = [], {}
    failed = data.draw(st.sampled_from(sorted(plan.notes)))
    for unit_id, n in plan.notes.items():
        out = data.draw(st.integers(0, n))
        rejected = data.draw(st.integers(0, books.unit(unit_id).count - out))
        exited[unit_id] = out
        moves.append(Movement(unit_id, exited=out, rejected=rejected))
    after = compute_books(config, moves)
    rest = plan_rest(after, amount, exited, exclude={failed})
    expected = brute_force_fewest(
        compute_books([c for c in config if c.id != failed], [m for m in moves if m.unit != failed]),
        amount.minor - after.value(exited).minor, None)
    if rest is None:
        assert expected is None
        return
    assert failed not in rest.notes
    assert after.value(exited) + after.value(rest.notes) == amount          # the rest, exactly
    assert rest.count == expected
    for unit_id, n in rest.notes.items():
        assert n <= after.unit(unit_id).available                         # rejects are out of the cassette


@settings(max_examples=100, deadline=None)
@given(books=cassette_books(), max_notes=st.one_of(st.none(), st.integers(1, 10)))
def test_payable_amounts_agree_with_the_planner(books, max_notes):
    amounts = {a.minor for a in payable_amounts(books, max_notes=max_notes)}
    top = sum(u.denomination.minor * u.available for u in books.units)
    for amount in range(500, top + 1, 500):
        assert (amount in amounts) == (plan_dispense(books, eur(amount), max_notes=max_notes) is not None)
