"""What the kiosk puts on the customer's screen: keys of the language files (never
words), what a customer must know before money moves, the language choice that lasts
one transaction, and the receipt's proof of purchase."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from atm import texts
from hal import Fiat
from kiosk_harness import Harness

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = texts.available_languages()


def _keys_in_python(path: Path) -> set[str]:
    """Every "section.key" passed to message(...)/texts.message(...) or listed as a
    key constant in the module."""
    keys = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"(message|screen|service)\.[a-z_]+", node.value):
            keys.add(node.value)
    return keys


KIOSK_SOURCES = [ROOT / "atm" / "kiosk.py", ROOT / "atm" / "texts.py", *sorted((ROOT / "atm" / "flows").glob("*.py"))]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_key_the_kiosk_sends_exists_in_every_language(language):
    keys = set().union(*(_keys_in_python(p) for p in KIOSK_SOURCES))
    assert len(keys) > 20, "the scan found too few keys: it is not reading the sources"
    missing = sorted(k for k in keys if not texts.has_key(k, language))
    assert not missing, f"{language}.toml lacks {missing}"


def _string_literals_assigned_to_customer_fields(path: Path) -> list[str]:
    """`self.message = "..."`, `scan_error = f"..."`: words the customer would read
    that did not come from a language file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.JoinedStr)):
            for target in node.targets:
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in ("message", "scan_error", "_login_error", "notice") and not (
                        isinstance(node.value, ast.Constant) and node.value.value is None):
                    found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_customer_message_in_the_kiosk_or_flows_is_written_in_english():
    found = [hit for p in KIOSK_SOURCES for hit in _string_literals_assigned_to_customer_fields(p)]
    assert not found, f"customer-visible text written in code: {found}"


