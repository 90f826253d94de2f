"""Signed bundle rules of issue 8: rate bounds for the kiosk's currency are required,
a fixed fee must stay below the minimum purchase, the quote age limit is signed, and
the kiosk's settings carry all of them; `atm cas check` names what is wrong."""

from __future__ import annotations

import argparse
import asyncio
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from atm.cas.bundle import BundleError, verify_bundle
from atm.cas.check import register, run_check
from atm.cas.signing import generate_operator_key, sign_payload
from hal.money import Fiat

from .test_bundle import KEY, payload

BOUNDS = {"EUR": ["20000", "200000"]}


def verify(doc, current=1):
    return verify_bundle(doc, KEY.public_key(), kiosk_id="kiosk-1", current_version=current)


def without_bounds(**changes) -> dict:
    doc = payload(**changes)
    del doc["settings"]["rate_bounds"]
    return doc


@pytest.mark.parametrize("bounds", [None, {}, {"USD": ["20000", "200000"]}])
def test_signed_bundle_without_bounds_for_its_currency_is_refused(bounds):
    doc = without_bounds() if bounds is None else payload(rate_bounds=bounds)
    with pytest.raises(BundleError, match="no signed rate range for the kiosk's currency EUR") as info:
        verify(sign_payload(doc, KEY))
    assert info.value.reason == "no-rate-bounds"


@pytest.mark.parametrize("pair, words", [
    (["0", "100"], "lowest <= highest"),
    (["0.001", "100"], "lowest <= highest"),
    (["100", "50"], "lowest <= highest"),
    (["20000", "1000000000000000"], "lowest <= highest"),
    (["NaN", "1"], "not a finite number"),
    (["1E+999999", "1E+999999"], "lowest <= highest"),
    (["1", "2", "3"], "expected \\[lowest, highest\\]"),
    ("20000..200000", "expected \\[lowest, highest\\]"),
    (["1" * 41, "2"], "more than 40 characters"),
])
def test_absurd_rate_bounds_are_refused(pair, words):
    with pytest.raises(BundleError, match=words):
        verify(sign_payload(payload(rate_bounds={"EUR": pair}), KEY))


@pytest.mark.parametrize("fixed_fee, min_buy, accepted", [
    (0, 500, True), (499, 500, True), (500, 500, False), (501, 500, False), (1, 0, False), (0, 0, True),
])
def test_fixed_fee_must_stay_below_the_minimum_purchase(fixed_fee, min_buy, accepted):
    doc = sign_payload(payload(fixed_fee_minor=fixed_fee, min_buy_minor=min_buy), KEY)
    if accepted:
        assert verify(doc).fixed_fee == Fiat(fixed_fee, "EUR")
    else:
        with pytest.raises(BundleError, match="fixed_fee_minor.*must be below min_buy_minor"):
            verify(doc)


def test_quote_age_limit_defaults_to_60_s():
    assert verify(sign_payload(payload(), KEY)).kiosk_settings().quote_max_age_s == 60


@pytest.mark.parametrize("age, accepted", [(10, True), (45, True), (600, True), (9, False), (601, False),
                                           (0, False), (-5, False), ("60", False), (True, False)])
def test_quote_age_limit_is_signed_within_a_sane_range(age, accepted):
    doc = sign_payload(payload(quote_max_age_s=age), KEY)
    if accepted:
        assert verify(doc).kiosk_settings().quote_max_age_s == age
    else:
        with pytest.raises(BundleError, match="quote_max_age_s"):
            verify(doc)


def test_kiosk_settings_carry_fee_age_bounds_and_offline_limit():
    doc = sign_payload(payload(fixed_fee_minor=150, quote_max_age_s=30, max_offline_s=900,
                               rate_bounds={"EUR": ["30000", "90000"], "USD": ["1", "2"]}), KEY)
    settings = verify(doc).kiosk_settings()
    assert settings.fixed_fee == Fiat(150, "EUR")
    assert settings.quote_max_age_s == 30
    assert settings.rate_bounds == (Decimal("30000"), Decimal("90000"))  # the kiosk's currency only
    assert settings.max_offline_s == 900


