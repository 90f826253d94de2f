"""The service menu's Cassettes and Tests pages at kiosk level: cassette refill and the
reject-bin count from the keypad, the test dispense on the LCDM wire simulator (booked
from the cassette into the reject bin), and the accept-a-note test, whose note always
goes back and is never credited."""

from __future__ import annotations

import json

from drivers.gpio.driver import GpioSensors, make_pin_factory
from kiosk_harness import REGTEST_ADDRESS, Harness, open_service_menu
from sell_world import SellKiosk



def _sell_kiosk(tmp_path) -> SellKiosk:
    world = SellKiosk(tmp_path)
    world.kiosk.devices.sensors = GpioSensors(pin_factory=make_pin_factory("mock", simulate=True))
    return world


def _facts(journal, kind: str) -> list[dict]:
    return [json.loads(f["data"]) if isinstance(f["data"], str) else f["data"] for f in journal.facts(kind)]


async def test_a_refill_from_the_cassettes_page_restarts_the_books_of_that_cassette(tmp_path):
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]
        reply = await w.act("service_action", do="refill_cassette", cassette=first, count="250")
        assert reply["ok"], reply
        row = next(r for r in w.data["cassettes"]["books"] if r["cassette"] == first)
        assert row == {"cassette": first, "denomination": "10.00 EUR", "denomination_minor": 1000, "initial": 250,
                       "dispensed": 0,
                       "rejected": 0, "count": 250, "near_empty": 3, "status": row["status"]}
        assert _facts(w.journal, "cassette_loaded")[-1]["by"] == "service menu"


async def test_bad_refill_and_reject_bin_entries_are_refused_and_change_nothing(tmp_path):
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]
        loads = w.journal.cassette_loads()
        for bad in (None, "", "12a", -1, 1.5, True, 10_001, "9" * 40):
            reply = await w.act("service_action", do="refill_cassette", cassette=first, count=bad)
            assert reply["ok"] is False and "whole number of notes" in reply["error"], bad
            reply = await w.act("service_action", do="count_reject_bin", counted=bad)
            assert reply["ok"] is False and "whole number of notes" in reply["error"], bad
        for cassette in (None, "9", 1, ""):
            reply = await w.act("service_action", do="refill_cassette", cassette=cassette, count=10)
            assert reply["ok"] is False and "choose a cassette" in reply["error"], cassette
        assert w.journal.cassette_loads() == loads
        assert _facts(w.journal, "reject_bin_counted") == []


async def test_a_refill_is_refused_while_a_transaction_is_open(tmp_path):
    """Mutation caught: dropping the open-transaction guard of the refill."""
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]
        w.journal.open_buy("tx-open", REGTEST_ADDRESS, "EUR")
        loads = w.journal.cassette_loads()
        reply = await w.act("service_action", do="refill_cassette", cassette=first, count=5)
        assert reply["ok"] is False and "still open" in reply["error"]
        assert w.journal.cassette_loads() == loads


async def test_a_test_dispense_books_its_note_from_the_cassette_into_the_reject_bin(tmp_path):
    """Mutation caught: journaling the intent after the command (the answer then finds no
    intent and the note is not booked), or not booking the answer."""
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]
        reply = await w.act("service_action", do="test_dispense", cassette=first)
        assert reply["ok"], reply
        await w.wait_for(lambda: (w.data["tests"]["test_dispense"] or {}).get("done"))
        answer = w.data["tests"]["test_dispense"]
        assert answer["rejected"] == {first: 1} and answer["exited"] == {}
        assert w.sim.state()["reject_tray"] == 1 and w.exited_notes() == 0
        assert w.journal.reject_bin() == 1
        row = next(r for r in w.data["cassettes"]["books"] if r["cassette"] == first)
        assert (row["rejected"], row["dispensed"], row["count"]) == (1, 0, 29)
        intent = _facts(w.journal, "service_test_dispense")
        after = _facts(w.journal, "service_test_dispense_answer")
        assert [f["request_id"] for f in intent] == [f["request_id"] for f in after] == [answer["request_id"]]
        assert w.journal.open_dispenses() == []
        # the technician empties the reject bin: the count matches the books, nothing to reconcile
        reply = await w.act("service_action", do="count_reject_bin", counted="1")
        assert reply["ok"], reply
        assert w.journal.reject_bin() == 0 and w.journal.reconciliation_items() == []


async def test_a_reject_bin_count_that_differs_from_the_books_goes_to_reconciliation(tmp_path):
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        reply = await w.act("service_action", do="count_reject_bin", counted=3)
        assert reply["ok"], reply
        assert [r["summary"] for r in w.journal.reconciliation_items()] == [
            "reject bin counted 3 notes, the books expected 0"]


async def test_the_note_test_returns_the_note_shows_its_value_and_credits_nothing(tmp_path):
    """Mutation caught: stacking the test note instead of returning it (the cashbox and
    the journal's notes then hold it)."""
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="note_test"))["ok"]
        assert h.validator.state_info()["enabled"] is True
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: h.data["tests"]["note_test"]["read"] == "20.00 EUR")
        await h.wait_for(lambda: h.validator.state_info()["escrow"] is None)
        await h.wait_for(lambda: h.validator.state_info()["enabled"] is False)
        await h.settle_events()
        assert h.validator.state_info()["cashbox"] == []
        assert h.journal.cashbox_counts() == {}
        assert h.journal.transactions(("open", "sending", "completed")) == []
        assert [f["value_minor"] for f in _facts(h.journal, "service_note_test")] == [2000]
        assert h.data["tests"]["note_test"]["active"] is False
        assert h.kiosk.state == "maintenance_menu"


