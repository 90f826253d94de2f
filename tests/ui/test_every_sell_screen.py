"""Every customer screen of the sell and the redeem, as a real kiosk publishes them while it
is driven through a sale (the stand-in CAS with cash-out, the real LCDM driver on the LCDM
wire simulator), drawn in headless Chromium in English and German, portrait 1080x1920,
landscape 1920x1080 and 1024x768, with the checks of test_every_screen.py (contrast, touch
targets, every control on the screen, QR codes on a light ground, the main button away from
the corners, no untranslated key), each screen's heading from the walk's language file, and
no layout shift while the payment screen counts down. The kiosk's screens are replayed to
the pages unchanged. Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import EXPECT_TIMEOUT_MS, LANDSCAPE, PORTRAIT  # tests/ui is on sys.path (conftest.py)
from playwright.async_api import expect
from test_every_screen import ARTIFACTS, SMALL, _audit, _main_button_not_in_a_corner

from atm import texts
from tests.atm.sell_world import SellKiosk

pytestmark = pytest.mark.browser

VIEWPORTS = {"portrait": PORTRAIT, "landscape": LANDSCAPE, "1024x768": SMALL}


async def _a_phone_reads_the_code_from_the_screen(page, viewport: dict, where: str, field: str, text: str) -> None:
    """The payment QR and the redeem code's QR are large (at least 45 % of the screen's
    shorter side: a wallet reads them from arm's length) and, read back from a screenshot
    as a phone's camera would, say exactly what the kiosk meant."""
    import io

    import zxingcpp
    from PIL import Image
    box = await page.locator(f'#screen img[data-field="{field}"]').bounding_box()
    shorter = min(viewport["width"], viewport["height"])
    assert box["width"] >= 0.45 * shorter, f"{where}: {field} {box['width']:.0f} px on a {shorter} px side"
    shot = Image.open(io.BytesIO(await page.screenshot()))
    read = [r.text for r in zxingcpp.read_barcodes(shot)]
    assert read == [text], f"{where}: the screen's QR reads {read}"

# The heading each walked screen must show, from the language file of the walk's language.
HEADINGS = {
    "idle_with_cash_out": None,
    "sell_amount": "sell_screen.choose",
    "sell_wait": "sell_screen.getting_address",
    "sell_pay": "sell_screen.send_exactly",
    "sell_pay_later": "sell_screen.send_exactly",
    "sell_dispensing": "sell_screen.counting",
    "sell_receipt": "sell_screen.take_cash",
    "sell_receipt_with_code": "sell_screen.redeem_code",
    "redeem_scan": "sell_screen.scan_code",
    "redeem_wait_unconfirmed": "sell_screen.checking",
    "redeem_receipt_unconfirmed": "sell_screen.redeem",
    "redeem_wait": "sell_screen.checking",
    "redeem_dispensing": "sell_screen.counting",
    "redeem_receipt": "sell_screen.take_cash",
}


async def _walk_a_real_kiosk(tmp_path: Path, language: str) -> dict[str, dict[str, Any]]:
    """Drive a sell-capable kiosk configured for `language` through a paid sale, a sale left
    before paying (a redeem code), a redeem before the payment confirms and one after; every
    screen the kiosk publishes is recorded, so the brief ones (waiting, dispensing) are caught."""
    published: list[dict[str, Any]] = []
    shots: dict[str, dict[str, Any]] = {}

    async with SellKiosk(tmp_path, language=language) as k:
        queue = k.kiosk.subscribe()

        async def record() -> None:
            while True:
                published.append(copy.deepcopy(await queue.get()))

        recorder = asyncio.create_task(record())

        async def settle() -> None:
            while not queue.empty():        # the recorder has every screen published so far
                await asyncio.sleep(0.01)

        async def keep(name: str, screen: str, since: int = 0, **want: Any) -> None:
            """The last screen `screen` published after index `since` whose data has `want`."""
            await settle()
            for snap in reversed(published[since:]):
                if snap["screen"] == screen and all(snap["data"].get(f) == v for f, v in want.items()):
                    assert snap["data"]["language"] == language, snap
                    shots[name] = snap
                    return
            raise AssertionError(f"the kiosk never showed {screen} {want}: {[s['screen'] for s in published]}")

        try:
            await k.wait_for(lambda: k.screen == "idle" and k.data["sell_enabled"] and k.data["redeem_enabled"])
            shots["idle_with_cash_out"] = copy.deepcopy(k.kiosk.snapshot())

            # a sale paid in full: amount, address, payment screen counting down, dispensing, receipt
            mark = len(published)
            tx = await k.sell(4000)
            await keep("sell_amount", "sell_amount", mark)
            await keep("sell_wait", "sell_wait", mark)
            await k.wait_for(lambda: k.screen == "sell_pay" and k.data.get("qr"))
            await keep("sell_pay", "sell_pay", mark)
            first_left = shots["sell_pay"]["data"]["seconds_left"]
            await k.wait_for(lambda: k.data.get("seconds_left", first_left) < first_left)
            await keep("sell_pay_later", "sell_pay", mark)
            mark = len(published)
            k.cas.pay(tx)
            await k.wait_for(lambda: k.screen == "sell_receipt")
            await keep("sell_dispensing", "dispensing", mark)
            await keep("sell_receipt", "sell_receipt", mark, redeem_code=None)
            await k.act("done")
            await k.wait_for(lambda: k.screen == "idle")

            # a sale left before paying: the receipt carries a redeem code
            tx2 = await k.sell(4000)
            mark = len(published)
            assert (await k.act("cancel"))["ok"]
            await k.wait_for(lambda: k.screen == "sell_receipt" and k.data.get("redeem_code"))
            await keep("sell_receipt_with_code", "sell_receipt", mark)
            code = shots["sell_receipt_with_code"]["data"]["redeem_code"]
            await k.act("done")
            await k.wait_for(lambda: k.screen == "idle")

            # the code scanned before the payment confirms: nothing paid, the reason on screen
            mark = len(published)
            assert (await k.act("start_redeem"))["ok"]
            await k.wait_for(lambda: k.screen == "redeem_scan")
            await keep("redeem_scan", "redeem_scan", mark)
            paid_before = k.exited_notes()
            k.scanner.present(code)
            await k.wait_for(lambda: k.screen == "redeem_receipt")
            await keep("redeem_wait_unconfirmed", "redeem_wait", mark)
            await keep("redeem_receipt_unconfirmed", "redeem_receipt", mark)
            assert shots["redeem_receipt_unconfirmed"]["data"]["message"], "a refused code says why"
            assert k.exited_notes() == paid_before, "an unconfirmed code pays nothing"
            await k.act("done")
            await k.wait_for(lambda: k.screen == "idle")

            # the payment confirms; the code pays out
            k.cas.pay(tx2)
            mark = len(published)
            assert (await k.act("start_redeem"))["ok"]
            await k.wait_for(lambda: k.screen == "redeem_scan")
            k.scanner.present(code)
            await k.wait_for(lambda: k.screen == "redeem_receipt")
            await keep("redeem_wait", "redeem_wait", mark)
            await keep("redeem_dispensing", "dispensing", mark)
            await keep("redeem_receipt", "redeem_receipt", mark, message=None)
            assert k.exited_notes() > paid_before, "the redeem paid notes out"
            assert k.journal.redeem_code(tx2)["state"] == "redeemed"
        finally:
            recorder.cancel()
            k.kiosk.unsubscribe(queue)
    assert set(shots) == set(HEADINGS)
    return shots


