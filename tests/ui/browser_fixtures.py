"""Headless Debian Chromium under Playwright's async API, a UiServer on a free
loopback port, and a whole kiosk on simulated hardware, as pytest fixtures.
Shared by the UI tests and the end-to-end tests: put this folder on sys.path
and `from browser_fixtures import chromium, browser_page, simulated_kiosk`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atm.ui.server import UiServer

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# How long an expect() may wait for the page to catch up: generous, because CI
# machines are shared and slow; a passing check returns as soon as it holds.
EXPECT_TIMEOUT_MS = 15_000
PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1920, "height": 1080}


@pytest.fixture
async def serve_ui():
    """`url = await serve_ui(kiosk, panel=None)`: a UiServer on a free loopback
    port, stopped when the test ends."""
    servers: list[UiServer] = []

    async def start(kiosk, panel=None) -> str:
        server = UiServer(kiosk, panel, host="127.0.0.1", port=0)
        servers.append(server)
        return await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def chromium():
    """Debian's Chromium under Playwright; never a downloaded browser."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(f"{CHROMIUM_PATH} not found: the browser tests need Debian's chromium "
                    "package (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser_page(chromium):
    """A fresh portrait (1080x1920) page. Fails the test if the page threw an
    uncaught JavaScript error or broke its Content-Security-Policy."""
    from playwright.async_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    context = await chromium.new_context(viewport=PORTRAIT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    yield page
    await context.close()
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"


@pytest.fixture
async def simulated_kiosk(tmp_path):
    """The real kiosk (`atm run --simulate`: config/simulate.toml, wire-level
    simulators, the UI server with its /sim panel) on a free port, its journal in
    tmp_path. `.url` is the customer screen, `.journal` the books, `.world` the
    simulators' control surface."""
    from atm import config as config_mod
    from atm.app import REPO_CONFIG, RunningKiosk, with_devices
    from simulators.world import SimulatedWorld

    config = config_mod.load(REPO_CONFIG / "simulate.toml")
    config = dataclasses.replace(config, state_dir=tmp_path, ui_port=0)
    world = SimulatedWorld(currency=config.currency, network=config.network)
    try:
        config = with_devices(config, world.start())
        running = RunningKiosk(config, simulate=True, world=world)
        await running.start()
        try:
            yield running
        finally:
            await running.stop()
    finally:
        world.stop()
