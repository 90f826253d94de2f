"""The sell and the redeem at kiosk level: the real LCDM driver on the LCDM wire simulator
over TCP, a CAS whose payment the kiosk "proves" as atm.cas.interface describes."""

from __future__ import annotations

import json
import re

import pytest

from hal import Fiat
from tests.atm.sell_world import SellKiosk

pytestmark = pytest.mark.asyncio


async def test_a_proven_payment_pays_exactly_the_chosen_cash(tmp_path):
    async with SellKiosk(tmp_path) as k:
        assert k.data["sell_enabled"] is True
        tx = await k.sell(8000)
        assert k.screen == "sell_pay"
        assert k.data["uri"].startswith("bitcoin:" + k.cas.invoices[tx].address + "?amount=")
        assert k.data["seconds_left"] > 0
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert k.journal.dispensed(tx) == Fiat(8000, "EUR")
        assert sum(c.denomination * c.dispensed for c in k.sim.cassettes) == 8000
        assert k.journal.transaction(tx)["status"] == "completed"
        assert k.journal.owed(tx).minor == 0
        assert k.data["redeem_code"] is None
        books = k.journal.cassette_books()
        assert sum(u.dispensed for u in books.units) == k.exited_notes()


async def test_only_amounts_the_cassettes_can_pay_are_offered(tmp_path):
    async with SellKiosk(tmp_path, cassettes=[(5000, 2)]) as k:
        assert (await k.act("start_sell"))["ok"]
        await k.wait_for(lambda: k.screen == "sell_amount")
        assert [a["minor"] for a in k.data["amounts"]] == [5000, 10000]
        answer = await k.act("choose_amount", minor=7000)
        assert not answer["ok"] and "cannot be paid" in answer["error"]
        assert k.journal.transactions() == []


async def test_an_address_the_client_refuses_shows_selling_unavailable_and_alerts(tmp_path):
    async with SellKiosk(tmp_path) as k:
        k.cas.refuse_address = True
        tx = await k.sell(2000)
        assert k.screen == "sell_receipt"
        assert "not available" in k.data["message"]
        assert k.journal.transaction(tx)["status"] == "canceled"
        assert any(f["data"].find("sell_refused") >= 0 for f in k.journal.facts("alert"))
        assert k.exited_notes() == 0
        assert k.printer.printed == [], "no receipt for a sale that never showed an address"


async def test_hostile_payment_evidence_dispenses_nothing_and_alerts(tmp_path):
    async with SellKiosk(tmp_path) as k:
        k.cas.hostile = "wrong_address"
        tx = await k.sell(2000)
        await k.wait_for(lambda: k.cas.payment_calls >= 3)
        assert k.screen == "sell_pay"
        assert k.exited_notes() == 0 and k.journal.dispenses_for(tx) == []
        assert any("payment_refused" in f["data"] for f in k.journal.facts("alert"))


async def test_an_underpayment_pays_no_cash_and_says_the_policy(tmp_path):
    async with SellKiosk(tmp_path) as k:
        tx = await k.sell(2000)
        k.cas.pay(tx, sats=k.cas.invoices[tx].sats - 1)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert "less than the amount asked" in k.data["message"]
        assert "holds the bitcoin" in k.data["message"]
        assert k.exited_notes() == 0


async def test_an_empty_cassette_mid_payout_pays_the_rest_from_the_others(tmp_path):
    async with SellKiosk(tmp_path, cassettes=[(1000, 30), (2000, 30), (5000, 20)]) as k:
        k.sim.set_count(2, 1)              # the books say 20 notes of 50; the cassette holds 1
        tx = await k.sell(10000)            # 2 x 50 by the fewest notes
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert k.journal.dispensed(tx) == Fiat(10000, "EUR")
        assert sum(c.denomination * c.dispensed for c in k.sim.cassettes) == 10000
        assert len(k.journal.dispenses_for(tx)) == 2
        assert k.journal.transaction(tx)["status"] == "completed"


async def test_a_partial_payout_the_cassettes_cannot_finish_gives_a_redeem_code(tmp_path):
    async with SellKiosk(tmp_path, cassettes=[(5000, 20)]) as k:
        k.sim.set_count(0, 1)
        tx = await k.sell(10000)
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert k.journal.dispensed(tx) == Fiat(5000, "EUR")
        assert k.journal.owed(tx) == Fiat(5000, "EUR")
        assert k.data["redeem_code"].startswith("ATMREDEEM:1:kiosk-1:" + tx)
        assert k.printer.printed, "the redeem receipt is printed"


async def test_unconfirmed_at_expiry_is_redeemed_later_exactly_once_even_scanned_twice(tmp_path):
    async with SellKiosk(tmp_path) as k:
        tx = await k.sell(4000)
        await k.act("cancel")              # the customer leaves the payment screen: a code, not nothing
        await k.wait_for(lambda: k.screen == "sell_receipt")
        code = k.data["redeem_code"]
        assert code and k.exited_notes() == 0
        await k.act("done")
        await k.wait_for(lambda: k.screen == "idle")

        # not yet proven: nothing is paid
        assert (await k.act("start_redeem"))["ok"]
        await k.wait_for(lambda: k.screen == "redeem_scan")
        k.scanner.present(code)
        await k.wait_for(lambda: k.screen == "redeem_receipt")
        assert "not confirmed" in (k.data["message"] or "") or "waiting" in (k.data["message"] or "")
        assert k.exited_notes() == 0
        await k.act("done")
        await k.wait_for(lambda: k.screen == "idle")

        k.cas.pay(tx, confirmations=1)
        assert (await k.act("start_redeem"))["ok"]
        await k.wait_for(lambda: k.screen == "redeem_scan")
        k.scanner.present(code)
        k.scanner.present(code)            # the same code twice at the same moment
        await k.wait_for(lambda: k.screen == "redeem_receipt")
        assert k.data["message"] is None, k.data
        assert sum(c.denomination * c.dispensed for c in k.sim.cassettes) == 4000
        assert k.journal.redeem_code(tx)["state"] == "redeemed"
        assert k.journal.transaction(tx)["status"] == "completed"
        await k.act("done")
        await k.wait_for(lambda: k.screen == "idle")

        assert (await k.act("start_redeem"))["ok"]
        await k.wait_for(lambda: k.screen == "redeem_scan")
        k.scanner.present(code)
        await k.wait_for(lambda: k.screen == "redeem_receipt")
        assert "already been paid" in k.data["message"]
        assert sum(c.denomination * c.dispensed for c in k.sim.cassettes) == 4000


