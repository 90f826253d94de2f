"""The buy's money rules at kiosk level: the quote the customer confirms is the one
every send uses, stale or out-of-bounds rates never price a purchase, fees are
charged once over the total and shown before the first note, and the limits hold
to the exact minor unit."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from atm.cas.interface import Quote
from atm.cas.standin import StandinCas
from atm.config import Timeouts
from atm.journal import Journal
from atm.settlement import Settlement
from hal import Fiat, NoteCredited
from kiosk_harness import Harness

EUR = "EUR"


async def _buy_to_confirm(h: Harness, *notes: int) -> None:
    await h.start_buy()
    for minor in notes:
        await h.insert(minor)
    assert (await h.act("finish_cash"))["ok"]
    await h.wait_for(lambda: h.screen == "confirm")


# ------------------------------------------------------------------ quote lock

async def test_the_send_uses_the_confirmed_rate_when_the_cas_simulator_changes_it_before_the_send(tmp_path):
    """Mutation caught: settlement pricing with the latest market quote instead of the
    transaction's journaled one (atm/settlement.py `_price`)."""
    from simulators.cas.harness import SimulatedOperator
    async with SimulatedOperator(tmp_path / "op", rates={"EUR": "60000"}) as operator:
        client = operator.client(poll_interval_s=0.05, timeout_s=2.0)
        client.rate_max_age_s = 0.2             # a quote older than this asks the simulator again
        await client.poll_once()
        h = Harness(tmp_path, cas=client)
        async with h:
            await h.wait_for(lambda: h.screen == "idle" and h.data["buy_enabled"])
            await _buy_to_confirm(h, 2000)
            assert h.data["rate"] == "60,000.00 EUR/BTC"
            operator.cas.set_rate("EUR", "30000")        # between confirm and send
            await client.poll_once()
            await h.kiosk._refresh_quote()
            assert h.kiosk.pricing.quote.rate == Decimal("30000")
            assert (await h.act("confirm"))["ok"]
            await h.wait_for(lambda: h.screen == "receipt" and operator.cas.sends)
            # 20.00 EUR less 5 % = 19.00 EUR at the confirmed 60,000 EUR/BTC, not at 30,000
            [send] = operator.cas.sends.values()
            assert send["sats"] == 31_666
            report = h.journal.report()["transactions"][0]
            assert report["quote"] == {"rate": "60000", "fee_percent": "5", "fee_fixed_minor": 0}
            assert [(s["sats"], s["status"]) for s in report["sends"]] == [(31_666, "sent")]
        await client.stop()


async def test_a_stale_quote_is_refreshed_and_shown_again_before_the_customer_commits(tmp_path):
    """Mutation caught: dropping the `quote_is_fresh` guard from the confirm row."""
    h = Harness(tmp_path)
    now = [1000.0]
    h.kiosk.pricing.clock = lambda: now[0]
    async with h:
        await _buy_to_confirm(h, 2000)
        h.set_rate("40000")
        now[0] += 61                                     # older than quote_max_age_s (60)
        reply = await h.act("confirm")
        assert reply["ok"] is False and h.screen == "confirm"
        await h.wait_for(lambda: h.data["rate"] == "40,000.00 EUR/BTC")
        assert "updated" in h.said("message") and h.data["sats"] == 47_500
        assert h.cas.sent() == []
        assert (await h.act("confirm"))["ok"]
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["sats"] == 47_500
        assert h.journal.report()["transactions"][0]["quote"]["rate"] == "40000"