async def test_leaving_the_menu_ends_the_note_test(tmp_path):
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="note_test"))["ok"]
        assert (await h.act("service_action", do="exit"))["ok"]
        await h.wait_for(lambda: h.kiosk.service_menu.note_test is False)
        assert h.kiosk.service_menu.testing_notes() is False


async def test_a_test_dispense_is_journaled_before_the_dispenser_is_told(tmp_path):
    """Mutation caught: journaling the intent after the command. A power cut right after
    the command must find the intent on restart, to ask the device and not lose the note
    from the books; here the journal file is read at the moment the command goes out."""
    import sqlite3
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]
        seen: list[int] = []
        real = w.dispenser.test_dispense

        def told(request_id: str, cassette: str) -> None:
            db = sqlite3.connect(tmp_path / "journal.sqlite")
            try:
                seen.append(db.execute("SELECT COUNT(*) FROM dispense_intents WHERE request_id=?",
                                       (request_id,)).fetchone()[0])
            finally:
                db.close()
            real(request_id, cassette)
        w.dispenser.test_dispense = told
        assert (await w.act("service_action", do="test_dispense", cassette=first))["ok"]
        assert seen == [1]
        await w.wait_for(lambda: (w.data["tests"]["test_dispense"] or {}).get("done"))


async def test_a_test_dispense_the_device_refuses_is_booked_unknown_for_the_reject_bin_count(tmp_path):
    """Mutation caught: leaving the intent open after the driver raised (no cash-out could
    start again) or booking it as nothing moved (the reject-bin count would hide a note)."""
    from hal.errors import DeviceError
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        first = w.dispenser.cassette_ids[0]

        def broken(request_id: str, cassette: str) -> None:
            raise DeviceError("lcdm: no answer to the test command")
        w.dispenser.test_dispense = broken
        reply = await w.act("service_action", do="test_dispense", cassette=first)
        assert reply["ok"] is False and "no answer to the test command" in reply["error"]
        assert w.journal.open_dispenses() == []
        [booked] = [d for d in w.journal.dispenses_for_all() if d["request_id"].startswith("svc-test-")]
        assert booked["outcome"] == "unknown" and booked["uncertain"] == {first: 1}
        assert any("cannot tell" in r["summary"] for r in w.journal.reconciliation_items())
        assert _facts(w.journal, "service_test_dispense_answer")[-1]["error"] == "lcdm: no answer to the test command"


async def test_a_dispenser_without_a_test_dispense_is_refused_before_anything_is_journaled(tmp_path):
    from simulators.standin import StandinDispenser
    async with Harness(tmp_path) as h:
        h.kiosk.devices.dispenser = StandinDispenser()
        await open_service_menu(h)
        reply = await h.act("service_action", do="test_dispense", cassette="upper")
        assert reply["ok"] is False and "has no test dispense" in reply["error"]
        assert h.journal.dispenses_for_all() == [] and _facts(h.journal, "service_test_dispense") == []


async def test_a_test_dispense_is_refused_while_a_transaction_is_open(tmp_path):
    """Mutation caught: dropping the open-transaction guard of the test dispense."""
    async with _sell_kiosk(tmp_path) as w:
        await open_service_menu(w)
        w.journal.open_buy("tx-open", REGTEST_ADDRESS, "EUR")
        reply = await w.act("service_action", do="test_dispense", cassette=w.dispenser.cassette_ids[0])
        assert reply["ok"] is False and "still open" in reply["error"]
        assert w.sim.state()["reject_tray"] == 0 and w.journal.dispenses_for_all() == []


async def test_a_note_outside_the_note_test_still_takes_the_buy_path(tmp_path):
    """The maintenance branch only takes notes while the note test runs: a buy is untouched."""
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(2000)
        assert h.journal.credited(h.kiosk.tx_id).minor == 2000
        assert _facts(h.journal, "service_note_test") == []


async def test_a_test_dispense_cut_off_by_a_restart_is_asked_about_and_never_repeated(tmp_path):
    """A power cut between the journaled intent and the answer: on restart the intent is
    reconciled like any dispense (the device is asked, the dispense is not sent again),
    and the note goes to the operator as an item to count, so cash-out is not blocked."""
    from hal import Fiat
    w = _sell_kiosk(tmp_path)
    first = w.dispenser.cassette_ids[0]
    w.journal.dispense_intended("service-svc-test-cut", "svc-test-cut", "dispenser", {first: 1}, Fiat.zero("EUR"))
    async with w:
        await w.wait_for(lambda: w.journal.open_dispenses() == [])
        [booked] = w.journal.dispenses_for_all()
        assert booked["request_id"] == "svc-test-cut" and booked["source"] == "recovery"
        assert w.sim.state()["reject_tray"] == 0 and w.exited_notes() == 0
