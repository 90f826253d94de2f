"""The Cassettes and Tests pages of the service menu in headless Chromium: the books
table from the kiosk's data, the keypad entry with two taps to confirm, and the actions
the page sends back (exactly the fields atm/service_menu.py reads)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from atm import texts

pytestmark = [pytest.mark.browser]

DATA = {
    "kiosk_id": "kiosk-1", "state": "maintenance_menu", "active": True, "timeout_s": 60, "language": "en",
    "cassettes": {"books": [
        {"cassette": "1", "denomination": "10.00 EUR", "initial": 30, "dispensed": 4, "rejected": 1, "count": 25,
         "near_empty": 3, "status": "ok"},
        {"cassette": "2", "denomination": "20.00 EUR", "initial": 30, "dispensed": 0, "rejected": 0, "count": 30,
         "near_empty": 3, "status": "ok"}], "reject_bin": 1, "mismatches": [],
        "denomination_mismatches": [],
        "refill": {"currency": "EUR", "minor_digits": 2,
                   "cassettes": [{"cassette": "1", "configured": "10.00 EUR", "configured_minor": 1000,
                                  "denomination_minor": 1000, "near_empty": 3},
                                 {"cassette": "2", "configured": "20.00 EUR", "configured_minor": 2000,
                                  "denomination_minor": 2000, "near_empty": 3}],
                   "denominations": [{"minor": 1000, "text": "10.00 EUR"}, {"minor": 2000, "text": "20.00 EUR"},
                                     {"minor": 5000, "text": "50.00 EUR"}]},
        "unknown_dispenses": []},
    "tests": {"sensors": {}, "last_scan": None, "note_test": {"active": False, "read": "20.00 EUR"},
              "test_dispense": {"request_id": "svc-test-1", "cassette": "1", "done": True,
                                "completion": "success", "exited": {}, "rejected": {"1": 1}}},
}


async def _show(page, kiosk, data) -> None:
    kiosk.show("maintenance", data)
    await expect(page.locator("#screen")).to_have_attribute("data-seq", str(kiosk.seq))


async def test_the_cassettes_page_shows_the_books_and_sends_a_refill_after_two_taps(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    await _show(page, fake_kiosk, DATA)
    await page.locator('#screen .tabs [data-page="cassettes"]').click()
    row = page.locator('#screen [data-field="cassette_books"] tr[data-cassette="1"] td')
    await expect(row).to_have_text(["1", "10.00 EUR", "30", "4", "1", "25", "3", "ok"])
    await expect(page.locator('#screen [data-field="reject_bin"]')).to_have_text("1")
    await page.locator('#screen [data-field="cassette_choice"] [data-cassette="2"]').click()
    for key in "250":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await expect(page.locator('#screen [data-field="refill_summary"]')).to_have_text(texts.text(
        "en", "service.refill_summary").format(id="2", count="250", value="20.00 EUR", low="3"))
    await expect(page.locator('#screen [data-field="refill_mismatch"]')).to_be_hidden()
    refill = page.locator('#screen [data-do="refill_cassette"]')
    await refill.click()
    await expect(refill).to_have_text(texts.text("en", "screen.tap_again"))
    assert fake_kiosk.actions == []              # one tap sends nothing
    await refill.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "refill_cassette", "cassette": "2", "count": "250",
        "denomination": "2000", "near_empty": "3"}
    # the booking went through: its form starts afresh, and the reject bin's count is typed anew
    await expect(page.locator('#screen [data-field="refill_summary"]')).to_have_text("\u00a0")
    for key in "250":
        await page.locator(f'#screen [data-key="{key}"]').click()
    reject = page.locator('#screen [data-do="count_reject_bin"]')
    await reject.click()
    await reject.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "count_reject_bin", "counted": "250"}


async def test_the_tests_page_shows_the_note_read_and_the_test_dispense_answer_and_sends_both_tests(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    await _show(page, fake_kiosk, DATA)
    await page.locator('#screen .tabs [data-page="tests"]').click()
    await expect(page.locator('#screen [data-field="note_read"]')).to_have_text("20.00 EUR")
    await expect(page.locator('#screen [data-field="test_dispense_rejected"]')).to_have_text("1: 1")
    await expect(page.locator('#screen [data-field="test_dispense_exited"]')).to_have_text("0")
    await page.locator('#screen [data-do="note_test"]').click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {"action": "service_action", "do": "note_test"}
    dispense = page.locator('#screen [data-do="test_dispense"]').first
    await dispense.click()
    await dispense.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "test_dispense", "cassette": "1"}


async def test_a_refill_with_another_note_value_and_low_level_shows_the_mismatch_before_it_is_booked(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    data = {**DATA, "cassettes": {**DATA["cassettes"], "denomination_mismatches": [
        {"cassette": "1", "books": "50.00 EUR", "configured": "10.00 EUR"}]}}
    await _show(page, fake_kiosk, data)
    await page.locator('#screen .tabs [data-page="cassettes"]').click()
    await expect(page.locator('#screen [data-field="cassette_mismatches"] li[data-cassette="1"]')).to_have_text(
        texts.text("en", "service.denomination_mismatch").format(id="1", books="50.00 EUR", configured="10.00 EUR"))
    for key in "40":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await page.locator('#screen [data-field="denomination_choice"] [data-denomination="5000"]').click()
    await page.locator('#screen [data-entry="near_empty"]').click()
    await page.locator('#screen [data-key="clear"]').click()
    for key in "15":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await expect(page.locator('#screen [data-entry="near_empty"]')).to_have_attribute("aria-pressed", "true")
    warning = page.locator('#screen [data-field="refill_mismatch"]')
    await expect(warning).to_have_text(texts.text("en", "service.refill_mismatch").format(
        id="1", configured="10.00 EUR", value="50.00 EUR"))
    # a typed value is read back as money: 123456 minor units are 1,234.56 EUR
    await page.locator('#screen [data-entry="denomination"]').click()
    await page.locator('#screen [data-key="clear"]').click()
    for key in "123456":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await expect(page.locator('#screen [data-field="refill_summary"]')).to_contain_text("1,234.56 EUR")
    await page.locator('#screen [data-field="denomination_choice"] [data-denomination="5000"]').click()
    refill = page.locator('#screen [data-do="refill_cassette"]')
    await refill.click()
    await refill.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "refill_cassette", "cassette": "1", "count": "40",
        "denomination": "5000", "near_empty": "15"}


async def test_an_unknown_dispense_is_listed_and_its_count_is_sent_only_when_every_cassette_is_counted(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    unknown = {"request_id": "r1", "tx_id": "sell-1", "test": False, "value": "60.00 EUR",
               "at": "2026-11-30 03:00:00 UTC",
               "cassettes": ["1", "3"], "asked": [{"cassette": "1", "notes": 1, "value": "10.00 EUR"},
                                                 {"cassette": "3", "notes": 1, "value": "50.00 EUR"}],
               "known_exited": [], "uncertain": []}
    data = {**DATA, "cassettes": {**DATA["cassettes"], "unknown_dispenses": [unknown]}}
    await _show(page, fake_kiosk, data)
    await page.locator('#screen .tabs [data-page="cassettes"]').click()
    block = page.locator('#screen [data-request="r1"]')
    await expect(block.locator('[data-field="unknown_tx"]')).to_have_text("sell-1")
    await expect(block.locator('tr[data-cassette="3"] td').nth(1)).to_have_text("1 \u00d7 50.00 EUR")
    book = block.locator('[data-do="resolve_dispense"]')
    pad = page.locator('#screen [data-field="unknown_dispenses"] + .pinpad')
    await block.locator('tr[data-cassette="3"] [data-entry="exited"]').click()
    await pad.locator('[data-key="1"]').click()
    await expect(book).to_be_disabled()              # cassette 1 not counted yet
    await block.locator('tr[data-cassette="1"] [data-entry="exited"]').click()
    await pad.locator('[data-key="0"]').click()
    await block.locator('tr[data-cassette="1"] [data-entry="rejected"]').click()
    await pad.locator('[data-key="1"]').click()
    await expect(block.locator('[data-field="resolve_summary"]')).to_have_text(texts.text(
        "en", "service.resolve_summary").format(request="r1", paid="1: 0, 3: 1", rejected="1: 1, 3: 0"))
    await book.click()
    assert fake_kiosk.actions == []
    await book.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "resolve_dispense", "request_id": "r1",
        "exited": {"1": "0", "3": "1"}, "rejected": {"1": "1"}}


async def test_what_a_technician_typed_survives_the_kiosk_redrawing_the_screen_and_a_booking_clears_it(
        browser_page, serve_ui, fake_kiosk):
    """The kiosk redraws the menu on every event (an alert, a sensor, a printer status).
    Mutation caught: the page's entries kept in the page function's locals, as before,
    lose the technician's typing at each redraw."""
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    await _show(page, fake_kiosk, DATA)
    await page.locator('#screen .tabs [data-page="cassettes"]').click()
    await page.locator('#screen [data-field="cassette_choice"] [data-cassette="2"]').click()
    for key in "25":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await _show(page, fake_kiosk, DATA)                       # an event redraws the menu
    await expect(page.locator('#screen [data-field="cassette_choice"] [data-cassette="2"]')).to_have_attribute(
        "aria-pressed", "true")
    await page.locator('#screen [data-key="0"]').click()
    await expect(page.locator('#screen [data-field="refill_summary"]')).to_have_text(texts.text(
        "en", "service.refill_summary").format(id="2", count="250", value="20.00 EUR", low="3"))
    await page.locator('#screen .tabs [data-page="cash"]').click()
    for key in "1234":
        await page.locator(f'#screen [data-key="{key}"]').click()
    await _show(page, fake_kiosk, DATA)
    await expect(page.locator('#screen [data-field="counted"]')).to_have_text("1234")
    collect = page.locator('#screen [data-do="collect_cash"]')
    await collect.click()
    await collect.click()
    action = await fake_kiosk.next_action()
    assert action["do"] == "collect_cash" and action["counted_minor"] == "1234"
    await _show(page, fake_kiosk, DATA)                       # the kiosk's answer to the booking
    await expect(page.locator('#screen [data-field="counted"]')).to_have_text("\u00a0")
    await page.locator('#screen .tabs [data-page="cassettes"]').click()
    await expect(page.locator('#screen [data-field="refill_summary"]')).to_have_text(texts.text(
        "en", "service.refill_summary").format(id="2", count="250", value="20.00 EUR", low="3"))
