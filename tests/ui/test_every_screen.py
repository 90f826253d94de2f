"""Every customer screen of the buy and every service page, as the real kiosk composes
them, drawn in headless Chromium in two languages, portrait 1080x1920 and landscape
1920x1080 (and 1024x768): WCAG AA contrast from computed colours, touch targets of at
least 15 mm from bounding boxes, QR codes on a light ground, the main button away from the
corners, no untranslated key or unfilled placeholder on screen, no word split over two lines. Screenshots go to tests/artifacts/ (git-ignored) for people to look at."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from browser_fixtures import LANDSCAPE, PORTRAIT  # tests/ui is on sys.path (conftest.py)
from playwright.async_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "atm"))
from kiosk_harness import PIN, Harness  # noqa: E402

from atm import texts  # noqa: E402
from hal import Fiat, NoteRejected  # noqa: E402

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
MIN_TARGET_PX = 57          # 15 mm at 96 CSS px per inch
SMALL = {"width": 1024, "height": 768}
SERVICE_PAGES = ["status", "alerts", "cash", "cassettes", "tests", "pairing", "logs", "activation"]
DISPENSER_PAGES = ["cassettes", "tests"]

# Runs in the page: every visible text's contrast against the colour behind it, and
# every enabled control's size. Disabled controls are exempt from contrast (WCAG 1.4.3).
AUDIT_JS = """
(minTarget) => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const visible = (n) => { const r = n.getBoundingClientRect(); const s = getComputedStyle(n);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const scrolls = (node) => {
    for (let n = node.parentElement; n && n.id !== "screen"; n = n.parentElement)
      if (/auto|scroll/.test(getComputedStyle(n).overflowY)) return true;
    return false;
  };
  const problems = [];
  for (const n of document.querySelectorAll("#screen *, #toast")) {
    if (!visible(n) || n.closest("[disabled]")) continue;
    const own = [...n.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
    if (own) {
      const s = getComputedStyle(n);
      const fg = parse(s.color); const bg = background(n);
      const a = lum(fg.slice(0, 3)), b = lum(bg);
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = parseFloat(s.fontSize); const bold = parseInt(s.fontWeight, 10) >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: "${n.textContent.trim().slice(0, 40)}"`);
      const t = n.textContent.trim();
      if (/^(screen|message|service|sell_screen|sell|redeem|language|receipt)\\.[a-z_]+$/.test(t))
        problems.push(`untranslated key on screen: ${t}`);
      if (/\\{[a-z_]+\\}/.test(t)) problems.push(`unfilled placeholder on screen: ${t.slice(0, 40)}`);
      // a word split over two lines (a column squeezed to a few letters); addresses, ids and
      // other long codes (.mono, or longer than any word) may wrap anywhere
      if (!n.closest(".mono")) {
        for (const c of n.childNodes) {
          if (c.nodeType !== 3) continue;
          for (const m of c.textContent.matchAll(/[^\\s-]+-?/g)) {   // a break after a hyphen is fine
            if (m[0].length > 24) continue;
            const range = document.createRange();
            range.setStart(c, m.index); range.setEnd(c, m.index + m[0].length);
            const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
            if (lines.size > 1) problems.push(`word broken over lines: "${m[0]}"`);
          }
        }
      }
    }
    if (n.matches("img.qr, .qr img")) {
      // a camera reads dark modules on a light ground: a transparent QR on the dark page is unreadable
      const ratio = (lum(background(n)) + 0.05) / 0.05;
      if (ratio < 15) problems.push(`QR code on a dark ground (contrast ${ratio.toFixed(1)} with its black modules)`);
    }
    if (n.matches("button, input, [role=tab]")) {
      const r = n.getBoundingClientRect();
      if (r.width < minTarget || r.height < minTarget)
        problems.push(`touch target ${Math.round(r.width)}x${Math.round(r.height)} px: "${(n.textContent || n.getAttribute("aria-label") || "").trim().slice(0, 30)}"`);
      // below the bottom edge counts only outside a scrolling panel (the service pages scroll;
      // a customer screen does not, so a control under its edge cannot be reached)
      const below = r.bottom > innerHeight + 1 && !scrolls(n);
      if (r.left < 0 || r.right > innerWidth + 1 || below)
        problems.push(`control outside the screen: "${n.textContent.trim()}"`);
    }
  }
  return problems;
}
"""


async def _kiosk_screens(tmp_path: Path) -> dict[str, dict]:
    """The real kiosk's screens along a buy (and its events), the out-of-service screen and
    the service menu, captured from a kiosk on stand-in devices."""
    shots: dict[str, dict] = {}

    def keep(name: str, h: Harness) -> None:
        shots[name] = copy.deepcopy(h.kiosk.snapshot())

    async with Harness(tmp_path, settings={"languages": ("en", "de", "es", "fr")}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        keep("idle", h)
        await h.act("start_buy")
        await h.wait_for(lambda: h.screen == "scan_address")
        h.scanner.present("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")      # mainnet on regtest: refused
        await h.wait_for(lambda: h.data.get("error"))
        keep("scan_address", h)
        h.scanner.present("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        await h.wait_for(lambda: h.screen == "insert_cash")
        keep("insert_cash_empty", h)
        await h.insert(2000)
        keep("insert_cash", h)
        h.kiosk._sink(NoteRejected(device="validator", reason="counterfeit"))
        await h.wait_for(lambda: (h.data.get("message") or {}).get("key") == "message.note_suspect")
        keep("insert_cash_suspect", h)
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        keep("confirm", h)
        h.kiosk.sending_min_display_s = 60
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "sending")
        keep("sending", h)
        h.kiosk.sending_min_display_s = 0
        h.kiosk._sending_since = None
        h.kiosk._post(__import__("atm.kiosk", fromlist=["_Trigger"])._Trigger("sent"))
        await h.wait_for(lambda: h.screen == "receipt")
        await h.wait_for(lambda: h.kiosk._last_receipt_printed is not None)
        h.kiosk._last_receipt_printed = False      # as the screen looks when no paper came out
        h.kiosk._publish()
        keep("receipt", h)
        await h.act("done")
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: h.screen == "out_of_service")
        keep("out_of_service", h)
        h.sensors.pin("door").drive_low()
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        await h.act("service_login", pin="000000")
        keep("maintenance_login", h)
        assert (await h.act("service_login", pin=PIN))["ok"]
        await h.wait_for(lambda: h.screen == "maintenance")
        keep("maintenance", h)
    return shots


async def _dispenser_service_screen(tmp: Path) -> dict:
    """The service menu of a kiosk with a dispenser (the LCDM-2000 driver on its wire
    simulator, 20 and 50 EUR booked): a refill booked with another note value than the
    dispenser's (a mismatch), a test dispense answered, and a sale's dispense of unknown
    outcome waiting for the technician's count."""
    from decimal import Decimal

    from drivers.gpio.driver import GpioSensors, make_pin_factory
    from hal import Fiat, Sats
    from sell_world import SellKiosk
    eur = lambda minor: Fiat(minor, "EUR")  # noqa: E731
    w = SellKiosk(tmp, model="lcdm2000")
    w.kiosk.devices.sensors = GpioSensors(pin_factory=make_pin_factory("mock", simulate=True))
    twenty, fifty = w.dispenser.cassette_ids
    j = w.journal
    j.open_sell("sell-1", eur(7000), eur(350), Decimal("50000"), Sats(14_700))
    j.sell_invoiced("sell-1", "bcrt1qexample", 0, 2e9)
    j.payment_proven("sell-1", "ab" * 32, 14_700, 2, True, "pay", eur(7000))
    j.issue_redeem("sell-1", "CODE-1", eur(7000))
    assert j.claim_redeem("CODE-1", "sell-1", "r1", "dispenser", {twenty: 1, fifty: 1}, eur(7000))
    j.dispense_outcome("r1", "timeOut", {}, {}, eur(0), outcome="unknown", uncertain={twenty: 1, fifty: 1},
                       uncertain_value=eur(7000), source="recovery")
    async with w:
        await w.wait_for(lambda: w.screen == "idle")
        w.kiosk.devices.sensors.pin("service_switch").drive_high()
        await w.wait_for(lambda: w.screen == "maintenance_login")
        assert (await w.act("service_login", pin=PIN))["ok"]
        await w.wait_for(lambda: w.screen == "maintenance")
        assert (await w.act("service_action", do="refill_cassette", cassette=twenty, count="40",
                            denomination="1000", near_empty="5"))["ok"]
        assert (await w.act("service_action", do="test_dispense", cassette=fifty))["ok"]
        await w.wait_for(lambda: (w.data["tests"]["test_dispense"] or {}).get("done"))
        shot = copy.deepcopy(w.kiosk.snapshot())
    cassettes = shot["data"]["cassettes"]
    assert cassettes["books"] and cassettes["denomination_mismatches"] and cassettes["unknown_dispenses"]
    return shot


_DISPENSER_SHOT: list[dict] = []      # made once per run: the walk's six variants show the same data


@pytest.fixture
async def kiosk_screens(tmp_path):
    shots = await _kiosk_screens(tmp_path)
    if not _DISPENSER_SHOT:
        _DISPENSER_SHOT.append(await _dispenser_service_screen(tmp_path / "dispenser"))
    return {**shots, "maintenance_dispenser": _DISPENSER_SHOT[0]}


async def _audit(page, where: str) -> None:
    problems = await page.evaluate(AUDIT_JS, MIN_TARGET_PX)
    assert not problems, f"{where}: {problems}"


async def _main_button_not_in_a_corner(page, viewport, where: str) -> None:
    primary = page.locator("#screen .buttons .btn.primary").first
    if await primary.count() == 0:
        return
    box = await primary.bounding_box()
    centre = box["x"] + box["width"] / 2
    assert viewport["width"] * 0.25 < centre < viewport["width"] * 0.75, f"{where}: main button at x={centre:.0f}"


async def _show(page, kiosk, screen: str, data: dict, language: str) -> None:
    data = {**data, "language": language}
    kiosk.show(screen, data)
    await expect(page.locator("#screen")).to_have_attribute("data-seq", str(kiosk.seq))
    await expect(page.locator("#screen")).to_have_attribute("data-language", language)


@pytest.mark.parametrize("viewport", [PORTRAIT, LANDSCAPE, SMALL], ids=["portrait", "landscape", "1024x768"])
@pytest.mark.parametrize("language", ["en", "de"])
async def test_every_customer_and_service_screen_passes_contrast_and_touch_checks(
        chromium, serve_ui, fake_kiosk, kiosk_screens, viewport, language):
    from browser_fixtures import EXPECT_TIMEOUT_MS
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    context = await chromium.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(await serve_ui(fake_kiosk))
        await expect(page.locator("#connection")).to_be_hidden()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tag = f"{language}-{viewport['width']}x{viewport['height']}"
        for name, snap in kiosk_screens.items():
            await _show(page, fake_kiosk, snap["screen"], snap["data"], language)
            assert await page.locator("#screen").get_attribute("data-screen") == snap["screen"]
            await _audit(page, f"{tag} {name}")
            if viewport is LANDSCAPE:
                await _main_button_not_in_a_corner(page, viewport, f"{tag} {name}")
            await page.screenshot(path=str(ARTIFACTS / f"{tag}-{name}.png"))
            if name.startswith("maintenance") and name != "maintenance_login":
                # with a dispenser only its two pages differ: the books, refill and count, test dispense
                for service_page in SERVICE_PAGES if name == "maintenance" else DISPENSER_PAGES:
                    await page.locator(f'#screen .tabs [data-page="{service_page}"]').click()
                    await expect(page.locator("#screen .page")).to_have_attribute("data-page", service_page)
                    await _audit(page, f"{tag} service {service_page}")
                    shot = f"{tag}-{name.replace('maintenance', 'service')}-{service_page}"
                    await page.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
                    if name == "maintenance_dispenser" and service_page == "cassettes":
                        # the page scrolls: the refill form and the dispenses waiting for a count too
                        for part in ("refill_entries", "unknown_dispenses"):
                            await page.locator(f'#screen [data-field="{part}"]').scroll_into_view_if_needed()
                            await page.screenshot(path=str(ARTIFACTS / f"{shot}-{part}.png"))
    finally:
        await context.close()
    assert not errors, errors


async def test_the_screen_speaks_the_customers_language_from_the_language_files(
        browser_page, serve_ui, fake_kiosk, kiosk_screens):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    for language in ("en", "de", "es", "fr"):
        await _show(page, fake_kiosk, "insert_cash", kiosk_screens["insert_cash_suspect"]["data"], language)
        await expect(page.locator('#screen [data-field="message"]')).to_have_text(
            texts.text(language, "message.note_suspect"))
        await expect(page.locator("#screen h1")).to_have_text(texts.text(language, "screen.insert_more"))
        await expect(page.locator('#screen [data-action="finish_cash"]')).to_have_text(
            texts.text(language, "screen.finish"))


async def test_the_idle_screen_offers_the_enabled_languages_and_sends_the_choice(
        browser_page, serve_ui, fake_kiosk, kiosk_screens):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    await _show(page, fake_kiosk, "idle", kiosk_screens["idle"]["data"], "en")
    buttons = page.locator('#screen [data-action="set_language"]')
    await expect(buttons).to_have_count(4)
    await expect(page.locator('#screen [data-language="de"]')).to_have_text("Deutsch")
    await page.locator('#screen [data-language="fr"]').click()
    assert await fake_kiosk.next_action() == {"action": "set_language", "language": "fr", "id": 1}


async def test_a_note_being_counted_moves_nothing_on_the_cash_screen(browser_page, serve_ui, fake_kiosk, kiosk_screens):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))

    async def boxes():
        out = {}
        for selector in ("#screen h1", "#screen .amounts", '#screen [data-action="finish_cash"]',
                         '#screen [data-field="address"]'):
            out[selector] = await page.locator(selector).bounding_box()
        return out

    for language in ("en", "de"):
        await _show(page, fake_kiosk, "insert_cash", kiosk_screens["insert_cash"]["data"], language)
        before = await boxes()
        await _show(page, fake_kiosk, "insert_cash", kiosk_screens["insert_cash_suspect"]["data"], language)
        after = await boxes()
        assert after == before, f"{language}: the layout moved when a note was refused"


async def test_the_receipt_screen_shows_the_transaction_qr_date_and_contact(
        browser_page, serve_ui, fake_kiosk, kiosk_screens):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    data = kiosk_screens["receipt"]["data"]
    await _show(page, fake_kiosk, "receipt", data, "en")
    qr = page.locator('#screen img[data-field="tx_qr"]')
    await expect(qr).to_be_visible()
    assert (await qr.evaluate("img => img.naturalWidth")) > 0            # the SVG drew: no external fetch
    await expect(page.locator('#screen [data-field="date"]')).to_have_text(data["date"])
    await expect(page.locator('#screen [data-field="printed"]')).to_have_text(texts.text("en", "screen.no_receipt"))
    await expect(page.locator('#screen [data-field="operator"]')).to_contain_text(data["operator"]["contact"])
    await expect(page.locator('#screen [data-field="countdown"]')).to_be_visible()


async def test_out_of_service_gives_the_contact_and_no_technical_reason(
        browser_page, serve_ui, fake_kiosk, kiosk_screens):
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    data = kiosk_screens["out_of_service"]["data"]
    await _show(page, fake_kiosk, "out_of_service", data, "fr")
    await expect(page.locator('#screen [data-field="contact"]')).to_have_text(
        texts.text("fr", "screen.out_contact", name=data["operator"]["name"], contact=data["operator"]["contact"]))
    assert "door" not in (await page.locator("#screen").inner_text()).lower()
    await expect(page.locator("#screen button")).to_have_count(0)


async def test_a_refused_tap_shows_the_kiosks_message_in_the_customers_language(browser_page, serve_ui, fake_kiosk):
    page = browser_page
    fake_kiosk.reply = {"ok": False, "error": "start_buy refused: rate out of bounds",
                        "message": texts.message("message.buy_paused")}
    await page.goto(await serve_ui(fake_kiosk))
    fake_kiosk.show("idle", {"buy_enabled": True, "language": "es"})
    await expect(page.locator("#screen")).to_have_attribute("data-language", "es")
    await page.locator('#screen [data-action="start_buy"]').click()
    await expect(page.locator("#toast")).to_have_text(texts.text("es", "message.buy_paused"))


# Written out by hand from each language's [format] (decimal, thousands).
LARGE_AMOUNTS = {"en": ("1,100.00 EUR", "1,234.50 EUR", "52,631.58 EUR/BTC"),
                 "de": ("1.100,00 EUR", "1.234,50 EUR", "52.631,58 EUR/BTC"),
                 "es": ("1.100,00 EUR", "1.234,50 EUR", "52.631,58 EUR/BTC"),
                 "fr": ("1 100,00 EUR", "1 234,50 EUR", "52 631,58 EUR/BTC")}


async def test_amounts_on_the_page_are_in_the_customers_number_format(browser_page, serve_ui, fake_kiosk, tmp_path):
    """The real kiosk's idle screen in four languages and its German cash screen, drawn:
    the page shows the amounts as the kiosk wrote them, with the language's separators,
    and names no fixed fee when it is zero in any of them."""
    shots = {}
    async with Harness(tmp_path, min_buy=Fiat(110_000, "EUR"), max_buy=Fiat(123_450, "EUR"),
                       settings={"languages": tuple(LARGE_AMOUNTS)}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        for language in LARGE_AMOUNTS:
            assert (await h.act("set_language", language=language))["ok"]
            shots[language] = copy.deepcopy(h.kiosk.snapshot()["data"])
        assert (await h.act("set_language", language="de"))["ok"]
        await h.start_buy()
        for _ in range(6):
            await h.insert(20_000)
        shots["cash"] = copy.deepcopy(h.kiosk.snapshot()["data"])
    page = browser_page
    await page.goto(await serve_ui(fake_kiosk))
    for language, (low, high, price) in LARGE_AMOUNTS.items():
        await _show(page, fake_kiosk, "idle", shots[language], language)
        await expect(page.locator('#screen [data-field="limits"]')).to_have_text(
            texts.text(language, "screen.limits", min=low, max=high))
        await expect(page.locator('#screen [data-field="price_per_btc"]')).to_have_text(price)
        await expect(page.locator('#screen [data-field="fee_terms"]')).to_have_text(
            texts.text(language, "screen.fee_terms", percent="5"))
    await _show(page, fake_kiosk, "insert_cash", shots["cash"], "de")
    for field, shown in [("inserted", "1.200,00 EUR"), ("room", "34,50 EUR"), ("btc", "0,02280000 BTC"),
                         ("fee_named", texts.text("de", "screen.you_get", fee="60,00 EUR"))]:
        await expect(page.locator(f'#screen [data-field="{field}"]')).to_have_text(shown)
