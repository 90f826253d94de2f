"""The Cassettes page at kiosk level, for a routine visit without a shell: a refill books
the note value and the low level the technician chose (a value the dispenser is not
configured for is booked, shown as a mismatch and alerted), and a dispense of unknown
outcome is booked as counted through the journal call `atm cassettes resolve` uses,
once, and only when its outcome is unknown."""

from __future__ import annotations

import json
from decimal import Decimal

from drivers.gpio.driver import GpioSensors, make_pin_factory
from hal import Fiat, Sats
from kiosk_harness import open_service_menu
from sell_world import SellKiosk

CODE = "CODE-1"


def eur(minor: int) -> Fiat:
    return Fiat(minor, "EUR")



def _kiosk(tmp_path) -> SellKiosk:
    world = SellKiosk(tmp_path)            # LCDM-4000: 10, 20 and 50 EUR cassettes, booked 30/30/20
    world.kiosk.devices.sensors = GpioSensors(pin_factory=make_pin_factory("mock", simulate=True))
    return world


def _alerts(journal, kind: str) -> list[dict]:
    facts = [json.loads(f["data"]) for f in journal.facts("alert")]
    return [f for f in facts if f["alert"] == kind]


def _row(w, cassette: str) -> dict:
    return next(r for r in w.data["cassettes"]["books"] if r["cassette"] == cassette)


def _unknown_sale(w, tx: str = "sell-1") -> tuple[str, str, str]:
    """A proven sale of 60.00 EUR whose redeem dispense (50 + 10) lost its answer in a
    power cut: journaled as the kiosk journals it, before the kiosk starts."""
    ten, _, fifty = w.dispenser.cassette_ids[:3]
    j = w.journal
    j.open_sell(tx, eur(6000), eur(300), Decimal("50000"), Sats(12_600))
    j.sell_invoiced(tx, "bcrt1qexample", 0, 2e9)
    j.payment_proven(tx, "ab" * 32, 12_600, 2, True, "pay", eur(6000))
    j.issue_redeem(tx, CODE, eur(6000))
    assert j.claim_redeem(CODE, tx, "r1", "dispenser", {fifty: 1, ten: 1}, eur(6000))
    j.dispense_outcome("r1", "timeOut", {}, {}, eur(0), outcome="unknown", uncertain={fifty: 1, ten: 1},
                       uncertain_value=eur(6000), source="recovery")
    j.settle_redeem(tx)
    return tx, ten, fifty


async def test_a_refill_books_the_note_value_and_low_level_typed_on_the_page(tmp_path):
    async with _kiosk(tmp_path) as w:
        await open_service_menu(w)
        ten = w.dispenser.cassette_ids[0]
        offered = w.data["cassettes"]["refill"]
        # the dispenser's and the books' notes, and the validator's (5 to 200 EUR on the stand-in)
        assert [d["minor"] for d in offered["denominations"]] == [500, 1000, 2000, 5000, 10000, 20000]
        assert offered["denominations"][0]["text"] == "5.00 EUR"
        assert offered["cassettes"][0] == {"cassette": ten, "configured": "10.00 EUR", "configured_minor": 1000,
                                           "denomination_minor": 1000, "near_empty": 3}
        reply = await w.act("service_action", do="refill_cassette", cassette=ten, count="200",
                            denomination="1000", near_empty="15")
        assert reply["ok"], reply
        row = _row(w, ten)
        assert (row["denomination"], row["count"], row["near_empty"]) == ("10.00 EUR", 200, 15)
        assert w.data["cassettes"]["denomination_mismatches"] == []
        assert _alerts(w.journal, "cassette_denomination") == []
        # no value and no level given: the previous ones stay
        assert (await w.act("service_action", do="refill_cassette", cassette=ten, count="12"))["ok"]
        row = _row(w, ten)
        assert (row["denomination_minor"], row["count"], row["near_empty"]) == (1000, 12, 15)


