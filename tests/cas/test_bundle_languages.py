"""The signed bundle may name the languages a customer can choose on screen; anything but
a short list of two-letter codes is refused with the key named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.bundle import BundleError, parse_payload
from atm.cas.signing import sign_payload
sys.path.insert(0, str(Path(__file__).parent))
from test_bundle import KEY, payload, verify  # noqa: E402  (the bundle tests' own payload, kept in step with them)


def test_the_languages_the_operator_signed_reach_the_kiosk_settings_once_each():
    bundle = verify(sign_payload(payload(languages=["en", "de", "es", "fr", "de"]), KEY))
    assert bundle.kiosk_settings().languages == ("en", "de", "es", "fr")


def test_a_bundle_without_languages_leaves_the_kiosks_own_language():
    assert verify(sign_payload(payload(), KEY)).kiosk_settings().languages == ()


@pytest.mark.parametrize("bad", ["en", ["EN"], ["english"], [1], ["e"], ["de", None], ["xx"] * 33])
def test_languages_that_are_not_a_short_list_of_codes_are_refused_by_name(bad):
    with pytest.raises(BundleError, match="settings.languages"):
        parse_payload(payload(languages=bad))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=5), st.integers(),
                 st.lists(st.one_of(st.text(max_size=4), st.integers(), st.none()), max_size=40)))
def test_any_languages_value_gives_a_bundle_or_a_bundle_error(value):
    try:
        bundle = parse_payload(payload(languages=value))
    except BundleError:
        return
    assert all(len(code) == 2 and code.isalpha() for code in bundle.languages)
