"""A note belongs to exactly one transaction: a stalled note is resolved by asking
the device within a bound and credited to its own transaction, returned, or parked;
the cash screen never waits for ever; the next customer's note is theirs alone; a
settled event the device repeats is credited once. Stand-in validator."""

from __future__ import annotations

import pytest

from hal import Fiat
from kiosk_harness import Harness

EUR = "EUR"


def _fast(h: Harness) -> Harness:
    h.kiosk.notes.settle_bound_s = 0.3
    h.kiosk.notes.resolve_bound_s = 0.3
    return h


async def _stall(h: Harness, then: str, minor: int = 2000) -> str:
    h.validator.stall_stacking(then)
    assert h.validator.insert_note(minor)
    await h.wait_for(lambda: h.validator.state_info()["stalled"] == minor)
    tx_id = h.kiosk.tx_id
    assert tx_id and h.journal.notes_in_flight(tx_id) == 1
    return tx_id


async def test_a_stalled_note_found_in_the_stacker_is_credited_to_its_own_transaction_and_sent(tmp_path):
    """Mutation caught: a kiosk that never calls resolve_note() (the cash screen waits for ever)."""
    async with _fast(Harness(tmp_path)) as h:
        await h.start_buy()
        await h.insert(1000)
        tx_id = await _stall(h, "stacker")
        await h.wait_for(lambda: h.screen in ("sending", "receipt"), timeout=10)
        assert h.journal.credited(tx_id) == Fiat(3000, EUR)
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["request_id"].startswith(tx_id) and h.cas.sent()[0]["sats"] == 57_000
        assert h.journal.reconciliation_items() == []


async def test_a_stalled_note_back_in_the_acceptor_is_not_credited_and_the_screen_goes_back_to_idle(tmp_path):
    async with _fast(Harness(tmp_path)) as h:
        await h.start_buy()
        tx_id = await _stall(h, "acceptor")
        await h.wait_for(lambda: h.screen == "idle", timeout=10)
        assert h.journal.credited(tx_id).minor == 0 and h.journal.notes_in_flight(tx_id) == 0
        assert h.journal.transaction(tx_id)["status"] == "canceled" and h.cas.sent() == []


@pytest.mark.parametrize("then", ["unknown", "silent"])
async def test_a_stalled_note_nobody_can_place_is_parked_with_its_amount_and_the_screen_moves_on(tmp_path, then):
    """Mutation caught: dropping the second bound (a silent device keeps the screen for ever)
    or crediting an unknown note to the transaction."""
    async with _fast(Harness(tmp_path)) as h:
        await h.start_buy()
        await h.insert(1000)
        tx_id = await _stall(h, then, 5000)
        await h.wait_for(lambda: h.screen in ("sending", "receipt"), timeout=10)
        assert h.journal.credited(tx_id) == Fiat(1000, EUR)
        items = h.journal.reconciliation_items()
        assert len(items) == 1 and items[0]["tx_id"] == tx_id and "50.00 EUR" in items[0]["summary"]
        assert any("parked" in a for a in h.kiosk.service_status()["alerts"])
        await h.wait_for(lambda: len(h.cas.sent()) == 1)        # the credited 10.00 EUR is still sent
        assert h.cas.sent()[0]["sats"] == 19_000
        assert h.journal.transaction(tx_id)["status"] == "parked"


async def test_after_a_parked_note_the_next_customers_note_is_credited_to_the_next_transaction_only(tmp_path):
    """Mutation caught: crediting a settled event to the open transaction instead of the
    decision it settles (the old orphan rule)."""
    async with _fast(Harness(tmp_path)) as h:
        await h.start_buy()
        first = await _stall(h, "unknown", 2000)
        await h.wait_for(lambda: h.screen == "idle", timeout=10)
        await h.start_buy()
        second = h.kiosk.tx_id
        assert second != first
        await h.insert(1000)
        assert h.journal.credited(second) == Fiat(1000, EUR)
        assert h.journal.credited(first).minor == 0
        # the first customer's note now settles late, while the second customer is at the kiosk
        h.validator._stalled = (Fiat(2000, EUR), "stacker")
        h.validator.resolve_note()
        await h.wait_for(lambda: h.journal.cashbox_counts().get(2000) == 1)
        assert h.journal.credited(second) == Fiat(1000, EUR)
        assert any("no escrow decision" in item["summary"] and item["tx_id"] is None
                   for item in h.journal.reconciliation_items())


async def test_the_validator_takes_no_new_note_while_the_previous_one_is_unresolved(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.notes.settle_bound_s = 30                     # the stall stays unresolved during the test
    async with h:
        await h.start_buy()
        tx_id = await _stall(h, "silent")
        assert h.validator.insert_note(1000)              # the unit takes it into escrow...
        await h.wait_for(lambda: "still being counted" in h.said("message"))
        assert h.journal.notes_in_flight(tx_id) == 1      # ...and the kiosk returned it
        assert (await h.act("cancel"))["ok"] is False     # nothing leaves while the note moves
        h.sensors.pin("door").drive_high()                # the door has a row too: it waits for the note
        await h.settle_events()
        assert h.screen == "insert_cash" and h.validator.state_info()["enabled"] is False


async def test_a_door_opened_while_a_note_moves_ends_out_of_service_once_the_note_is_parked(tmp_path):
    async with _fast(Harness(tmp_path)) as h:
        await h.start_buy()
        await _stall(h, "silent")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: h.screen == "out_of_service", timeout=10)
        assert "door" in h.kiosk.out_of_service_reason() and h.validator.state_info()["enabled"] is False


async def test_a_settled_event_the_device_repeats_is_credited_once(tmp_path):
    """Mutation caught: removing the "credit once" guard in Journal.record_credit (the
    repeat becomes a second note in the cashbox or a second credit)."""
    async with Harness(tmp_path) as h:
        await h.start_buy()
        h.validator.lose_host_ack_once()
        await h.insert(2000)
        await h.settle_events()
        assert len(list(h.journal.facts("credit_recorded"))) == 2
        assert h.journal.credited(h.kiosk.tx_id) == Fiat(2000, EUR)
        assert h.journal.cashbox_counts() == {2000: 1} and h.journal.reconciliation_items() == []
        assert h.data["inserted_minor"] == 2000


async def test_a_note_that_settles_after_it_was_parked_is_credited_to_its_own_transaction_late(tmp_path):
    h = _fast(Harness(tmp_path))
    h.kiosk.retry_interval = 0.1
    async with h:
        await h.start_buy()
        first = await _stall(h, "unknown", 2000)
        await h.wait_for(lambda: h.screen == "idle", timeout=10)
        h.validator._stalled = (Fiat(2000, EUR), "stacker")   # the unit finds it after all
        h.validator.resolve_note()
        await h.wait_for(lambda: h.journal.credited(first) == Fiat(2000, EUR))
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["request_id"].startswith(first)


async def test_the_note_bounds_come_from_the_timeouts_table(tmp_path):
    from atm.config import Timeouts, parse
    config = parse({"timeouts": {"note_settle": 4, "note_resolve": 2}}, "<test>")
    assert (config.timeouts.note_settle, config.timeouts.note_resolve) == (4, 2)
    h = Harness(tmp_path, timeouts=Timeouts(note_settle=4, note_resolve=2))
    assert (h.kiosk.notes.settle_bound_s, h.kiosk.notes.resolve_bound_s) == (4, 2)
    assert (Timeouts().note_settle, Timeouts().note_resolve) == (15.0, 5.0)