async def test_every_dispense_command_finds_its_intent_already_durable(tmp_path):
    """Write-ahead, checked at the moment it matters: when the kiosk calls the dispenser, a
    second connection (another process could be reading) already sees the intent with the
    same request id and plan. Catches the mutation: the intent journaled after the command
    (atm/flows/cash_out.py), which the crash tests can only catch when the kill lands in
    the microseconds between the two."""
    import sqlite3
    async with SellKiosk(tmp_path, cassettes=[(1000, 30), (2000, 30), (5000, 20)]) as k:
        k.sim.set_count(2, 1)                       # forces a second dispense for the rest
        seen: list[tuple[str, bool]] = []
        real = k.dispenser.dispense

        def checked(request_id, plan):
            db = sqlite3.connect(f"file:{tmp_path / 'journal.sqlite'}?mode=ro", uri=True)
            row = db.execute("SELECT plan FROM dispense_intents WHERE request_id=?", (request_id,)).fetchone()
            db.close()
            seen.append((request_id, row is not None and json.loads(row[0]) == dict(plan)))
            return real(request_id, plan)

        k.dispenser.dispense = checked
        tx = await k.sell(10000)
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert len(seen) == 2 and all(ok for _, ok in seen), seen
        assert k.journal.dispensed(tx) == Fiat(10000, "EUR")


async def test_a_lost_dispense_answer_on_the_4000_is_booked_from_last_status_and_never_resent(tmp_path):
    async with SellKiosk(tmp_path) as k:
        k.sim.lose_answer_once("dispense")
        tx = await k.sell(8000)
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt", timeout=30)
        assert k.sim.dispense_commands == 1
        assert k.journal.dispensed(tx) == Fiat(8000, "EUR") == Fiat(
            sum(c.denomination * c.dispensed for c in k.sim.cassettes), "EUR")
        assert k.journal.transaction(tx)["status"] == "completed"


async def test_a_lost_dispense_answer_on_the_2000_is_parked_for_the_operator_and_never_resent(tmp_path):
    async with SellKiosk(tmp_path, model="lcdm2000") as k:
        k.sim.lose_answer_once("dispense")
        tx = await k.sell(7000)
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt", timeout=60)
        assert k.sim.dispense_commands == 1, "no second dispense command"
        assert k.journal.transaction(tx)["status"] == "parked"
        assert any("cannot tell" in r["summary"] for r in k.journal.reconciliation_items())
        assert any('"alert": "dispense_unknown"' in f["data"] for f in k.journal.facts("alert"))
        assert k.journal.owed(tx).minor == 0, "what may have left is never paid again on the kiosk's own"
        assert "could not confirm every note" in k.data["message"]


async def test_the_service_status_shows_the_books_and_the_sale_goes_to_the_cas_outbox(tmp_path):
    async with SellKiosk(tmp_path) as k:
        tx = await k.sell(8000)
        k.cas.pay(tx)
        await k.wait_for(lambda: k.screen == "sell_receipt")
        units = k.kiosk.service_status()["cash"]["cassettes"]["units"]
        assert [(u["cassette"], u["count"]) for u in units] == [("1", 29), ("2", 29), ("3", 19)]
        await k.wait_for(lambda: k.cas._db.execute("SELECT record FROM uploads WHERE id=?", (tx,)).fetchone())
        import json as _json
        record = _json.loads(k.cas._db.execute("SELECT record FROM uploads WHERE id=?", (tx,)).fetchone()[0])
        assert (record["type"], record["status"], record["fiat_minor"]) == ("sell", "completed", 8000)


async def test_the_payment_screen_waits_in_the_customers_language_and_a_code_shows_what_it_is_worth(tmp_path):
    """The status line on the payment screen comes from the language files, never from the
    CAS link's detail text (which is English); a code issued for a payment not yet proven
    shows the sale's cash, as its printed receipt does, not "0.00 still owed"."""
    async with SellKiosk(tmp_path, language="de") as k:
        tx = await k.sell(4000)
        await k.wait_for(lambda: k.cas.payment_calls >= 1 and k.data.get("status"))
        assert k.data["status"] == "Wir warten auf Ihre Zahlung…"
        assert k.data["cash"] == "40,00 EUR" and re.fullmatch(r"0,[0-9]{8} BTC", k.data["btc"]), k.data
        await k.act("cancel")
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert k.data["redeem_code"] and k.data["owed"] == "40,00 EUR"       # in German number format
        assert k.exited_notes() == 0 and k.journal.owed(tx).minor == 0     # nothing proven, nothing paid yet
