"""The customer screen in headless Chromium against a fake kiosk: every screen
draws its data, every button sends the action the kiosk expects, and hostile
or unknown data never breaks the page."""

from __future__ import annotations

import pytest
from browser_fixtures import LANDSCAPE, PORTRAIT  # tests/ui is on sys.path (conftest.py)
from playwright.async_api import expect

from atm import texts
from atm.ui.server import UiServer

pytestmark = pytest.mark.browser

ADDRESS = "bcrt1q94c3vs4hy6cygqtz0j5lhtpj7hy9xra3cpcc0y"


def en(key, **values):
    return texts.text("en", key, **values)


IDLE_DATA = {"buy_enabled": True, "sell_enabled": False, "price_per_btc": "45,000.00 EUR/BTC", "fee_percent": "5",
             "fixed_fee": "0.00 EUR", "min": "5.00 EUR", "max": "1,000.00 EUR", "notes": ["5.00 EUR", "20.00 EUR"],
             "receipt_available": True, "notice": None, "operator": {"name": "Op", "contact": "+1 555"}}
INSERT_CASH = {
    "address": ADDRESS, "inserted": "20.00 EUR", "inserted_minor": 2000, "sats": 46284, "sats_shown": "46,284", "btc": "0.00046284 BTC",
    "min": "5.00 EUR", "max": "1,000.00 EUR", "room": "980.00 EUR", "message": None, "can_finish": True,
    "receipt_available": True, "timeout_s": 120, "fee": "1.00 EUR", "fee_percent": "5", "fixed_fee": "0.00 EUR",
    "notes_in": ["20.00 EUR"],
}
CONFIRM = {"address": ADDRESS, "cash": "20.00 EUR", "fee": "1.00 EUR", "btc": "0.00043970 BTC", "sats": 43970,
           "sats_shown": "43,970",
           "rate": "43,210.00 EUR/BTC", "timeout_s": 60, "fee_percent": "5", "fixed_fee": "0.00 EUR"}
RECEIPT = {"txid": "f" * 64, "cash": "20.00 EUR", "btc": "0.00043970 BTC", "address": ADDRESS, "printed": True,
           "message": None, "tx_id": "buy-1", "date": "2026-11-30 01:00", "timeout_s": 30}
MAINTENANCE = {
    "devices": [
        {"name": "bill_validator", "kind": "validator", "state": "online", "detail": "", "driver": "id003",
         "model": "iVIZION", "firmware": "1.2", "serial": "SN-9", "last_error": None},
        {"name": "printer", "kind": "printer", "state": "hardwareError", "detail": "paper out", "driver": "escpos",
         "model": "", "firmware": "", "serial": "", "last_error": "01:00 printer: paper out"},
    ],
    "kiosk_id": "atm-7", "active": False,
    "cash": {"status": "ok", "paper": "low", "notes": [{"value": "5.00 EUR", "count": 2}], "count": 2,
             "total": "10.00 EUR", "collections": []},
    "journal": {"open": 1, "reconciliation": [{"id": "tx-42", "summary": "20.00 EUR credited, send not confirmed"}]},
    "cas": {"pin": "ok", "bundle_version": 7, "last_contact": "2026-11-30 01:00:00 UTC", "queued_uploads": 3},
    "alert_groups": [{"severity": "critical", "kind": "paper", "count": 3, "last": "01:00", "text": "printer: paper out",
                      "recent": ["printer: paper out"]}],
    "alerts_total": 3,
    "activation": {"active": False, "deactivated_by": "cas", "needs_signature": True, "review": {"version": 7}},
    "tests": {"sensors": {"door": False}, "last_scan": None},
    "logs": ["a log line"],
}


async def _show(page, serve_ui, kiosk, screen, data):
    kiosk.show(screen, data)
    await page.goto(await serve_ui(kiosk))
    await expect(page.locator("#screen")).to_have_attribute("data-screen", screen)
    await expect(page.locator("#connection")).to_be_hidden()


def _field(page, name):
    return page.locator(f'#screen [data-field="{name}"]')


def _button(page, action):
    return page.locator(f'#screen [data-action="{action}"]')


# -- each screen draws its data -----------------------------------------------