def test_kiosk_settings_without_a_fixed_fee_say_none():
    settings = verify(sign_payload(payload(), KEY)).kiosk_settings()
    assert settings.fixed_fee is None and settings.max_offline_s == 300


# ---- atm cas check names the problem --------------------------------------------------

def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="atm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args), capsys.readouterr().out


def _publish_without_bounds(operator):
    settings = {key: value for key, value in operator.settings.items() if key != "rate_bounds"}
    operator.cas.publish_bundle(operator.sign_bundle(version=2, settings=settings))


async def test_check_reports_a_signed_bundle_without_bounds(operator):
    _publish_without_bounds(operator)
    report = await run_check(operator.state_dir)
    assert (report["ok"], report["signature"], report["config_version"]) == (False, "valid", 2)
    assert ["rate_bounds" in p and "EUR" in p for p in report["problems"]] == [True]


@pytest.mark.parametrize("as_json", [True, False])
async def test_check_command_names_the_missing_bounds(operator, tmp_path, capsys, as_json):
    _publish_without_bounds(operator)
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[cas]\nstate_dir = "{operator.state_dir}"\n')
    argv = ["cas", "check", "--config", str(config), "--timeout", "5"] + (["--json"] if as_json else [])
    code, out = await asyncio.to_thread(run_cli, argv, capsys)
    assert code == 1
    text = " ".join(json.loads(out)["problems"]) if as_json else out
    assert "no signed rate range for the kiosk's currency EUR" in text


async def test_client_refuses_a_bundle_without_bounds_and_keeps_the_one_in_force(operator, client):
    await client.poll_once()
    _publish_without_bounds(operator)
    await client.poll_once()
    assert client.settings().version == 1
    assert [(r["what"], r["reason"]) for r in client.status()["refusals"]] == [("bundle", "no-rate-bounds")]


# ---- the parser under any input -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) |
    st.sampled_from(["0", "-1", "NaN", "1E-30", "1E+99999", "\ud800", "60000", "20000"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@hyp_settings(max_examples=300, deadline=None)
@given(st.sampled_from(["rate_bounds", "quote_max_age_s", "fixed_fee_minor", "min_buy_minor", "currency",
                        "max_offline_s"]), json_values)
def test_new_bundle_fields_given_anything_give_a_bundle_error_or_sane_settings(field, value):
    doc = payload()
    doc["settings"][field] = value
    # Signed or only signed-looking: the judgement must be typed either way.
    for signed in (True, False):
        try:
            document = sign_payload(doc, KEY) if signed else {"payload": doc, "sig": "A" * 86}
        except Exception:
            continue  # the operator's own tool cannot sign it (a surrogate); the second round covers it
        try:
            settings = verify(document).kiosk_settings()
        except BundleError:
            continue
        low, high = settings.rate_bounds
        assert Decimal("0.01") <= low <= high <= Decimal(10) ** 12
        assert 10 <= settings.quote_max_age_s <= 600
        assert settings.fixed_fee is None or settings.fixed_fee < settings.min_buy


def test_bundle_signed_by_another_key_with_bounds_is_still_refused():
    with pytest.raises(BundleError) as info:
        verify(sign_payload(payload(), generate_operator_key()))
    assert info.value.reason == "bad-signature"


async def test_simulated_operator_signs_default_bounds_around_its_rate_and_refuses_a_bad_publish(operator):
    from atm.cas.bundle import parse_payload
    bundle = parse_payload(operator.cas.current_bundle()["payload"])
    assert bundle.rate_bounds == {"EUR": (Decimal("6000"), Decimal("600000"))}
    with pytest.raises(BundleError, match="fixed_fee_minor"):
        operator.publish(fixed_fee_minor=500)
    assert operator.version == 1 and len(operator.cas.bundles) == 1
