"""The Pairing page in headless Chromium against the real simulated kiosk: a technician
taps "Scan a pairing code", shows operator B's code to the scanner, and the page shows
B's server and pin in use with no restart asked for."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from atm import texts
from simulators.cas.harness import SimulatedOperator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIMULATOR_PIN = "135790"  # config/simulate.toml's technician PIN


async def test_a_technician_pairs_from_the_pairing_page_and_the_new_server_is_in_use(
        browser_page, simulated_kiosk, tmp_path):
    page = browser_page
    screen = page.locator("#screen")
    async with SimulatedOperator(tmp_path / "operator-b", kiosk_id=simulated_kiosk.config.kiosk_id,
                                 pair_kiosk=False) as op_b:
        await page.goto(simulated_kiosk.url)
        await expect(screen).to_have_attribute("data-screen", "idle", timeout=20_000)
        assert (await simulated_kiosk.world.run("service_switch", {"on": True}))["ok"] is True
        await expect(screen).to_have_attribute("data-screen", "maintenance_login")
        for key in SIMULATOR_PIN:
            await page.locator(f'#screen [data-key="{key}"]').click()
        await page.locator('#screen [data-action="service_login"]').click()
        await expect(screen).to_have_attribute("data-screen", "maintenance")

        await page.locator('#screen .tabs [data-page="pairing"]').click()
        await page.locator('#screen [data-do="pair_scan"]').click()
        await expect(page.locator('[data-field="pairing_waiting"]')).to_have_text(
            texts.text("en", "service.pairing_waiting"))
        assert (await simulated_kiosk.world.run("present_qr", {"text": op_b.pairing_code}))["ok"]

        await expect(page.locator('[data-field="pairing_in_use"]')).to_have_text(
            texts.text("en", "service.pairing_restart", url=op_b.cas.url), timeout=30_000)
        await expect(page.locator('[data-field="pairing_url"]')).to_have_text(op_b.cas.url)
        await expect(page.locator('[data-field="pairing_pin"]')).to_have_text(op_b.cas.pin)
        assert simulated_kiosk.kiosk.cas.in_use()["cas_url"] == op_b.cas.url
        assert op_b.pairing_code not in await page.content()          # the one-time token stays off the page
