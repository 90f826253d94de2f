"""A whole buy in headless Chromium against the real kiosk on simulated hardware:
the customer taps through the screen while the simulator control panel (/sim),
in a second tab, shows the wallet QR code and inserts the notes; the journal
must then hold exactly what the screen promised."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from playwright.async_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from browser_fixtures import browser_page, chromium, simulated_kiosk  # noqa: E402,F401  (fixtures)

from simulators.world import SAMPLE_ADDRESSES  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def _screen_becomes(page, name: str, timeout_ms: int) -> bool:
    try:
        await expect(page.locator("#screen")).to_have_attribute("data-screen", name, timeout=timeout_ms)
        return True
    except AssertionError:
        return False


async def _run_on_panel(panel, button, attempts: int = 50) -> None:
    """Click a panel button until the simulated device takes the command (a
    validator still stacking the last note refuses the next one, as a real one
    would)."""
    result = panel.locator("#result")
    for _ in range(attempts):
        await button.click()
        await expect(result).not_to_have_attribute("data-ok", "")
        if await result.get_attribute("data-ok") == "true":
            return
    raise AssertionError(f"the simulator never took it: {await result.inner_text()}")


async def test_a_customer_buys_bitcoin_for_cash_by_tapping_through_the_screen(browser_page, simulated_kiosk):
    page = browser_page
    screen = page.locator("#screen")
    field = lambda name: page.locator(f'#screen [data-field="{name}"]')  # noqa: E731

    await page.goto(simulated_kiosk.url)
    await expect(screen).to_have_attribute("data-screen", "idle", timeout=20_000)
    panel = await page.context.new_page()
    await panel.goto(simulated_kiosk.url + "sim")

    await page.locator('[data-action="start_buy"]').click()
    await expect(screen).to_have_attribute("data-screen", "scan_address")

    address = SAMPLE_ADDRESSES[simulated_kiosk.config.network]
    qr_form = panel.locator('form[data-command="present_qr"]')
    await qr_form.locator('input[name="text"]').fill(address)
    for _ in range(20):  # a camera needs a few frames to read the code
        await qr_form.locator('[data-run="present_qr"]').click()
        if await _screen_becomes(page, "insert_cash", 1_000):
            break
    await expect(screen).to_have_attribute("data-screen", "insert_cash")
    await expect(field("address")).to_have_text(address)
    await expect(page.locator('[data-action="cancel"]')).to_be_visible()

    notes = panel.locator('form[data-command="insert_note"]')
    await _run_on_panel(panel, notes.locator('[data-value="2000"]'))
    await expect(field("inserted")).to_have_text("20.00 EUR", timeout=20_000)
    # Cash is in: the customer can only finish now, never walk away without coins.
    await expect(page.locator('[data-action="cancel"]')).to_have_count(0)
    await _run_on_panel(panel, notes.locator('[data-value="5000"]'))
    await expect(field("inserted")).to_have_text("70.00 EUR", timeout=20_000)

    finish = page.locator('[data-action="finish_cash"]')
    await expect(finish).to_be_enabled(timeout=20_000)
    await finish.click()
    await expect(screen).to_have_attribute("data-screen", "confirm")
    await expect(field("cash")).to_have_text("70.00 EUR")
    promised_sats = int(re.sub(r"\D", "", await field("sats").inner_text()))   # "43970 satoshis"
    assert promised_sats > 0

    await page.locator('[data-action="confirm"]').click()
    await expect(screen).to_have_attribute("data-screen", "receipt", timeout=40_000)
    await expect(field("txid")).to_have_text(re.compile(r"^[0-9a-f]{64}$"), timeout=20_000)
    shown_txid = await field("txid").inner_text()
    await expect(field("cash")).to_have_text("70.00 EUR")

    journal = simulated_kiosk.journal
    transactions = journal.transactions()
    assert len(transactions) == 1
    summary = journal.summary(transactions[0]["id"])
    assert (summary["type"], summary["fiat_minor"], summary["currency"], summary["address"]) == (
        "buy", 7000, "EUR", address)
    assert summary["sats"] == promised_sats
    assert summary["txids"] == [shown_txid]

    await page.locator('[data-action="done"]').click()
    await expect(screen).to_have_attribute("data-screen", "idle")


async def test_a_customer_who_cancels_at_the_scan_leaves_nothing_open_and_can_start_again(
        browser_page, simulated_kiosk):
    page = browser_page
    await page.goto(simulated_kiosk.url)
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "idle", timeout=20_000)
    await page.locator('[data-action="start_buy"]').click()
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "scan_address")
    await page.locator('[data-action="cancel"]').click()
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "idle")
    assert simulated_kiosk.journal.transactions(("open", "sending")) == []
    await page.locator('[data-action="start_buy"]').click()
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "scan_address")
