"""The service menu in headless Chromium against the real kiosk on simulators:
a technician turns the service switch, types the PIN on the pad, reads the
status page the kiosk fills, and acts on it."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from atm import texts

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIMULATOR_PIN = "135790"  # config/simulate.toml's technician PIN


async def _log_in(page, pin: str) -> None:
    for key in pin:
        await page.locator(f'#screen [data-key="{key}"]').click()
    await page.locator('#screen [data-action="service_login"]').click()


async def test_a_technician_logs_in_reads_the_status_and_disables_the_kiosk(browser_page, simulated_kiosk):
    page = browser_page
    screen = page.locator("#screen")
    await page.goto(simulated_kiosk.url)
    await expect(screen).to_have_attribute("data-screen", "idle", timeout=20_000)

    assert (await simulated_kiosk.world.run("service_switch", {"on": True}))["ok"] is True
    await expect(screen).to_have_attribute("data-screen", "maintenance_login")

    await _log_in(page, "999999")
    await expect(page.locator("#toast")).to_have_text(texts.text("en", "service.wrong_pin", left=4))
    await expect(screen).to_have_attribute("data-screen", "maintenance_login")

    await _log_in(page, SIMULATOR_PIN)
    await expect(screen).to_have_attribute("data-screen", "maintenance")
    status = simulated_kiosk.kiosk.service_status()
    for device in status["devices"]:
        row = page.locator(f'[data-device="{device["name"]}"]')
        await expect(row.locator('[data-field="state"]')).to_have_text(device["state"])
    await expect(page.locator('[data-field="kiosk"]')).to_contain_text(simulated_kiosk.config.kiosk_id)
    await expect(page.locator('[data-field="journal_open"]')).to_have_text(
        texts.text("en", "service.open_transactions", count=0))

    await page.locator('#screen .tabs [data-page="alerts"]').click()
    await expect(page.locator('#screen [data-kind="wrong_pin"]')).to_contain_text(texts.text("en", "service.times", count=1))

    await page.locator('#screen .tabs [data-page="activation"]').click()
    deactivate = page.locator('#screen [data-do="deactivate"]')
    await deactivate.click()
    await deactivate.click()                                   # a second tap confirms
    await expect(page.locator('[data-field="kiosk"]')).to_contain_text(texts.text("en", "service.inactive"))

    await page.locator('#screen [data-do="exit"]').click()
    await expect(screen).to_have_attribute("data-screen", "out_of_service")
    await expect(page.locator("#screen button")).to_have_count(0)
