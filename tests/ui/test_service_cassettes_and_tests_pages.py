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
         "near_empty": 3, "status": "ok"}], "reject_bin": 1, "mismatches": []},
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
    refill = page.locator('#screen [data-do="refill_cassette"]')
    await refill.click()
    await expect(refill).to_have_text(texts.text("en", "screen.tap_again"))
    assert fake_kiosk.actions == []              # one tap sends nothing
    await refill.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {
        "action": "service_action", "do": "refill_cassette", "cassette": "2", "count": "250"}
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