async def test_idle_shows_price_fees_limits_notes_and_buy_only_when_sell_is_off(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "idle", IDLE_DATA)
    await expect(_field(browser_page, "price_per_btc")).to_have_text("45,000.00 EUR/BTC")
    await expect(_field(browser_page, "fee_terms")).to_have_text(en("screen.fee_terms", percent="5"))
    await expect(_field(browser_page, "limits")).to_have_text(en("screen.limits", min="5.00 EUR", max="1,000.00 EUR"))
    await expect(_field(browser_page, "notes")).to_have_text(en("screen.notes_accepted", notes="5.00 EUR, 20.00 EUR"))
    await expect(_field(browser_page, "operator")).to_contain_text("+1 555")
    await expect(_button(browser_page, "start_buy")).to_be_enabled()
    await expect(_button(browser_page, "start_sell")).to_have_count(0)


async def test_idle_offers_sell_when_enabled_and_greys_out_buy_when_disabled(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "idle",
                dict(IDLE_DATA, buy_enabled=False, sell_enabled=True, notice=texts.message("message.buy_paused_offline"),
                     receipt_available=False))
    await expect(_button(browser_page, "start_buy")).to_be_disabled()
    await expect(_button(browser_page, "start_sell")).to_be_enabled()
    await expect(_field(browser_page, "notice")).to_have_text(en("message.buy_paused_offline"))
    await expect(_field(browser_page, "receipt_unavailable")).to_have_text(en("screen.receipt_unavailable"))


async def test_scan_address_asks_for_the_wallet_qr_and_shows_the_error(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "scan_address",
                {"error": texts.message("message.scan_wrong_network", network="regtest"), "network": "regtest"})
    await expect(browser_page.locator("#screen h1")).to_have_text(en("screen.scan_title"))
    await expect(_field(browser_page, "network")).to_contain_text("regtest")
    error = _field(browser_page, "error")
    await expect(error).to_have_text(en("message.scan_wrong_network", network="regtest"))
    color = await error.evaluate("node => getComputedStyle(node).color")
    assert color == "rgb(255, 107, 107)"  # the --error red
    await expect(_button(browser_page, "cancel")).to_be_enabled()


async def test_insert_cash_shows_amounts_the_fee_and_only_finish_once_cash_is_in(browser_page, serve_ui, fake_kiosk):
    said = texts.message("message.note_returned_over_limit", max="1,000.00 EUR")
    await _show(browser_page, serve_ui, fake_kiosk, "insert_cash", dict(INSERT_CASH, message=said))
    for field, expected in [("inserted", "20.00 EUR"), ("btc", "0.00046284 BTC"), ("address", ADDRESS),
                            ("room", "980.00 EUR"), ("notes_in", "20.00 EUR"),
                            ("fee_named", en("screen.you_get", fee="1.00 EUR")),
                            ("message", en("message.note_returned_over_limit", max="1,000.00 EUR"))]:
        await expect(_field(browser_page, field)).to_have_text(expected)
    await expect(_field(browser_page, "sats")).to_have_text(en("screen.sats", sats="46,284"))
    await expect(_field(browser_page, "receipt_available")).to_have_text(en("screen.receipt_will_print"))
    await expect(_field(browser_page, "countdown")).to_contain_text("s left")
    await expect(_button(browser_page, "finish_cash")).to_be_enabled()
    await expect(_button(browser_page, "cancel")).to_have_count(0)


async def test_insert_cash_below_the_minimum_keeps_finish_disabled_and_says_why(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "insert_cash",
                dict(INSERT_CASH, inserted="2.00 EUR", inserted_minor=200, can_finish=False, receipt_available=False))
    await expect(_button(browser_page, "finish_cash")).to_be_disabled()
    await expect(_button(browser_page, "cancel")).to_have_count(0)
    await expect(_field(browser_page, "below_min")).to_have_text(en("screen.below_min", min="5.00 EUR"))
    await expect(_field(browser_page, "receipt_available")).to_have_text(en("screen.receipt_unavailable"))


async def test_insert_cash_with_nothing_inserted_offers_cancel(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "insert_cash",
                dict(INSERT_CASH, inserted="0.00 EUR", inserted_minor=0, sats=0, sats_shown="0", btc="0.00000000 BTC",
                     can_finish=False))
    await expect(_button(browser_page, "cancel")).to_have_text(en("screen.cancel"))
    await expect(_button(browser_page, "finish_cash")).to_be_disabled()