def test_the_english_check_would_see_a_hard_coded_message(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('class F:\n    def f(self):\n        self.message = f"Note returned: {1}"\n')
    assert _string_literals_assigned_to_customer_fields(bad) == ["bad.py:3"]


def _all_messages(data):
    if isinstance(data, dict):
        if set(data) == {"key", "values"}:
            yield data
        for value in data.values():
            yield from _all_messages(value)
    elif isinstance(data, list):
        for value in data:
            yield from _all_messages(value)


async def test_before_any_money_moves_the_customer_sees_operator_price_fees_limits_and_notes(tmp_path):
    async with Harness(tmp_path, settings={"fixed_fee": Fiat(100, "EUR")}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        for screen in ("idle", "scan_address"):
            if screen == "scan_address":
                assert (await h.act("start_buy"))["ok"]
                await h.wait_for(lambda: h.screen == "scan_address")
            d = h.data
            assert d["operator"] == {"name": h.config.operator_name, "contact": h.config.operator_contact}
            assert d["price_per_btc"].endswith("EUR/BTC") and d["fee_percent"] == "5"
            assert d["fixed_fee"] == "1.00 EUR"
            assert (d["min"], d["max"]) == ("5.00 EUR", "100.00 EUR")
            assert "20.00 EUR" in d["notes"] and d["receipt_available"] is True


async def test_the_cash_screen_lists_the_notes_taken_and_names_the_fee(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(2000)
        await h.insert(1000)
        d = h.data
        assert d["notes_in"] == ["20.00 EUR", "10.00 EUR"]
        assert d["fee"] == "1.50 EUR" and d["fee_percent"] == "5"
        # the journal's credit can reach a screen a moment before the settled event's words do
        await h.wait_for(lambda: h.said() == "10.00 EUR received. Thank you.")


async def test_a_suspect_note_and_an_unknown_note_are_told_apart_in_plain_words(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        from hal import NoteRejected
        h.kiosk._sink(NoteRejected(device="validator", reason="counterfeit"))
        await h.wait_for(lambda: h.data.get("message") and h.data["message"]["key"] == "message.note_suspect")
        h.kiosk._sink(NoteRejected(device="validator", reason="photo pattern error", code="0x77"))
        await h.wait_for(lambda: h.data["message"]["key"] == "message.note_not_recognised")
        h.kiosk._sink(NoteRejected(device="validator", reason="returned by inhibit (direction, denomination)"))
        await h.wait_for(lambda: h.data["message"]["key"] == "message.note_not_accepted_now")
        assert "100.00 EUR" in h.said()


async def test_a_door_opened_mid_purchase_ends_it_and_says_what_was_credited(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(2000)
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: h.screen in ("sending", "receipt"))
        await h.wait_for(lambda: h.data.get("message") is not None or h.screen == "receipt")
        assert h.kiosk.flow.message == texts.message("message.ended_door", credited=Fiat(2000, "EUR"))
        if h.screen == "sending":          # as it leaves the kiosk: the amount in the screen's words
            assert h.data["message"] == {"key": "message.ended_door", "values": {"credited": "20.00 EUR"}}


async def test_the_language_chosen_lasts_one_purchase_and_its_receipt(tmp_path):
    async with Harness(tmp_path, settings={"languages": ("en", "de", "fr")}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        assert [c["code"] for c in h.data["languages"]] == ["en", "de", "fr"] and h.data["language"] == "en"
        assert h.data["languages"][1]["name"] == "Deutsch"
        assert (await h.act("set_language", language="es"))["ok"] is False     # not enabled by the operator
        assert (await h.act("set_language", language="de"))["ok"]
        assert h.data["language"] == "de"
        await h.start_buy()
        assert h.data["language"] == "de"
        assert (await h.act("set_language", language="fr"))["ok"] is False     # not once cash may go in
        await h.insert(1000)
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt")
        assert "Bitcoin-Kauf" in h.printer.printed[-1]
        d = h.data
        assert d["tx_id"] == h.kiosk.tx_id and d["tx_qr"].startswith("data:image/svg+xml")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", d["date"])
        await h.act("done")
        await h.wait_for(lambda: h.screen == "idle")
        assert h.data["language"] == "en"


async def test_out_of_service_gives_the_customer_the_contact_and_no_technical_reason(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.validator.jam("stacker")
        await h.wait_for(lambda: h.screen == "out_of_service")
        d = h.data
        assert d["operator"]["contact"] == h.config.operator_contact
        assert "jam" not in repr(d).lower() and "reason" not in d
        assert "jam" in h.kiosk.out_of_service_reason()
        assert all(texts.has_key(m["key"], lang) for m in _all_messages(d) for lang in LANGUAGES)


async def test_sending_stays_on_screen_after_the_coins_went_out_until_it_could_be_read(tmp_path):
    """Mutation caught: posting `sent` as soon as the CAS answered (no minimum display)."""
    async with Harness(tmp_path) as h:
        h.kiosk.sending_min_display_s = 60
        await h.start_buy()
        await h.insert(1000)
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await h.act("confirm")
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        await h.settle_events()
        assert h.screen == "sending"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_device_reason_for_a_refused_note_becomes_a_key_every_language_has(reason):
    key = texts.rejection_key(reason)
    assert all(texts.has_key(key, language) for language in LANGUAGES)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=10))
def test_any_scan_refusal_becomes_a_message_every_language_can_say(reason, network):
    said = texts.scan_refusal(reason, network)
    for language in LANGUAGES:
        assert texts.render(language, said)


# Each language's separators (decimal, thousands), written out by hand from
# atm/locale/*.toml [format] (not read from it: the test would then agree with any file).
SEPARATORS = {"en": (".", ","), "de": (",", "."), "fr": (",", " "), "es": (",", ".")}
ENGLISH = {"zero": "0.00 EUR", "max": "1,234.50 EUR", "min": "1,100.00 EUR", "price": "52,631.58 EUR/BTC",
           "rate": "50,000.00 EUR/BTC", "inserted": "1,200.00 EUR", "fee": "60.00 EUR", "room": "34.50 EUR",
           "btc": "0.02280000 BTC", "more": "900.00 EUR", "first": "200.00 EUR", "sats": "2,280,000"}
NOTES = ["5.00 EUR", "10.00 EUR", "20.00 EUR"]


def _written_in(language: str) -> dict[str, str]:
    """The English amounts above with `language`'s separators swapped in."""
    decimal, thousands = SEPARATORS[language]
    swap = str.maketrans({".": decimal, ",": thousands})
    want = {name: text.translate(swap) for name, text in ENGLISH.items()}
    want["notes"] = ", ".join(note.translate(swap) for note in NOTES)
    return want


LARGE = {language: _written_in(language) for language in SEPARATORS}


@pytest.mark.parametrize("language", sorted(LARGE))
async def test_every_amount_on_the_buy_screens_is_in_the_customers_number_format(tmp_path, language):
    """Limits, price, rate, cash so far, room, fee, bitcoin, notes, and the amounts inside
    messages (screen and refusal reply) are written with the chosen language's separators,
    from the idle screen to the receipt. Mutation caught: localise() not applied where the
    screen leaves the kiosk (every amount stays "1,234.50 EUR")."""
    from atm.ui.server import with_texts
    want = LARGE[language]
    async with Harness(tmp_path, min_buy=Fiat(110_000, "EUR"), max_buy=Fiat(123_450, "EUR"),
                       settings={"languages": ("en", "de", "es", "fr")}) as h:
        await h.wait_for(lambda: h.screen == "idle")
        assert (await h.act("set_language", language=language))["ok"]
        d = h.data
        assert (d["language"], d["min"], d["max"]) == (language, want["min"], want["max"])
        assert (d["price_per_btc"], d["rate"], d["fixed_fee"]) == (want["price"], want["rate"], want["zero"])
        assert d["notes"][:3] == want["notes"].split(", ")
        await h.start_buy()
        assert (h.data["max"], h.data["price_per_btc"]) == (want["max"], want["price"])

        await h.insert(20_000)
        refused = await h.act("finish_cash")                # below the minimum: a message with amounts
        assert refused["ok"] is False and refused["message"]["key"] == "message.minimum_purchase"
        assert (refused["message"]["values"]["min"], refused["message"]["values"]["more"]) == (want["min"], want["more"])
        for _ in range(5):
            await h.insert(20_000)
        await h.wait_for(lambda: (h.data.get("message") or {}).get("key") == "message.note_received")
        d = h.data
        assert (d["inserted"], d["room"], d["fee"], d["btc"]) == (want["inserted"], want["room"], want["fee"], want["btc"])
        assert (d["sats"], d["sats_shown"]) == (2_280_000, want["sats"])     # the int stays for tools
        assert d["notes_in"] == [want["first"]] * 6 and d["message"]["values"] == {"amount": want["first"]}

        from hal import NoteRejected
        h.kiosk._sink(NoteRejected(device="validator", reason="returned by inhibit (denomination)"))
        await h.wait_for(lambda: h.data["message"]["key"] == "message.note_not_accepted_now")
        assert h.data["message"]["values"] == {"notes": want["notes"]}
        # `atm sim screen` reads the same words the page draws
        assert with_texts(h.kiosk.snapshot())["texts"]["message"] == texts.text(language, "message.note_not_accepted_now",
                                                                                notes=want["notes"])

        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        d = h.data
        assert (d["cash"], d["fee"], d["rate"], d["btc"]) == (want["inserted"], want["fee"], want["rate"], want["btc"])
        assert d["sats_shown"] == want["sats"]
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt")
        assert (h.data["cash"], h.data["btc"]) == (want["inserted"], want["btc"])