async def test_a_note_value_the_dispenser_is_not_configured_for_is_booked_shown_and_alerted(tmp_path):
    """Mutation caught: dropping the mismatch alert, or the mismatch row of the page."""
    async with _kiosk(tmp_path) as w:
        await open_service_menu(w)
        ten = w.dispenser.cassette_ids[0]
        reply = await w.act("service_action", do="refill_cassette", cassette=ten, count="40", denomination="2000",
                            near_empty="5")
        assert reply["ok"], reply
        assert _row(w, ten)["denomination"] == "20.00 EUR"
        assert w.data["cassettes"]["denomination_mismatches"] == [
            {"cassette": ten, "books": "20.00 EUR", "configured": "10.00 EUR"}]
        [alert] = _alerts(w.journal, "cassette_denomination")
        assert alert["severity"] == "critical" and "configured for 10.00 EUR" in alert["text"]


async def test_bad_note_values_and_low_levels_are_refused_and_book_nothing(tmp_path):
    async with _kiosk(tmp_path) as w:
        await open_service_menu(w)
        ten = w.dispenser.cassette_ids[0]
        loads = w.journal.cassette_loads()
        for bad in ("20", "0", "abc", -5, True, 1.5, "9" * 13, 10**13, [], {"x": 1}):
            reply = await w.act("service_action", do="refill_cassette", cassette=ten, count="10", denomination=bad)
            assert reply["ok"] is False and "minor units" in reply["error"], (bad, reply)
        for bad in ("x", -1, 10_001, True, "1.5"):
            reply = await w.act("service_action", do="refill_cassette", cassette=ten, count="10",
                                denomination="1000", near_empty=bad)
            assert reply["ok"] is False and "low level" in reply["error"], (bad, reply)
        assert w.journal.cassette_loads() == loads
        assert "e.g. 2000 for 20.00 EUR" in (await w.act("service_action", do="refill_cassette", cassette=ten,
                                                          count="10", denomination="20"))["error"]


async def test_an_unknown_dispense_is_listed_and_its_count_reopens_the_code_for_the_rest(tmp_path):
    w = _kiosk(tmp_path)
    tx, ten, fifty = _unknown_sale(w)
    async with w:
        await open_service_menu(w)
        [item] = w.data["cassettes"]["unknown_dispenses"]
        assert (item["request_id"], item["tx_id"], item["test"], item["value"]) == ("r1", tx, False, "60.00 EUR")
        assert item["asked"] == [{"cassette": c, "notes": 1, "value": v}
                                 for c, v in sorted([(ten, "10.00 EUR"), (fifty, "50.00 EUR")])]
        assert item["at"] is not None
        reply = await w.act("service_action", do="resolve_dispense", request_id="r1",
                            exited={fifty: "1", ten: "0"}, rejected={ten: "1"})
        assert reply["ok"], reply
        assert w.data["cassettes"]["unknown_dispenses"] == []
        assert w.journal.owed(tx) == eur(1000)
        assert w.journal.redeem_code(tx)["state"] == "issued"
        assert (_row(w, fifty)["dispensed"], _row(w, ten)["dispensed"], _row(w, ten)["rejected"]) == (1, 0, 1)
        assert not [r for r in w.journal.reconciliation_items() if r["summary"].startswith("dispense r1:")]
        [fact] = [json.loads(f["data"]) for f in w.journal.facts("dispense_resolved")]
        assert fact["by"] == "service menu"