async def test_a_rate_outside_the_signed_bounds_stops_new_purchases_and_the_idle_screen_says_why(tmp_path):
    async with Harness(tmp_path, settings={"rate_bounds": (Decimal(40000), Decimal(45000))}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        assert h.data["buy_enabled"] is False and h.data["rate"] is None
        assert h.data["notice"]["key"] == "message.buy_paused" and "outside" in h.kiosk.buy_paused_reason()
        reply = await h.act("start_buy")
        assert reply["ok"] is False and "outside" in reply["error"]


async def test_new_signed_bounds_end_the_quote_in_force_and_the_idle_screen_is_drawn_again(tmp_path):
    async with Harness(tmp_path, settings={"rate_bounds": (Decimal(40000), Decimal(60000))}) as h:
        await h.wait_for(lambda: h.screen == "idle" and h.data["buy_enabled"])
        seq = h.kiosk.snapshot()["seq"]
        narrowed = dataclasses.replace(h.cas.settings(), version=2, rate_bounds=(Decimal(40000), Decimal(45000)))
        h.cas._settings = narrowed
        h.kiosk.settings_changed(narrowed)
        await h.wait_for(lambda: h.kiosk.snapshot()["seq"] > seq and not h.data["buy_enabled"])
        assert h.data["rate"] is None and "outside" in h.kiosk.buy_paused_reason()
        assert h.kiosk.pricing.quote is None


async def test_absurd_rates_never_price_a_purchase_and_the_kiosk_keeps_running(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.retry_interval = 0.05
    async with h:
        await h.wait_for(lambda: h.screen == "idle" and h.data["buy_enabled"])
        for absurd in ("1E-30", "1000000000000", "0", "-5"):
            h.set_rate(absurd)
            await h.wait_for(lambda: not h.data["buy_enabled"])
            assert h.kiosk.pricing.quote is None and h.data["notice"]
            h.set_rate("50000")
            await h.wait_for(lambda: h.data["buy_enabled"])
        assert not h.kiosk._consumer.done() and any(t.get_name() == "kiosk-background" for t in h.kiosk._tasks)


async def test_a_refused_rate_ends_the_quote_in_force(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle" and h.data["buy_enabled"])
        h.cas.available = False
        await h.kiosk._refresh_quote()
        await h.wait_for(lambda: not h.data["buy_enabled"])
        assert h.kiosk.pricing.quote is None and h.data["rate"] is None


async def test_the_idle_screen_is_redrawn_when_the_rate_changes(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.retry_interval = 0.05
    async with h:
        await h.wait_for(lambda: h.screen == "idle" and h.data["rate"] == "50,000.00 EUR/BTC")
        h.set_rate("52000")
        await h.wait_for(lambda: h.data["rate"] == "52,000.00 EUR/BTC")


async def test_the_signed_max_offline_wins_when_it_is_stricter_than_the_local_one(tmp_path):
    class LastHeardLongAgo(StandinCas):
        def is_reachable(self, max_offline_s: float) -> bool:
            return 100 <= max_offline_s                  # last answer 100 s ago

    h = Harness(tmp_path, cas_offline_stop_after_s=300.0)
    h.kiosk.cas = LastHeardLongAgo(tmp_path / "ledger.sqlite", settings=dataclasses.replace(
        h.cas.settings(), max_offline_s=60))
    h.kiosk.pricing.cas = h.kiosk.cas
    h.kiosk.settlement.cas = h.kiosk.cas
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        assert h.data["buy_enabled"] is False and "server" in h.said("notice")


# ------------------------------------------------------------------ fees

async def test_fee_terms_and_the_effective_price_are_on_screen_before_the_first_note(tmp_path):
    async with Harness(tmp_path, settings={"fixed_fee": Fiat(100, EUR)}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        for screen in ("idle", "scan_address", "insert_cash"):
            if screen == "scan_address":
                assert (await h.act("start_buy"))["ok"]
                await h.wait_for(lambda: h.screen == "scan_address")
            if screen == "insert_cash":
                assert h.scanner.present("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
                await h.wait_for(lambda: h.screen == "insert_cash")
            data = h.data
            assert (data["fee_percent"], data["fixed_fee"]) == ("5", "1.00 EUR"), screen
            assert data["price_per_btc"] == "52,631.58 EUR/BTC", screen       # 50,000 / 0.95
            assert (data["min"], data["max"]) == ("5.00 EUR", "100.00 EUR"), screen


async def test_the_fixed_fee_is_charged_once_and_the_percent_fee_over_the_total_across_three_sends(tmp_path):
    """Mutation caught: charging the fixed fee (or the percent fee) per send again
    (old `quote.sats_for(unsent)` in atm/settlement.py)."""
    journal = Journal(tmp_path / "journal.sqlite")
    cas = StandinCas(tmp_path / "ledger.sqlite", settings=Harness(tmp_path / "h").cas.settings())
    quote = Quote(EUR, Decimal(50000), Decimal(5), Fiat(100, EUR))
    settlement = Settlement(journal, cas, lambda: None)
    journal.open_buy("t1", "addr", EUR, quote, Fiat(500, EUR))

    def escrow(minor: int) -> None:
        journal.escrow_decided("validator", str(minor), Fiat(minor, EUR), "stack", "t1")

    def credit(minor: int) -> None:
        journal.record_credit(NoteCredited(device="validator", value=Fiat(minor, EUR), code=str(minor)))

    escrow(2000)
    credit(2000)
    escrow(1000)                      # still stacking when the customer finished
    journal.close_cash("t1")
    await settlement.settle("t1")
    credit(1000)
    escrow(500)
    await settlement.settle("t1")
    credit(500)
    await settlement.settle("t1")
    sends = journal.sends_for("t1")
    assert [(s.fiat.minor, s.fee.minor, s.sats.sat) for s in sends] == [
        (2000, 200, 36_000),          # 20.00: 5 % = 1.00, fixed 1.00 -> 18.00 EUR = 36,000 sat
        (1000, 50, 19_000),           # total 30.00: fee 2.50 -> 27.50 EUR = 55,000 sat in all
        (500, 25, 9_500),             # total 35.00: fee 2.75 -> 32.25 EUR = 64,500 sat in all
    ]
    assert sum(s.fee.minor for s in sends) == 175 + 100
    assert [s["sats"] for s in cas.sent()] == [36_000, 19_000, 9_500]
    assert journal.transaction("t1")["status"] == "completed"
    journal.close()


async def test_finish_below_the_minimum_is_refused_with_a_clear_text(tmp_path):
    """Mutation caught: dropping `reaches_minimum` from the finish_cash row."""
    async with Harness(tmp_path, min_buy=Fiat(5000, EUR)) as h:
        await h.start_buy()
        await h.insert(2000)
        assert h.data["can_finish"] is False
        reply = await h.act("finish_cash")
        assert reply["ok"] is False and "minimum purchase is 50.00 EUR" in reply["error"]
        assert "30.00 EUR more" in reply["error"] and h.screen == "insert_cash"
        await h.insert(5000)
        assert (await h.act("finish_cash"))["ok"]


async def test_a_purchase_that_times_out_below_the_minimum_is_still_sent_with_the_fixed_fee_waived(tmp_path):
    """Mutation caught: charging the fixed fee below the minimum (20.00 EUR would buy 36,000
    sat, not 38,000), and a cash screen timeout that drops credited cash."""
    h = Harness(tmp_path, min_buy=Fiat(5000, EUR), settings={"fixed_fee": Fiat(100, EUR)})
    h.kiosk.config = dataclasses.replace(h.config, timeouts=Timeouts(cash=0.3, recheck=30))
    async with h:
        await h.start_buy()
        await h.insert(2000)
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["sats"] == 38_000
        [send] = h.journal.report()["transactions"][0]["sends"]
        assert (send["fiat_minor"], send["fee_minor"], send["status"]) == (2000, 100, "sent")


async def test_a_send_priced_at_zero_sats_is_parked_never_marked_sent(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    journal.open_buy("t1", "addr", EUR)
    journal.escrow_decided("validator", "1", Fiat(1000, EUR), "stack", "t1")
    journal.record_credit(NoteCredited(device="validator", value=Fiat(1000, EUR), code="1"))
    journal.close_cash("t1")
    cas = StandinCas(tmp_path / "ledger.sqlite", settings=Harness(tmp_path / "h").cas.settings(),
                     rate=Decimal("1000000000000"))
    await Settlement(journal, cas, lambda: None).settle("t1")
    [send] = journal.sends_for("t1")
    assert send.status == "parked" and send.sats.sat == 0 and cas.sent() == []
    assert journal.pending_sends() == [] and journal.summary("t1")["sats"] == 0
    assert any("0 sats" in item["summary"] for item in journal.reconciliation_items())
    journal.close()


# ------------------------------------------------------------------ limits

async def test_a_note_that_exactly_fills_the_remaining_room_is_accepted_and_one_above_is_returned(tmp_path):
    """Mutation caught: the escrow limit check `>` turned into `>=` (atm/flows/buy.py on_escrow)."""
    async with Harness(tmp_path, max_buy=Fiat(6000, EUR)) as h:
        await h.start_buy()
        await h.insert(5000)
        await h.insert(1000)                              # room was exactly 10.00
        assert h.journal.credited(h.kiosk.tx_id) == Fiat(6000, EUR) and h.validator.cashbox == [5000, 1000]
        decisions = [f["data"] for f in h.journal.facts("escrow_decided")]
        assert all('"decision": "stack"' in d for d in decisions)
    async with Harness(tmp_path / "above", max_buy=Fiat(6000, EUR)) as h:
        await h.start_buy()
        await h.insert(5000)
        h.validator._accept.add(Fiat(2000, EUR))          # a device that ignores its enable list
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: "limit" in h.said("message"))
        assert h.journal.credited(h.kiosk.tx_id) == Fiat(5000, EUR) and h.validator.cashbox == [5000]


async def test_a_confirmed_rate_outside_bounds_signed_later_prices_no_send_and_is_parked_and_alerted(tmp_path):
    """Mutation caught: pricing a send at a confirmed rate the operator's newer bounds
    exclude (the bounds check in Settlement._price)."""
    narrowed = {"rate_bounds": (Decimal(55000), Decimal(60000))}
    async with Harness(tmp_path, settings=narrowed) as h:
        await h.wait_for(lambda: h.screen == "idle")
        # a buy confirmed at 50,000 EUR/BTC before the new bounds, whose cash is not yet sent
        h.journal.open_buy("t1", "addr", EUR, Quote(EUR, Decimal(50000), Decimal(5)), Fiat(500, EUR))
        h.journal.escrow_decided("validator", "1", Fiat(2000, EUR), "stack", "t1")
        h.journal.record_credit(NoteCredited(device="validator", value=Fiat(2000, EUR), code="1"))
        h.journal.close_cash("t1")
        await h.kiosk._settle("t1")
        await h.kiosk._settle("t1")                             # the background retry
        assert h.cas.sent() == [] and h.journal.sends_for("t1") == []
        assert h.journal.transaction("t1")["status"] == "parked"
        assert sum("outside the signed range" in i["summary"] for i in h.journal.reconciliation_items()) == 1
        assert sum("outside the signed range" in a for a in h.kiosk.service_status()["alerts"]) == 1


async def test_a_customer_who_leaves_without_confirming_is_priced_at_the_fresh_rate_not_a_stale_one(tmp_path):
    """Mutation caught: sending a walk-away purchase at a quote older than the age limit."""
    h = Harness(tmp_path)
    now = [1000.0]
    h.kiosk.pricing.clock = lambda: now[0]
    h.kiosk.config = dataclasses.replace(h.config, timeouts=Timeouts(cash=1.0, recheck=30))
    async with h:
        await h.start_buy()
        await h.insert(2000)
        h.set_rate("40000")
        now[0] += 61                                          # the quote on screen is stale...
        await h.kiosk._refresh_quote()                        # ...and the market has a fresh one
        await h.wait_for(lambda: len(h.cas.sent()) == 1, timeout=10)
        assert h.cas.sent()[0]["sats"] == 47_500              # 19.00 EUR at 40,000, not at 50,000
        assert h.journal.report()["transactions"][0]["quote"]["rate"] == "40000"