async def _boxes(page) -> dict[str, Any]:
    out = {}
    for selector in ("#screen h1", '#screen img[data-field="qr"]', '#screen [data-field="address"]',
                     '#screen [data-field="uri"]', '#screen [data-action="cancel"]'):
        out[selector] = await page.locator(selector).bounding_box()
    return out


@pytest.mark.parametrize("language", ["en", "de"])
async def test_every_sell_and_redeem_screen_passes_contrast_touch_and_language_checks(
        chromium, serve_ui, fake_kiosk, tmp_path, language):
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    shots = await _walk_a_real_kiosk(tmp_path, language)
    fake = fake_kiosk           # replays the real kiosk's screens, unchanged, to the pages
    url = await serve_ui(fake)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    pages = {}
    contexts = []
    try:
        for tag, viewport in VIEWPORTS.items():
            context = await chromium.new_context(viewport=viewport)
            contexts.append(context)
            page = await context.new_page()
            page.on("pageerror", lambda exc, tag=tag: errors.append(f"{tag}: {exc}"))
            await page.goto(url)
            await expect(page.locator("#connection")).to_be_hidden()
            pages[tag] = page

        pay_boxes: dict[str, dict[str, Any]] = {}
        for name, snap in shots.items():
            fake.show(snap["screen"], snap["data"])
            for tag, page in pages.items():
                where = f"{language}-{tag} {name}"
                screen = page.locator("#screen")
                await expect(screen).to_have_attribute("data-seq", str(fake.seq))
                await expect(screen).to_have_attribute("data-screen", snap["screen"])
                await expect(screen).to_have_attribute("data-language", language)
                if HEADINGS[name] is not None:
                    await expect(page.locator("#screen h1")).to_have_text(texts.text(language, HEADINGS[name]))
                await _audit(page, where)
                if VIEWPORTS[tag] is LANDSCAPE:
                    await _main_button_not_in_a_corner(page, LANDSCAPE, where)
                if name == "sell_pay":
                    await _a_phone_reads_the_code_from_the_screen(page, VIEWPORTS[tag], where, "qr", snap["data"]["uri"])
                if name == "sell_receipt_with_code":
                    await _a_phone_reads_the_code_from_the_screen(page, VIEWPORTS[tag], where, "redeem_qr",
                                                                  snap["data"]["redeem_code"])
                if name.startswith("sell_pay"):
                    await expect(page.locator('#screen [data-field="seconds_left"]')).to_contain_text(
                        f"{snap['data']['seconds_left'] // 60}:{snap['data']['seconds_left'] % 60:02d}")
                    boxes = await _boxes(page)
                    if name == "sell_pay":
                        pay_boxes[tag] = boxes
                    else:
                        assert boxes == pay_boxes[tag], f"{where}: the payment screen moved as it counted down"
                await page.screenshot(path=str(ARTIFACTS / f"{language}-{VIEWPORTS[tag]['width']}x"
                                                           f"{VIEWPORTS[tag]['height']}-{name}.png"))
    finally:
        for context in contexts:
            await context.close()
    assert not errors, errors
