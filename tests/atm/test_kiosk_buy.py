"""The buy flow on stand-in devices: what the customer sees, what the journal
holds, what the CAS is asked to send."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from atm.config import Timeouts
from hal import DeviceState, DeviceStatusChanged, Fiat, NoteCredited
from kiosk_harness import PIN, REGTEST_ADDRESS, Harness


async def test_a_customer_buys_bitcoin_with_two_notes_and_gets_a_receipt(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        await h.start_buy()
        await h.insert(2000)
        await h.insert(5000)
        assert h.kiosk.snapshot()["data"]["inserted_minor"] == 7000
        assert (await h.act("finish_cash"))["ok"]
        await h.wait_for(lambda: h.screen == "confirm")
        assert (await h.act("confirm"))["ok"]
        await h.wait_for(lambda: h.screen == "receipt" and h.printer.printed)
        sent = h.cas.sent()
        assert len(sent) == 1 and sent[0]["address"] == REGTEST_ADDRESS
        # 70.00 EUR less 5 % fee = 66.50 EUR at 50,000 EUR/BTC = 0.00133 BTC
        assert sent[0]["sats"] == 133_000
        tx = h.journal.transactions()[0]
        assert tx["status"] == "completed" and h.journal.credited(tx["id"]) == Fiat(7000, "EUR")
        assert sent[0]["txid"] in h.printer.printed[0] or sent[0]["txid"][:32] in h.printer.printed[0]
        assert (await h.act("done"))["ok"]
        await h.wait_for(lambda: h.screen == "idle")


async def test_a_note_that_would_pass_the_limit_is_returned_not_stacked(tmp_path):
    async with Harness(tmp_path, max_buy=Fiat(6000, "EUR")) as h:
        await h.start_buy()
        await h.insert(5000)
        # 10.00 would make 60.00 fit exactly; 20.00 would not: the validator is not even offered it
        assert Fiat(2000, "EUR") not in h.validator._accept
        assert Fiat(1000, "EUR") in h.validator._accept
        h.validator._accept.add(Fiat(2000, "EUR"))       # a device that ignores its enable list
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: "limit" in h.said("message"))
        assert h.journal.credited(h.kiosk.tx_id) == Fiat(5000, "EUR")
        assert h.validator.cashbox == [5000]
        decisions = [f["data"] for f in h.journal.facts("escrow_decided")]
        assert '"decision": "return"' in decisions[-1]


@pytest.mark.parametrize("code, reason_word", [
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "network"),           # mainnet on a regtest kiosk
    ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt08q", "checksum"),       # one character off
    ("hello world", ""),
    (f"bitcoin:{REGTEST_ADDRESS}?req-somethingnew=1", "not support"),
])
async def test_a_bad_code_gets_a_clear_error_and_no_cash_is_accepted(tmp_path, code, reason_word):
    async with Harness(tmp_path) as h:
        assert (await h.act("start_buy"))["ok"]
        await h.wait_for(lambda: h.screen == "scan_address")
        assert h.scanner.present(code)
        await h.wait_for(lambda: h.kiosk.snapshot()["data"].get("error"))
        error = h.said("error")              # the customer's words, from the language file
        assert reason_word.lower() in error.lower()
        assert h.screen == "scan_address"
        assert not h.validator._enabled and h.journal.transactions() == []


async def test_a_bip21_uri_is_accepted_as_the_address(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy(f"BITCOIN:{REGTEST_ADDRESS}?amount=0.001&label=Alice%20Wallet")
        assert h.kiosk.snapshot()["data"]["address"] == REGTEST_ADDRESS


async def test_cancel_before_any_cash_returns_to_idle_and_sends_nothing(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        assert (await h.act("cancel"))["ok"]
        await h.wait_for(lambda: h.screen == "idle")
        assert h.cas.sent() == [] and h.journal.transactions()[0]["status"] == "canceled"


async def test_cancel_after_cash_was_credited_still_sends_the_coins(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(1000)
        await h.act("cancel")                      # the kiosk will not keep the cash
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("cancel")
        await h.wait_for(lambda: h.screen == "receipt")
        assert [s["sats"] for s in h.cas.sent()] == [19_000]


async def test_a_customer_who_walks_away_after_inserting_cash_still_gets_the_coins(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.config = dataclasses.replace(h.config, timeouts=Timeouts(cash=0.3, recheck=30))
    async with h:
        await h.start_buy()
        await h.insert(2000)
        await h.wait_for(lambda: h.screen in ("sending", "receipt"), timeout=5)
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["sats"] == 38_000


async def test_a_timeout_with_no_cash_goes_back_to_idle(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.config = dataclasses.replace(h.config, timeouts=Timeouts(cash=0.2, scan=0.2, recheck=30))
    async with h:
        await h.start_buy()
        await h.wait_for(lambda: h.screen == "idle", timeout=5)
        assert h.cas.sent() == []


async def test_a_cas_outage_while_sending_loses_nothing_and_the_coins_go_out_once_it_is_back(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.retry_interval = 0.1
    async with h:
        await h.start_buy()
        await h.insert(2000)
        h.cas.available = False
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt")
        assert h.kiosk.snapshot()["data"]["pending"] is True
        assert h.cas.sent() == [] and len(h.journal.pending_sends()) == 1
        h.cas.available = True
        await h.wait_for(lambda: len(h.cas.sent()) == 1 and not h.journal.pending_sends())
        await asyncio.sleep(0.3)                   # further retries must not send again
        assert len(h.cas.sent()) == 1
        assert h.journal.transactions()[0]["status"] == "completed"


async def test_a_validator_jam_after_a_credit_finishes_the_purchase_then_goes_out_of_service(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(5000)
        h.validator.jam("stacker")
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        await h.wait_for(lambda: h.screen == "receipt")
        await h.act("done")
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "jam" in h.kiosk.out_of_service_reason()    # the technician reads it, not the customer
        h.validator.clear_jam()
        await h.wait_for(lambda: h.screen == "idle")


async def test_an_open_door_takes_the_kiosk_out_of_service_until_it_is_closed(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "door" in h.kiosk.out_of_service_reason()
        assert not (await h.act("start_buy"))["ok"]
        h.sensors.pin("door").drive_low()
        await h.wait_for(lambda: h.screen == "idle")


async def test_the_service_menu_needs_the_right_pin_and_shows_device_status(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        reply = await h.act("service_login", pin="000000")
        assert not reply["ok"] and reply["message"]["key"] == "service.wrong_pin"
        assert (await h.act("service_login", pin=PIN))["ok"]
        await h.wait_for(lambda: h.screen == "maintenance")
        data = h.kiosk.snapshot()["data"]
        assert {d["kind"] for d in data["devices"]} >= {"validator", "scanner", "printer"}
        assert any("wrong PIN" in a for a in data["alerts"])
        assert (await h.act("service_action", do="exit"))["ok"]
        await h.wait_for(lambda: h.screen == "idle")


async def test_cash_collection_prints_the_counts_since_the_last_collection(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(2000)
        await h.insert(2000)
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt")
        await h.act("done")
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        await h.act("service_login", pin=PIN)
        await h.wait_for(lambda: h.screen == "maintenance")
        assert (await h.act("service_action", do="collect_cash", counted_minor=4000))["ok"]
        await h.wait_for(lambda: len(h.printer.printed) == 2)
        assert "2" in h.printer.printed[-1] and "40.00" in h.printer.printed[-1]
        assert h.journal.cashbox_counts() == {}


async def test_deactivate_from_the_cas_is_obeyed_and_survives_a_restart(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        await h.kiosk.remote_command("deactivate")
        await h.wait_for(lambda: h.screen == "out_of_service")
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "deactivated" in h.kiosk.out_of_service_reason()


async def test_a_credit_with_no_escrow_decision_is_kept_and_raised_for_reconciliation(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        outcome = h.journal.record_credit(NoteCredited(device="validator", value=Fiat(1000, "EUR"), code="x"))
        assert outcome.kind == "orphan" and outcome.tx_id is None
        items = h.journal.reconciliation_items()
        assert len(items) == 1 and "belongs to no transaction" in items[0]["summary"]


async def test_garbage_from_the_ui_is_refused_and_the_kiosk_keeps_working(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        for message in ({}, {"action": 5}, {"action": "sell_everything"}, {"action": "confirm"},
                        {"action": "service_login", "pin": {"x": 1}}, "not a dict"):
            reply = await h.kiosk.handle_action(message)
            assert reply["ok"] is False and reply["error"]
        await h.start_buy()
        assert h.screen == "insert_cash"


async def test_paper_out_warns_the_customer_before_paying(tmp_path):
    async with Harness(tmp_path) as h:
        h.printer.paper("out")
        await h.kiosk._read_printer_status()
        await h.start_buy()
        assert h.kiosk.snapshot()["data"]["receipt_available"] is False


async def test_paper_out_takes_the_kiosk_out_of_service_when_configured(tmp_path):
    h = Harness(tmp_path)
    h.printer.paper("out")
    h.kiosk.config = dataclasses.replace(h.config, on_paper_out="out_of_service")
    async with h:
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "paper" in h.kiosk.out_of_service_reason()


async def test_a_device_going_offline_while_idle_takes_the_kiosk_out_of_service(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.kiosk._sink(DeviceStatusChanged(device="scanner", state=DeviceState.OFFLINE, detail="camera unplugged"))
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "camera unplugged" in h.kiosk.out_of_service_reason()


async def test_no_new_buy_starts_while_the_cas_is_unreachable_but_one_in_progress_finishes(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.retry_interval = 0.1
    async with h:
        await h.start_buy()
        await h.insert(1000)
        h.cas.available = False                        # the server goes away mid-buy
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt")
        await h.act("done")
        await h.wait_for(lambda: h.screen == "idle")
        reply = await h.act("start_buy")
        assert reply["ok"] is False and "server" in reply["error"]
        assert "server" in h.said("notice")
        h.cas.available = True
        await h.wait_for(lambda: len(h.cas.sent()) == 1)   # the postponed send goes out, once
        await h.wait_for(lambda: (h.kiosk._publish() or True) and h.kiosk.snapshot()["data"].get("notice") is None)
        assert (await h.act("start_buy"))["ok"]


async def test_paper_near_end_is_reported_to_the_technician_and_buying_goes_on(tmp_path):
    from hal import PaperState, PrinterStatusChanged
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.kiosk._sink(PrinterStatusChanged(device="printer", state=DeviceState.ONLINE, paper=PaperState.NEAR_END))
        await h.wait_for(lambda: any("paper near end" in a for a in h.kiosk.service_status()["alerts"]))
        assert h.screen == "idle" and (await h.act("start_buy"))["ok"]


async def test_a_stack_the_validator_refuses_does_not_leave_a_note_hanging_in_the_books(tmp_path):
    from hal.errors import DeviceError
    async with Harness(tmp_path) as h:
        await h.start_buy()
        real_stack = h.validator.stack

        def refusing_stack():
            raise DeviceError("validator: no note waiting for a decision in escrow")

        h.validator.stack = refusing_stack
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: "could not be taken" in h.said("message"))
        assert h.journal.notes_in_flight(h.kiosk.tx_id) == 0 and h.kiosk.nothing_in_flight()
        h.validator.stack = real_stack
        h.validator._escrow = None
        await h.insert(1000)
        assert (await h.act("finish_cash"))["ok"]
