"""The scan test's camera picture on the real kiosk in simulate mode (the camera
simulator behind the real CameraScanner): GET /service/camera.jpg serves a fresh JPEG
only while the service menu is open and its scan test runs, and the Tests page in
headless Chromium shows it live until the technician stops the test."""

from __future__ import annotations

import asyncio

import aiohttp
import cv2
import numpy as np
import pytest
from playwright.async_api import expect

from atm import texts

SIMULATOR_PIN = "135790"  # config/simulate.toml's technician PIN
ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
DEADLINE_S = 20.0


async def _until(predicate, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"waited {DEADLINE_S} s for {what}")
        await asyncio.sleep(0.02)


async def _open_menu(running) -> None:
    kiosk = running.kiosk
    await _until(lambda: kiosk.state == "idle", "the idle screen")
    assert (await running.world.run("service_switch", {"on": True}))["ok"] is True
    await _until(lambda: kiosk.state == "maintenance_login", "the PIN pad")
    assert (await kiosk.handle_action({"action": "service_login", "pin": SIMULATOR_PIN}))["ok"]
    await _until(lambda: kiosk.state == "maintenance_menu", "the service menu")


async def _service(running, **fields) -> None:
    reply = await running.kiosk.handle_action({"action": "service_action", **fields})
    assert reply["ok"], reply


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str, bytes]:
    async with http.get(url) as response:
        return response.status, response.content_type, response.headers.get("Cache-Control", ""), await response.read()


async def _first_picture(http: aiohttp.ClientSession, url: str) -> tuple[str, str, bytes]:
    """The camera needs a frame or two after the scan test starts: 503 until then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        status, kind, cache, body = await _get(http, url)
        if status == 200:
            return kind, cache, body
        assert status == 503, (status, body)
        assert loop.time() < deadline, "no camera picture came"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_the_camera_picture_is_served_only_while_the_menus_scan_test_runs(simulated_kiosk):
    kiosk = simulated_kiosk.kiosk
    url = simulated_kiosk.url + "service/camera.jpg"
    async with aiohttp.ClientSession() as http:
        await _until(lambda: kiosk.state == "idle", "the idle screen")
        status, _, cache, body = await _get(http, url)
        assert (status, cache) == (404, "no-store"), body      # the customer's screen gets no frame
        assert b"service menu is not open" in body
        # nor while a customer shows a wallet to the running camera
        assert (await kiosk.handle_action({"action": "start_buy"}))["ok"]
        await _until(lambda: kiosk.state == "buy_scan" and kiosk.devices.scanner.scanning, "the scan screen")
        status, _, cache, _ = await _get(http, url)
        assert (status, cache) == (404, "no-store")
        assert (await kiosk.handle_action({"action": "cancel"}))["ok"]

        await _open_menu(simulated_kiosk)
        status, _, cache, body = await _get(http, url)
        assert (status, cache) == (409, "no-store") and b"scan test is not running" in body

        await _service(simulated_kiosk, do="scan_test")
        assert kiosk.service_status()["tests"]["scan_test"] == {"running": True, "preview": True}
        kind, cache, body = await _first_picture(http, url)
        assert (kind, cache) == ("image/jpeg", "no-store")
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] == 480 and image.std() > 1

        # a code read in the scan test is shown, never acted on
        assert (await simulated_kiosk.world.run("present_qr", {"text": ADDRESS}))["ok"] is True
        await _until(lambda: kiosk.service_status()["tests"]["last_scan"] == ADDRESS, "the code on the Tests page")
        assert kiosk.state == "maintenance_menu" and simulated_kiosk.journal.transactions() == []

        await _service(simulated_kiosk, do="scan_test", stop=True)
        status, _, cache, _ = await _get(http, url)
        assert (status, cache) == (409, "no-store")
        assert not kiosk.devices.scanner.scanning

        await _service(simulated_kiosk, do="scan_test")
        await _first_picture(http, url)
        await _service(simulated_kiosk, do="exit")              # leaving the menu ends the scan test
        await _until(lambda: not kiosk.state.startswith("maintenance"), "the menu to close")
        assert not kiosk.devices.scanner.scanning
        status, _, _, _ = await _get(http, url)
        assert status == 404


@pytest.mark.browser
@pytest.mark.slow
async def test_the_tests_page_shows_the_live_camera_picture_until_the_scan_test_stops(browser_page, simulated_kiosk):
    page = browser_page
    await page.goto(simulated_kiosk.url)
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "idle", timeout=20_000)
    await _open_menu(simulated_kiosk)
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "maintenance")
    await page.locator('#screen .tabs [data-page="tests"]').click()
    await expect(page.locator('#screen img[data-field="scan_preview"]')).to_have_count(0)

    await page.locator('#screen [data-do="scan_test"]').click()
    picture = page.locator('#screen img[data-field="scan_preview"]')
    await expect(picture).to_be_in_viewport()           # scrolled to, below the buttons in portrait
    loaded = ('() => { const i = document.querySelector(\'#screen img[data-field="scan_preview"]\');'
              ' return i !== null && i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0; }')
    assert (await (await page.wait_for_function(loaded)).json_value()) == 480
    first = await picture.get_attribute("src")
    assert first.startswith("/service/camera.jpg?n=")
    await page.wait_for_function(                             # it is live: the picture is fetched again
        '(first) => { const i = document.querySelector(\'#screen img[data-field="scan_preview"]\');'
        ' return i !== null && i.getAttribute("src") !== first && i.naturalWidth > 0; }', arg=first)
    await expect(page.locator('#screen [data-field="scan_preview_state"]')).to_have_text(
        texts.text("en", "service.scan_preview"))

    assert (await simulated_kiosk.world.run("present_qr", {"text": ADDRESS}))["ok"] is True
    await expect(page.locator('#screen [data-field="last_scan"]')).to_have_text(ADDRESS)

    stop = page.locator('#screen [data-do="scan_test"]')
    await expect(stop).to_have_text(texts.text("en", "service.scan_test_stop"))
    await stop.click()
    await expect(picture).to_have_count(0)
    await expect(stop).to_have_text(texts.text("en", "service.test_scan"))
    assert not simulated_kiosk.kiosk.devices.scanner.scanning


@pytest.mark.browser
async def test_a_scanner_without_a_camera_gets_words_instead_of_a_picture_and_the_stop_button_stops_it(
        browser_page, serve_ui, fake_kiosk):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    data = {"kiosk_id": "kiosk-1", "state": "maintenance_menu", "active": True, "timeout_s": 60, "language": "de",
            "tests": {"sensors": {}, "last_scan": None, "scan_test": {"running": True, "preview": False}}}
    fake_kiosk.show("maintenance", data)
    await expect(page.locator("#screen")).to_have_attribute("data-seq", str(fake_kiosk.seq))
    await page.locator('#screen .tabs [data-page="tests"]').click()
    await expect(page.locator('#screen [data-field="scan_no_preview"]')).to_have_text(
        texts.text("de", "service.scan_no_preview"))
    await expect(page.locator("#screen img")).to_have_count(0)
    stop = page.locator('#screen [data-do="scan_test"]')
    await expect(stop).to_have_text(texts.text("de", "service.scan_test_stop"))
    await stop.click()
    action = await fake_kiosk.next_action()
    assert {k: v for k, v in action.items() if k != "id"} == {"action": "service_action", "do": "scan_test",
                                                               "stop": True}
