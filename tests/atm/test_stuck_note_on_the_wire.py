"""A stuck note end to end over the ID-003 wire: the kiosk on the real ID-003 driver,
the simulator over TCP stalls mid-stack, then powers up with the note in the stacker
or back in the acceptor. The cash screen leaves within the kiosk's bounds; the note is
credited to its own transaction or parked with its amount, never to the next
customer, whose note is theirs alone.

Uses the simulator's existing stall() and power_cycle(note_in) controls; the
driver's resolve_note() and the simulators' stall_stacking(then) come from the ID-003
branch, and these assertions hold either way (credited to its own transaction, or parked).
"""

from __future__ import annotations

import time

import pytest

from drivers.id003.driver import Id003Validator
from hal import Fiat
from kiosk_harness import Harness
from simulators.id003 import Id003Simulator

EUR = "EUR"


@pytest.fixture
def unit():
    sim = Id003Simulator(currency=EUR, step_s=0.3)      # slow steps: the test can catch "stacking"
    sim.start("tcp")
    yield sim
    sim.stop()


async def _insert(h: Harness, sim: Id003Simulator, minor: int) -> None:
    await h.wait_for(lambda: sim.insert_note(minor), timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("note_in", ["stacker", "acceptor"])
async def test_a_note_stalled_mid_stack_is_settled_or_parked_and_the_next_customer_keeps_their_own(
        tmp_path, unit, note_in):
    driver = Id003Validator(unit.url, currency=EUR, poll_interval=0.02)
    h = Harness(tmp_path, validator=driver)
    h.kiosk.notes.settle_bound_s = 1.0
    h.kiosk.notes.resolve_bound_s = 1.0
    async with h:
        await h.wait_for(lambda: h.screen == "idle", timeout=15)
        await h.start_buy()
        first = h.kiosk.tx_id
        await _insert(h, unit, 2000)
        await h.wait_for(lambda: unit.state()["state"] == "stacking", timeout=10)
        unit.stall(True)                                    # the motor hangs mid-stack
        stalled_at = time.monotonic()
        await h.wait_for(lambda: h.screen != "insert_cash", timeout=15)
        assert time.monotonic() - stalled_at < 10           # the kiosk's two bounds, not for ever
        unit.power_cycle(note_in)                           # the unit comes back with the note somewhere
        where = "stacked" if note_in == "stacker" else "returned"
        await h.wait_for(lambda: 2000 in unit.state()[where] and unit.state()["state"] == "idle", timeout=30)
        await h.wait_for(lambda: h.screen == "idle" and h.data.get("buy_enabled")
                         and h.kiosk.device_health()["validator"].state.value == "online", timeout=30)

        credited_first = h.journal.credited(first).minor
        parked = [item for item in h.journal.reconciliation_items() if item["tx_id"] == first]
        assert h.journal.notes_in_flight(first) == 0
        assert credited_first == 2000 or (credited_first == 0 and any("20.00 EUR" in p["summary"] for p in parked))
        if note_in == "acceptor":
            assert credited_first == 0                      # it went back to the customer

        await h.start_buy()
        second = h.kiosk.tx_id
        await _insert(h, unit, 1000)
        await h.wait_for(lambda: h.journal.credited(second) == Fiat(1000, EUR), timeout=15)
        assert h.journal.credited(first).minor == credited_first
