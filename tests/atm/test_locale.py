"""Every language file has every key of every other, with the same placeholders, so a
translator's missing line fails here and never shows up as a blank on a kiosk."""

from __future__ import annotations

import pytest

from atm import texts

LANGUAGES = texts.available_languages()


def test_at_least_english_german_spanish_and_french_are_complete():
    assert {"en", "de", "es", "fr"} <= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_exactly_the_keys_of_english(language):
    english, other = texts._load("en"), texts._load(language)
    assert set(other) == set(english), f"{language}.toml sections differ from en.toml"
    for name, entries in english.items():
        missing = set(entries) - set(other[name])
        extra = set(other[name]) - set(entries)
        assert not missing, f"{language}.toml [{name}] lacks {sorted(missing)}"
        assert not extra, f"{language}.toml [{name}] has keys English lacks: {sorted(extra)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_has_the_placeholders_of_english(language):
    english, other = texts._load("en"), texts._load(language)
    for name, entries in english.items():
        for key, template in entries.items():
            assert texts.placeholders(other[name][key]) == texts.placeholders(template), f"{language}: {name}.{key}"
            assert other[name][key] if name == "format" else other[name][key].strip(), \
                f"{language}: {name}.{key} is empty"


def test_an_unknown_language_falls_back_to_english_and_says_so(caplog):
    assert texts.text("xx", "receipt.thanks") == texts.text("en", "receipt.thanks")
    assert "no texts for language 'xx'" in caplog.text


def test_placeholders_are_filled_in():
    assert texts.placeholders("Insert {amount} more") == {"amount"}
