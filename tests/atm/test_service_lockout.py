"""The technician PIN pad: a lockout that grows after five wrong PINs, survives a
restart, is not reset by a corrupt file, and lets the right PIN in after the delay."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from atm.pins import hash_pin
from atm.service_lockout import FREE_ATTEMPTS, PinGuard, lockout_delay

PIN = "482916"
HASH = hash_pin(PIN, iterations=1_000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


async def test_the_right_pin_opens_and_resets_the_count(tmp_path, clock):
    guard = PinGuard(tmp_path / "pin.json", clock=clock)
    assert not (await guard.attempt("000000", HASH)).ok
    verdict = await guard.attempt(PIN, HASH)
    assert verdict.ok and verdict.failures == 0


async def test_four_wrong_pins_cost_nothing_and_say_how_many_are_left(tmp_path, clock):
    guard = PinGuard(tmp_path / "pin.json", clock=clock)
    for n in range(1, FREE_ATTEMPTS):
        verdict = await guard.attempt("000000", HASH)
        assert not verdict.ok and verdict.locked_for_s == 0
        assert f"{FREE_ATTEMPTS - n} attempt" in verdict.message
    assert guard.locked_for() == 0


async def test_the_delay_grows_after_five_wrong_pins_and_even_the_right_pin_waits(tmp_path, clock):
    guard = PinGuard(tmp_path / "pin.json", clock=clock)
    for _ in range(FREE_ATTEMPTS):
        await guard.attempt("000000", HASH)
    first = guard.locked_for()
    assert first == lockout_delay(FREE_ATTEMPTS) > 0
    refused = await guard.attempt(PIN, HASH)        # locked: not even checked
    assert not refused.ok and refused.locked_for_s > 0 and "Try again" in refused.message
    clock.now += first
    assert not (await guard.attempt("111111", HASH)).ok
    assert guard.locked_for() == lockout_delay(FREE_ATTEMPTS + 1) > first
    clock.now += guard.locked_for()
    assert (await guard.attempt(PIN, HASH)).ok      # the right PIN after the delay works
    assert guard.locked_for() == 0


def test_delays_double_and_stop_at_an_hour():
    delays = [lockout_delay(n) for n in range(FREE_ATTEMPTS, FREE_ATTEMPTS + 12)]
    assert all(b == min(2 * a, 3600) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == 3600


async def test_the_lockout_survives_a_restart(tmp_path, clock):
    path = tmp_path / "pin.json"
    guard = PinGuard(path, clock=clock)
    for _ in range(FREE_ATTEMPTS + 1):
        clock.now += guard.locked_for()
        await guard.attempt("000000", HASH)
    restarted = PinGuard(path, clock=FakeClock())
    assert restarted.failures == FREE_ATTEMPTS + 1
    assert restarted.locked_for() == lockout_delay(FREE_ATTEMPTS + 1)
    assert not (await restarted.attempt(PIN, HASH)).ok


async def test_the_count_is_on_disk_before_the_answer_with_mode_0600(tmp_path, clock):
    path = tmp_path / "pin.json"
    guard = PinGuard(path, clock=clock)
    await guard.attempt("000000", HASH)
    assert PinGuard(path, clock=clock).failures == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_corrupt_file_locks_instead_of_resetting(tmp_path, clock):
    path = tmp_path / "pin.json"
    path.write_text("{not json")
    guard = PinGuard(path, clock=clock)
    assert guard.failures == FREE_ATTEMPTS and guard.locked_for() > 0


async def test_simultaneous_attempts_cannot_share_one_free_try(tmp_path, clock):
    guard = PinGuard(tmp_path / "pin.json", clock=clock)
    for _ in range(FREE_ATTEMPTS - 1):
        await guard.attempt("000000", HASH)
    verdicts = await asyncio.gather(*(guard.attempt("000000", HASH) for _ in range(3)))
    assert [v.locked_for_s > 0 for v in verdicts] == [False, True, True]


async def test_the_check_runs_off_the_event_loop(tmp_path, clock):
    """A slow hash must not freeze the screen: the loop keeps ticking while it runs."""
    slow = hash_pin(PIN, iterations=400_000)
    guard = PinGuard(tmp_path / "pin.json", clock=clock)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert (await guard.attempt(PIN, slow)).ok
    finally:
        task.cancel()
    assert ticks > 10
