"""The page's scripts write no customer words of their own: every text they show comes
from the language files through t("section.key"), and every key they ask for exists in
every language. (The kiosk's side is checked in tests/atm/test_kiosk_screens.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atm import texts

STATIC = Path(__file__).resolve().parents[2] / "atm" / "ui" / "static"
PAGE_SCRIPTS = ["kiosk.js", "app.js", "service.js", "dom.js"] + (["sell.js"] if (STATIC / "sell.js").exists() else [])

_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'|`((?:[^`\\]|\\.)*)`')
# Words a person reads: a capitalised word followed by more words, or a sentence ending
# in punctuation. Keys ("screen.buy"), CSS classes ("btn primary"), attribute names and
# selectors never look like that.
_WORDS = re.compile(r"^[A-Z][a-z]+(?: [A-Za-z]+)+|[a-z]{2,} [a-z]{2,}[.!?…]$|^[A-Z][a-z]{2,}[.!?…]?$")
# Proper names and symbols the page may write as they are.
ALLOWED = {"PIN", "C", "Backspace", "Enter"}   # PIN: the word on the pad; keyboard key names


def _literals(source: str) -> list[str]:
    # comments are not shown to anyone
    source = re.sub(r"^\s*//.*$", "", source, flags=re.M)
    return [next(g for g in m.groups() if g is not None) for m in _STRING.finditer(source)]


def customer_words(source: str) -> list[str]:
    return [s for s in _literals(source) if s not in ALLOWED and _WORDS.search(s)]


@pytest.mark.parametrize("script", PAGE_SCRIPTS)
def test_no_customer_visible_words_are_written_in_the_page_scripts(script):
    found = customer_words((STATIC / script).read_text(encoding="utf-8"))
    assert not found, f"{script} writes words itself instead of t('section.key'): {found}"


def test_the_word_check_would_see_hard_coded_english():
    assert customer_words('el("h1", { text: "Insert your banknotes" })') == ["Insert your banknotes"]
    assert customer_words("showToast('Please wait.')") == ["Please wait."]
    assert customer_words('ui.t("screen.buy"); el("p", { class: "muted notice" })') == []


def _keys(source: str) -> set[str]:
    keys = set(re.findall(r'\bt\(\s*"((?:screen|message|service)\.[a-z_]+)"', source))
    keys |= set(re.findall(r'"((?:screen|message|service)\.[a-z_]+)"', source))
    # keys built from a fixed list in the script: t("service.tab_" + name) over PAGES
    for prefix, listname in (("service.tab_", "PAGES"), ("screen.network_", "NETWORKS")):
        match = re.search(listname + r"\s*=\s*\[([^\]]*)\]", source)
        if match:
            keys |= {prefix + name for name in re.findall(r'"([a-z_]+)"', match.group(1))}
    for severity in ("critical", "warning", "info"):
        keys.add("service.severity_" + severity)
    return {k for k in keys if not k.endswith("_")}


@pytest.mark.parametrize("language", texts.available_languages())
def test_every_key_the_page_asks_for_exists_in_every_language(language):
    keys = set().union(*(_keys((STATIC / s).read_text(encoding="utf-8")) for s in PAGE_SCRIPTS))
    assert len(keys) > 60, "the scan found too few keys: it is not reading the scripts"
    missing = sorted(k for k in keys if not texts.has_key(k, language))
    assert not missing, f"{language}.toml lacks {missing}"