async def test_confirm_shows_the_whole_deal(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "confirm", CONFIRM)
    for field, expected in [("address", ADDRESS), ("cash", "20.00 EUR"), ("fee", "1.00 EUR"),
                            ("btc", "0.00043970 BTC"), ("rate", "43,210.00 EUR/BTC")]:
        await expect(_field(browser_page, field)).to_have_text(expected)
    await expect(_field(browser_page, "sats")).to_have_text(en("screen.sats", sats="43,970"))
    # the fee's label names the rule once: "Fee (5 % of the amount)", not "Fee (Fee: ...)"
    await expect(browser_page.locator('#screen dd[data-field="fee"] >> xpath=preceding-sibling::dt[1]')).to_have_text(
        en("screen.fee_named", terms=en("screen.fee_rule", percent="5")))
    await expect(_button(browser_page, "confirm")).to_be_enabled()


async def test_sending_shows_a_spinner_and_no_buttons(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "sending", {"address": ADDRESS, "btc": ""})
    await expect(browser_page.locator("#screen .spinner")).to_be_visible()
    await expect(browser_page.locator("#screen h1")).to_have_text(en("screen.sending_title"))
    await expect(browser_page.locator("#screen button")).to_have_count(0)


async def test_receipt_shows_the_txid_and_whether_paper_came_out(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "receipt",
                dict(RECEIPT, message=texts.message("message.send_postponed")))
    await expect(_field(browser_page, "txid")).to_have_text("f" * 64)
    await expect(_field(browser_page, "printed")).to_have_text(en("screen.take_receipt"))
    await expect(_field(browser_page, "message")).to_have_text(en("message.send_postponed"))
    await expect(_field(browser_page, "countdown")).to_be_visible()
    await expect(_button(browser_page, "done")).to_be_enabled()


async def test_receipt_without_txid_says_the_send_is_pending(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "receipt", dict(RECEIPT, txid=None, printed=False))
    await expect(_field(browser_page, "txid")).to_contain_text("pending")
    await expect(_field(browser_page, "printed")).to_have_text(en("screen.no_receipt"))


async def test_out_of_service_shows_the_operators_contact_and_no_buttons(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "out_of_service",
                {"kind": "fault", "operator": {"name": "Op", "contact": "+1 555"}})
    await expect(_field(browser_page, "contact")).to_have_text(en("screen.out_contact", name="Op", contact="+1 555"))
    await expect(browser_page.locator("button")).to_have_count(0)


async def test_booting_and_unknown_screens_show_a_neutral_wait(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "booting", {})
    await expect(browser_page.locator("#screen h1")).to_have_text(en("screen.starting"))
    fake_kiosk.show("sell_choose_amount", {"amounts": [1, 2]})
    await expect(browser_page.locator("#screen")).to_have_attribute("data-screen", "sell_choose_amount")
    await expect(browser_page.locator("#screen h1")).to_have_text(en("screen.please_wait"))
    await expect(browser_page.locator("#screen button")).to_have_count(0)


