"""A sale and a redeem in headless Chromium against the real kiosk on simulated hardware:
the LCDM-4000 wire simulator pays out, the stand-in CAS proves payments from its
simulated chain, the customer taps through the screen, and the redeem code is shown to
the camera from the /sim panel. The journal and the dispenser must agree with the screen."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from playwright.async_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from browser_fixtures import browser_page, chromium  # noqa: E402,F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def selling_kiosk(tmp_path):
    """`atm run --simulate --cas standin` as the CLI builds it: the LCDM-4000 simulator,
    the cassettes booked from it, and the stand-in CAS with sell rules and a chain."""
    from atm import config as config_mod
    from atm.app import REPO_CONFIG, RunningKiosk, with_devices
    from atm.cas.standin import StandinCas, standin_settings
    from atm.cli import _book_simulated_cassettes
    from simulators.cas.harness import DEFAULT_SELL
    from simulators.world import SimulatedWorld

    config = config_mod.load(REPO_CONFIG / "simulate.toml")
    config = dataclasses.replace(config, state_dir=tmp_path, ui_port=0)
    world = SimulatedWorld(currency=config.currency, network=config.network, dispenser="lcdm4000")
    cas = StandinCas(tmp_path / "standin-cas.sqlite", currency=config.currency, sell=DEFAULT_SELL,
                     settings=standin_settings(config.min_buy, config.max_buy, config.fee_percent,
                                               config.technician_pin_hash))
    try:
        config = with_devices(config, world.start())
        running = RunningKiosk(config, simulate=True, world=world, cas=cas)
        _book_simulated_cassettes(running.journal, world)
        running.kiosk.payment_poll_s = 0.2
        await running.start()
        try:
            yield running, world, cas
        finally:
            await running.stop()
    finally:
        world.stop()


def delivered(world) -> int:
    return sum(c.denomination * c.dispensed for c in world.sims["dispenser"].cassettes)


async def test_a_customer_sells_bitcoin_and_later_redeems_a_code_by_tapping_through_the_screen(
        browser_page, selling_kiosk):
    running, world, cas = selling_kiosk
    page = browser_page
    screen = page.locator("#screen")
    field = lambda name: page.locator(f'#screen [data-field="{name}"]')  # noqa: E731

    await page.goto(running.url)
    await expect(screen).to_have_attribute("data-screen", "idle", timeout=20_000)
    await page.locator('[data-action="start_sell"]').click()
    await expect(screen).to_have_attribute("data-screen", "sell_amount")
    first = page.locator('#screen [data-action="choose_amount"]').first
    minor = int(await first.get_attribute("data-minor"))
    await first.click()
    await expect(screen).to_have_attribute("data-screen", "sell_pay", timeout=20_000)
    await expect(field("qr")).to_be_visible()
    uri = await field("uri").inner_text()
    tx = running.kiosk.tx_id
    sats = running.journal.deposit(tx)["sats_due"]
    assert uri.startswith("bitcoin:" + running.journal.deposit(tx)["address"] + "?amount=")

    cas.pay_invoice(tx, sats, confirmations=2)          # the customer's wallet pays
    await expect(screen).to_have_attribute("data-screen", "sell_receipt", timeout=40_000)
    await expect(field("redeem_code")).to_have_count(0)
    assert running.journal.dispensed(tx).minor == minor == delivered(world)
    assert running.journal.summary(tx)["status"] == "completed"
    await page.locator('[data-action="done"]').click()
    await expect(screen).to_have_attribute("data-screen", "idle")

    # A second sale: the customer leaves the payment screen before the payment confirms.
    await page.locator('[data-action="start_sell"]').click()
    await expect(screen).to_have_attribute("data-screen", "sell_amount")
    await page.locator('#screen [data-action="choose_amount"]').first.click()
    await expect(screen).to_have_attribute("data-screen", "sell_pay", timeout=20_000)
    tx2 = running.kiosk.tx_id
    await page.locator('[data-action="cancel"]').click()
    await expect(screen).to_have_attribute("data-screen", "sell_receipt")
    await expect(field("redeem_qr")).to_be_visible()
    code = await field("redeem_code").inner_text()
    assert code.startswith("ATMREDEEM:") and tx2 in code
    await page.locator('[data-action="done"]').click()
    await expect(screen).to_have_attribute("data-screen", "idle")
    cas.pay_invoice(tx2, running.journal.deposit(tx2)["sats_due"], confirmations=2)

    before = delivered(world)
    panel = await page.context.new_page()
    await panel.goto(running.url + "sim")
    await page.locator('[data-action="start_redeem"]').click()
    await expect(screen).to_have_attribute("data-screen", "redeem_scan")
    qr_form = panel.locator('form[data-command="present_qr"]')
    await qr_form.locator('input[name="text"]').fill(code)
    for _ in range(20):  # a camera needs a few frames to read the code
        await qr_form.locator('[data-run="present_qr"]').click()
        if await screen.get_attribute("data-screen") != "redeem_scan":
            break
        await page.wait_for_timeout(500)
    await expect(screen).to_have_attribute("data-screen", "redeem_receipt", timeout=40_000)
    await expect(field("message")).to_have_count(0)
    owed = running.journal.deposit(tx2)["cash_minor"]
    assert delivered(world) - before == owed == running.journal.dispensed(tx2).minor
    assert running.journal.redeem_code(tx2)["state"] == "redeemed"
