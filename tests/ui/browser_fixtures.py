"""Headless Debian Chromium under Playwright's async API, and a UiServer on a
free loopback port, as pytest fixtures. Shared by the UI tests and the
end-to-end tests against the real kiosk: put this folder on sys.path and
`from browser_fixtures import chromium, browser_page, serve_ui`."""

from __future__ import annotations

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
    uncaught JavaScript error."""
    context = await chromium.new_context(viewport=PORTRAIT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    await context.close()
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"