async def test_data_of_the_wrong_shape_falls_back_to_please_wait(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance", {"devices": [None, 7], "journal": "corrupt"})
    await expect(browser_page.locator("#screen h1")).to_have_text(en("screen.please_wait"))


async def test_scanned_text_that_looks_like_html_is_shown_as_text(browser_page, serve_ui, fake_kiosk):
    hostile = '<img src=x onerror="document.title=\'owned\'">bc1q'
    await _show(browser_page, serve_ui, fake_kiosk, "confirm", dict(CONFIRM, address=hostile))
    await expect(_field(browser_page, "address")).to_have_text(hostile)
    await expect(browser_page.locator("#screen img")).to_have_count(0)
    assert await browser_page.title() == "Bitcoin ATM"


async def test_new_screens_replace_the_old_one_live(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "insert_cash", dict(INSERT_CASH, inserted="5.00 EUR"))
    fake_kiosk.show("insert_cash", dict(INSERT_CASH, inserted="25.00 EUR", inserted_minor=2500))
    await expect(_field(browser_page, "inserted")).to_have_text("25.00 EUR")
    assert await browser_page.locator("#screen").get_attribute("data-seq") == str(fake_kiosk.seq)


async def test_the_countdown_restarts_for_a_new_note_but_not_for_a_resent_screen(browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.clock.install()
    await _show(page, serve_ui, fake_kiosk, "insert_cash", dict(INSERT_CASH, timeout_s=120))
    await expect(_field(page, "countdown")).to_have_text(en("screen.countdown", seconds=120))
    await page.clock.run_for(30_000)
    await expect(_field(page, "countdown")).to_have_text(en("screen.countdown", seconds=90))
    # Same screen again (say, a rate refresh): the kiosk's timer runs on.
    fake_kiosk.show("insert_cash", dict(INSERT_CASH, timeout_s=120, btc="0.00046000 BTC"))
    await expect(_field(page, "btc")).to_have_text("0.00046000 BTC")
    await expect(_field(page, "countdown")).to_have_text(en("screen.countdown", seconds=90))
    # A credited note gives the customer a fresh timeout.
    fake_kiosk.show("insert_cash", dict(INSERT_CASH, timeout_s=120, inserted="25.00 EUR", inserted_minor=2500))
    await expect(_field(page, "inserted")).to_have_text("25.00 EUR")
    await expect(_field(page, "countdown")).to_have_text(en("screen.countdown", seconds=120))
    await page.clock.run_for(200_000)
    await expect(_field(page, "countdown")).to_have_text(en("screen.countdown", seconds=0))


# -- buttons send the right actions -------------------------------------------

@pytest.mark.parametrize("screen, data, action", [
    ("idle", dict(IDLE_DATA, sell_enabled=True), "start_buy"),
    ("idle", dict(IDLE_DATA, sell_enabled=True), "start_sell"),
    ("scan_address", {"error": None, "network": "test"}, "cancel"),
    ("insert_cash", INSERT_CASH, "finish_cash"),
    ("insert_cash", dict(INSERT_CASH, inserted_minor=0, can_finish=False), "cancel"),
    ("confirm", CONFIRM, "confirm"),
    ("receipt", RECEIPT, "done"),
    ("maintenance_login", {"error": None}, "cancel"),
])
async def test_each_button_sends_its_action(browser_page, serve_ui, fake_kiosk, screen, data, action):
    await _show(browser_page, serve_ui, fake_kiosk, screen, data)
    await _button(browser_page, action).click()
    sent = await fake_kiosk.next_action()
    assert set(sent) == {"action", "id"}
    assert sent["action"] == action
    assert isinstance(sent["id"], int)


async def test_each_action_carries_a_new_id(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "scan_address", {"error": None, "network": "main"})
    await _button(browser_page, "cancel").click()
    first = await fake_kiosk.next_action()
    await expect(_button(browser_page, "cancel")).to_be_enabled()  # re-enabled by the reply
    await _button(browser_page, "cancel").click()
    second = await fake_kiosk.next_action()
    assert second["id"] > first["id"]


async def test_a_refused_action_shows_the_kiosks_message_not_its_technical_error(browser_page, serve_ui, fake_kiosk):
    fake_kiosk.reply = {"ok": False, "error": "confirm refused: quote 61 s old",
                        "message": texts.message("message.price_updated")}
    await _show(browser_page, serve_ui, fake_kiosk, "confirm", CONFIRM)
    await _button(browser_page, "confirm").click()
    await expect(browser_page.locator("#toast")).to_have_text(en("message.price_updated"))
    await expect(browser_page.locator("#toast")).to_have_class("error")
    fake_kiosk.reply = {"ok": False, "error": "something technical"}
    await _button(browser_page, "confirm").click()
    await expect(browser_page.locator("#toast")).to_have_text(en("message.did_not_work"))


async def test_a_refusal_message_goes_away_with_the_screen_it_was_about(browser_page, serve_ui, fake_kiosk):
    fake_kiosk.reply = {"ok": False, "error": "wrong PIN", "message": texts.message("service.wrong_pin", left=4)}
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance_login", {"error": None})
    await browser_page.locator('[data-key="1"]').click()
    await _button(browser_page, "service_login").click()
    await expect(browser_page.locator("#toast")).to_have_text(en("service.wrong_pin", left=4))
    fake_kiosk.show("idle", IDLE_DATA)
    await expect(browser_page.locator("#toast")).to_be_hidden()


async def test_the_pin_pad_hides_digits_and_sends_the_pin(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance_login",
                {"error": texts.message("service.wrong_pin", left=2)})
    await expect(_field(browser_page, "error")).to_have_text(en("service.wrong_pin", left=2))
    await expect(_button(browser_page, "service_login")).to_be_disabled()
    for key in ["1", "2", "9", "back", "3", "4"]:
        await browser_page.locator(f'[data-key="{key}"]').click()
    await expect(_field(browser_page, "pin")).to_have_text("••••")
    await _button(browser_page, "service_login").click()
    assert await fake_kiosk.next_action() == {"action": "service_login", "pin": "1234", "id": 1}


async def test_the_pin_can_be_typed_on_a_keyboard(browser_page, serve_ui, fake_kiosk):
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance_login", {"error": None})
    await browser_page.keyboard.type("5678")
    await browser_page.keyboard.press("Enter")
    sent = await fake_kiosk.next_action()
    assert (sent["action"], sent["pin"]) == ("service_login", "5678")


async def _tab(page, name):
    await page.locator(f'#screen .tabs [data-page="{name}"]').click()
    await expect(page.locator("#screen .page")).to_have_attribute("data-page", name)


async def test_the_service_menu_is_paged_and_shows_devices_alerts_cash_and_reconciliation(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await _show(page, serve_ui, fake_kiosk, "maintenance", MAINTENANCE)
    await expect(page.locator("#screen .tabs button")).to_have_count(8)
    printer = page.locator('[data-device="printer"]')
    await expect(printer).to_contain_text("paper out")
    await expect(printer.locator('[data-field="state"]')).to_have_text("hardwareError")
    await expect(printer.locator('[data-field="state"]')).to_have_class("state-hardwareError")
    await expect(page.locator('[data-device="bill_validator"]')).to_contain_text("SN-9")
    await expect(_field(page, "kiosk")).to_contain_text("atm-7")
    await expect(_field(page, "last_contact")).to_have_text("2026-11-30 01:00:00 UTC")
    await expect(_field(page, "queued_uploads")).to_have_text("3")
    await expect(_field(page, "journal_open")).to_have_text(en("service.open_transactions", count=1))
    await expect(_field(page, "reconciliation")).to_contain_text("send not confirmed")
    await _tab(page, "alerts")
    await expect(page.locator('#screen [data-kind="paper"]')).to_contain_text(en("service.times", count=3))
    await _tab(page, "cash")
    await expect(_field(page, "cash_total")).to_have_text("10.00 EUR")
    await _tab(page, "activation")
    await expect(_field(page, "needs_signature")).to_have_text(en("service.needs_signature"))
    await expect(page.locator('#screen [data-do="activate"]')).to_be_disabled()
    # the page a technician is on survives the screen being redrawn
    fake_kiosk.show("maintenance", MAINTENANCE)
    await expect(page.locator("#screen")).to_have_attribute("data-seq", str(fake_kiosk.seq))
    await expect(page.locator("#screen .page")).to_have_attribute("data-page", "activation")


@pytest.mark.parametrize("tab, what", [("status", "exit"), ("tests", "print_test"), ("tests", "test_lights"),
                                       ("logs", "print_logs")])
async def test_service_buttons_send_service_action(browser_page, serve_ui, fake_kiosk, tab, what):
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance", MAINTENANCE)
    await _tab(browser_page, tab)
    await browser_page.locator(f'#screen [data-do="{what}"]').click()
    sent = await fake_kiosk.next_action()
    assert (sent["action"], sent["do"]) == ("service_action", what)


async def test_an_unconfirmed_collection_falls_back_to_its_first_step(browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.clock.install()
    await _show(page, serve_ui, fake_kiosk, "maintenance", MAINTENANCE)
    await _tab(page, "cash")
    await page.locator('#screen [data-key="4"]').click()
    collect = page.locator('#screen [data-do="collect_cash"]')
    await collect.click()
    await expect(collect).to_have_text(en("screen.tap_again"))
    await page.clock.run_for(6_000)
    await expect(collect).to_have_text(en("service.collect"))
    assert fake_kiosk.actions == []


async def test_a_collection_sends_the_counted_amount_after_a_second_tap(browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await _show(page, serve_ui, fake_kiosk, "maintenance", MAINTENANCE)
    await _tab(page, "cash")
    collect = page.locator('#screen [data-do="collect_cash"]')
    await expect(collect).to_be_disabled()                       # nothing counted yet
    for key in "1000":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await collect.click()
    assert fake_kiosk.actions == []
    await collect.click()
    sent = await fake_kiosk.next_action()
    assert (sent["action"], sent["do"], sent["counted_minor"]) == ("service_action", "collect_cash", "1000")


# -- layout and connection ------------------------------------------------------

@pytest.mark.parametrize("viewport", [PORTRAIT, LANDSCAPE], ids=["portrait", "landscape"])
@pytest.mark.parametrize("screen, data", [
    ("idle", dict(IDLE_DATA, sell_enabled=True)),
    ("scan_address", {"error": texts.message("message.scan_not_address"), "network": "main", "timeout_s": 60}),
    ("insert_cash", dict(INSERT_CASH, message=texts.message("message.note_suspect"))),
    ("insert_cash", dict(INSERT_CASH, inserted_minor=0, can_finish=False)),
    ("confirm", CONFIRM),
    ("receipt", dict(RECEIPT, message=texts.message("message.send_postponed"))),
    ("maintenance_login", {"error": texts.message("service.wrong_pin", left=3)}),
])
async def test_buttons_are_large_and_inside_the_screen(browser_page, serve_ui, fake_kiosk, viewport, screen, data):
    await browser_page.set_viewport_size(viewport)
    await _show(browser_page, serve_ui, fake_kiosk, screen, data)
    buttons = browser_page.locator("#screen button")
    assert await buttons.count() >= 1
    # Visible without scrolling: a customer must not have to hunt for "Finish".
    for index in range(await buttons.count()):
        box = await buttons.nth(index).bounding_box()
        assert box["height"] >= 60 and box["width"] >= 120, (screen, box)
        assert 0 <= box["x"] and box["x"] + box["width"] <= viewport["width"], (screen, box)
        assert 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], (screen, box)
    overflow = await browser_page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False


async def test_the_page_reconnects_after_the_server_comes_back(browser_page, fake_kiosk):
    server = UiServer(fake_kiosk)
    url = await server.start()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    replacement = None
    try:
        await browser_page.goto(url)
        await expect(browser_page.locator("#screen")).to_have_attribute("data-screen", "idle")
        await server.stop()
        await expect(browser_page.locator("#connection")).to_be_visible()
        await expect(browser_page.locator("#connection")).to_contain_text("Reconnecting")
        fake_kiosk.show("out_of_service", {"kind": "fault", "operator": {"name": "Op", "contact": "+1 555"}})
        replacement = UiServer(fake_kiosk, port=port)
        await replacement.start()
        await expect(_field(browser_page, "contact")).to_contain_text("+1 555", timeout=15000)
        await expect(browser_page.locator("#connection")).to_be_hidden()
    finally:
        await server.stop()
        if replacement is not None:
            await replacement.stop()


async def test_uploads_kept_for_a_previous_cas_show_on_the_status_and_pairing_pages(browser_page, serve_ui, fake_kiosk):
    """After a pairing with another operator, what was still queued for the old CAS is kept
    (atm/cas/link.py); a technician sees it on the page they open first, not only on Pairing."""
    kept = {"cas_url": "https://old-cas.example:8443", "queued_uploads": 3, "kept_in": "/var/lib/atm/previous/x"}
    data = dict(MAINTENANCE, pairing={"previous": [kept]})
    await _show(browser_page, serve_ui, fake_kiosk, "maintenance", data)
    said = en("service.pairing_previous", count="3", url=kept["cas_url"], path=kept["kept_in"])
    await expect(_field(browser_page, "pairing_previous")).to_have_text(said)      # Status, the first page
    await _tab(browser_page, "pairing")
    await expect(_field(browser_page, "pairing_previous")).to_have_text(said)