async def test_a_second_count_of_the_same_dispense_is_refused_and_cannot_reopen_a_paid_code(tmp_path):
    """A resolve booked twice (a stale page, a second technician): the code was paid in
    between, so a second, lower count would make the kiosk owe the note again and pay it
    twice. Mutation caught: dropping the journal's `outcome != 'unknown'` guard in
    Journal.resolve_dispense (the second count then rewrites the first and re-issues the
    paid code); seen failing with it dropped."""
    w = _kiosk(tmp_path)
    tx, ten, fifty = _unknown_sale(w)
    async with w:
        await open_service_menu(w)
        assert (await w.act("service_action", do="resolve_dispense", request_id="r1",
                            exited={fifty: "1", ten: "0"}))["ok"]
        # the customer collects the rest with the code
        assert w.journal.claim_redeem(CODE, tx, "r2", "dispenser", {ten: 1}, eur(1000))
        w.journal.dispense_outcome("r2", "success", {ten: 1}, {}, eur(1000))
        assert w.journal.settle_redeem(tx) == "redeemed"
        reply = await w.act("service_action", do="resolve_dispense", request_id="r1",
                            exited={fifty: "0", ten: "0"})
        assert reply["ok"] is False and "no unknown outcome" in reply["error"]
        assert w.data["last_result"] == {"do": "resolve_dispense", "ok": False, "text": reply["error"]}
        assert w.journal.owed(tx) == eur(0)
        assert w.journal.redeem_code(tx)["state"] == "redeemed"
        r1 = next(d for d in w.journal.dispenses_for(tx) if d["request_id"] == "r1")
        assert (r1["exited"], r1["source"]) == ({fifty: 1, ten: 0}, "operator")
        # a dispense whose outcome the device told is not the technician's to rewrite
        reply = await w.act("service_action", do="resolve_dispense", request_id="r2", exited={ten: "0"})
        assert reply["ok"] is False and "no unknown outcome" in reply["error"]
        assert w.journal.dispensed(tx) == eur(6000)


async def test_counts_outside_the_dispense_are_refused_and_book_nothing(tmp_path):
    w = _kiosk(tmp_path)
    tx, ten, fifty = _unknown_sale(w)
    async with w:
        await open_service_menu(w)
        twenty = w.dispenser.cassette_ids[1]
        for fields, said in (
                ({"exited": {fifty: "1"}}, f"from cassette {ten}"),                # a cassette left out
                ({"exited": {fifty: "2", ten: "0"}}, "not within what was asked"),    # more than asked
                ({"exited": {fifty: "1", ten: "0", twenty: "1"}}, "cassettes it asked for"),
                ({"exited": {fifty: "1", ten: "0"}, "rejected": {twenty: "1"}}, "cassettes it asked for"),
                ({"exited": {fifty: "x", ten: "0"}}, "whole number"),
                ({"exited": "1"}, "per cassette"),
                ({"request_id": "nobody", "exited": {ten: "0"}}, "no unknown outcome"),
                ({"request_id": None, "exited": {ten: "0"}}, "choose a dispense")):
            reply = await w.act("service_action", do="resolve_dispense", **{"request_id": "r1", **fields})
            assert reply["ok"] is False and said in reply["error"], (fields, reply)
        assert [d["request_id"] for d in w.data["cassettes"]["unknown_dispenses"]] == ["r1"]
        assert w.journal.redeem_code(tx)["state"] == "redeemed" and w.journal.owed(tx) == eur(0)


async def test_a_test_dispense_of_unknown_outcome_is_counted_with_no_sale_to_settle(tmp_path):
    w = _kiosk(tmp_path)
    ten = w.dispenser.cassette_ids[0]
    w.journal.dispense_intended("service-svc-test-cut", "svc-test-cut", "dispenser", {ten: 1}, eur(0))
    w.journal.dispense_outcome("svc-test-cut", "hardwareError", {}, {}, eur(0), outcome="unknown",
                               uncertain={ten: 1}, uncertain_value=eur(1000))
    async with w:
        await open_service_menu(w)
        [item] = w.data["cassettes"]["unknown_dispenses"]
        assert item["test"] is True and item["request_id"] == "svc-test-cut"
        reply = await w.act("service_action", do="resolve_dispense", request_id="svc-test-cut",
                            exited={ten: "0"}, rejected={ten: "1"})
        assert reply["ok"], reply
        assert w.journal.reject_bin() == 1 and _row(w, ten)["count"] == 29
