"""The texts the kiosk shows and prints, one TOML file per language in atm/locale/.

A translator edits one file; every file has the same sections and keys, and the same
{placeholders} per key (tests/atm/test_locale.py checks). Code asks for a text by
"section.key"; a language without a file falls back to English and says so in the
log, never to a blank screen or receipt. Amounts among a text's values are written in
the language's number format ([format], through atm.amounts).
"""

from __future__ import annotations

import logging
import string
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from atm.amounts import AMOUNT_TYPES, format_amount

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT_LANGUAGE = "en"


class TextsError(ValueError):
    """A language file that cannot be used; names the file and what is wrong."""


def available_languages() -> list[str]:
    return list(_language_files())


@lru_cache(maxsize=1)
def _language_files() -> tuple[str, ...]:
    # Read once: every text and every amount on every screen asks, and the files ship
    # with the code (a new language comes with an update and a restart).
    return tuple(sorted(p.stem for p in LOCALE_DIR.glob("*.toml")))


@lru_cache(maxsize=None)
def _load(language: str) -> Mapping[str, Mapping[str, str]]:
    path = LOCALE_DIR / f"{language}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TextsError(f"{path}: not valid TOML: {exc}") from None
    for section, entries in data.items():
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise TextsError(f"{path}: [{section}] must hold only text values")
    return data


def catalogue(language: str) -> Mapping[str, Mapping[str, str]]:
    """All sections of `language`, or English when there is no such file."""
    if language not in available_languages():
        log.warning("no texts for language %r (have %s); using %s", language, ", ".join(available_languages()),
                    DEFAULT_LANGUAGE)
        language = DEFAULT_LANGUAGE
    return _load(language)


def section(language: str, name: str) -> dict[str, str]:
    return dict(catalogue(language).get(name, {}))


def number_format(language: str) -> dict[str, str]:
    """The [format] section of `language` (its `decimal` and `thousands` separators),
    for atm.amounts; English where the language has no file."""
    return {**_load(DEFAULT_LANGUAGE)["format"], **section(language, "format")}


def shown(language: str, value: Any) -> Any:
    """A value as `language` writes it: an amount (Fiat, Sats, atm.amounts.Rate) in its
    number format, a list or tuple of amounts joined with ", "; anything else unchanged."""
    if isinstance(value, AMOUNT_TYPES):
        return format_amount(value, number_format(language))
    if isinstance(value, (list, tuple)) and all(isinstance(item, AMOUNT_TYPES) for item in value):
        return ", ".join(format_amount(item, number_format(language)) for item in value)
    return value


def text(language: str, key: str, **values: Any) -> str:
    """The text `key` ("section.name") in `language`, with {placeholders} filled in;
    amounts among the values are written in the language's number format.
    A key missing from a language falls back to English; a key missing from English
    is a programming error and raises KeyError."""
    section_name, _, name = key.partition(".")
    entries = catalogue(language).get(section_name, {})
    template = entries.get(name)
    if template is None:
        template = _load(DEFAULT_LANGUAGE)[section_name][name]
    if not values:
        return template
    return template.format(**{name: shown(language, value) for name, value in values.items()})


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def message(key: str, **values: Any) -> dict[str, Any]:
    """What the kiosk sends the page instead of words: a "section.name" key of the
    language files and the values for its placeholders, rendered in the customer's
    language by the page (atm/ui/static/kiosk.js `t`).

    Amounts (Fiat, Sats, atm.amounts.Rate, or a list of them) stay typed here: the
    customer's language may still change before money moves, so they are written in
    its number format only where the screen leaves the kiosk (atm.screens.localise),
    or by render()/text(). Every other value is kept as text."""
    return {"key": key, "values": {name: _kept(value) for name, value in values.items()}}


def _kept(value: Any) -> Any:
    if isinstance(value, AMOUNT_TYPES):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, AMOUNT_TYPES) for v in value):
        return tuple(value)
    return str(value)


def has_key(key: str, language: str = DEFAULT_LANGUAGE) -> bool:
    section_name, _, name = key.partition(".")
    return name in _load(language).get(section_name, {})


def render(language: str, msg: Mapping[str, Any] | None) -> str:
    """A message() in words (logs, `atm sim screen`, tests)."""
    if not msg:
        return ""
    return text(language, msg["key"], **msg.get("values", {}))


# Device words for a refused note (ID-003, SSP, ccNet reject reasons, stand-ins) ->
# what the customer is told. A note is suspect only when the device says so.
_SUSPECT_WORDS = ("counterfeit", "fraud", "true-bill", "fake", "suspect", "magnetic", "verification")
_INHIBITED_WORDS = ("inhibit",)


def rejection_key(reason: str) -> str:
    words = (reason or "").lower()
    if any(w in words for w in _SUSPECT_WORDS):
        return "message.note_suspect"
    if any(w in words for w in _INHIBITED_WORDS):
        return "message.note_not_accepted_now"
    return "message.note_not_recognised"


_SCAN_KEYS = {"wrong_network": "message.scan_wrong_network", "bad_checksum": "message.scan_bad_checksum",
              "unsupported_req_param": "message.scan_unsupported", "unknown_scheme": "message.scan_unsupported",
              "lightning_disabled": "message.scan_unsupported", "bad_invoice": "message.scan_unsupported"}


def scan_refusal(reason: str, network: str) -> dict[str, Any]:
    """A refused code (atm.payloads.PayloadError.reason) -> what the customer is told."""
    key = _SCAN_KEYS.get(reason, "message.scan_invalid")
    return message(key, network=network) if key == "message.scan_wrong_network" else message(key)
