"""Configuration bundles: only an operator-signed, newer bundle for this kiosk is accepted."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from embit import bip32
from embit.networks import NETWORKS
from hypothesis import given, settings, strategies as st

from atm.cas.bundle import BUNDLE_FORMAT, BUNDLE_TYPE, BundleError, verify_bundle
from atm.cas.signing import canonical, generate_operator_key, sign_payload
from hal.money import Fiat

KEY = generate_operator_key()
ROOT = bip32.HDKey.from_seed(bytes(range(32)), version=NETWORKS["regtest"]["xprv"])
XPUB = ROOT.derive("m/84h/1h/0h").to_public().to_string(version=NETWORKS["regtest"]["zpub"])


def payload(version: int = 2, kiosk_id: str = "kiosk-1", **settings_changes) -> dict:
    settings = {"currency": "EUR", "min_buy_minor": 500, "max_buy_minor": 50_000, "fee_percent": "4.5",
                "rate_bounds": {"EUR": ["20000", "200000"]}, "wallet": {"xpub": XPUB, "network": "regtest"}}
    settings.update(settings_changes)
    return {"type": BUNDLE_TYPE, "format": BUNDLE_FORMAT, "kiosk_id": kiosk_id, "version": version,
            "issued_at": 1_700_000_000, "settings": settings}


def verify(doc, current=1, kiosk_id="kiosk-1"):
    return verify_bundle(doc, KEY.public_key(), kiosk_id=kiosk_id, current_version=current)


def test_signed_newer_bundle_for_this_kiosk_gives_its_settings():
    bundle = verify(sign_payload(payload(), KEY))
    settings = bundle.kiosk_settings()
    assert (settings.version, settings.min_buy, settings.max_buy) == (2, Fiat(500, "EUR"), Fiat(50_000, "EUR"))
    assert settings.fee_percent == Decimal("4.5")
    assert settings.wallet["xpub"] == XPUB


def test_bundle_given_as_bytes_is_verified_the_same():
    assert verify(json.dumps(sign_payload(payload(), KEY)).encode()).version == 2


@pytest.mark.parametrize("doc, reason", [
    ({"payload": payload()}, "unsigned"),
    (sign_payload(payload(), generate_operator_key()), "bad-signature"),
    (sign_payload(payload(version=1), KEY), "old-version"),
    (sign_payload(payload(version=0), KEY), "malformed"),
    (sign_payload(payload(kiosk_id="kiosk-2"), KEY), "other-kiosk"),
])
def test_bundle_is_refused_with_the_reason(doc, reason):
    with pytest.raises(BundleError) as info:
        verify(doc)
    assert info.value.reason == reason


def test_replayed_bundle_of_the_version_in_force_is_refused():
    doc = sign_payload(payload(version=5), KEY)
    assert verify(doc, current=4).version == 5
    with pytest.raises(BundleError, match="replayed or rolled back"):
        verify(doc, current=5)


def test_changed_field_after_signing_breaks_the_signature():
    doc = sign_payload(payload(), KEY)
    doc["payload"]["settings"]["wallet"]["xpub"] = XPUB[:-1] + ("A" if XPUB[-1] != "A" else "B")
    with pytest.raises(BundleError) as info:
        verify(doc)
    assert info.value.reason == "bad-signature"


@pytest.mark.parametrize("changes, words", [
    ({"fee_percent": 1}, None),
    ({"fee_percent": "100"}, "fee_percent"),
    ({"min_buy_minor": 600, "max_buy_minor": 500}, "min_buy_minor <= max_buy_minor"),
    ({"currency": "euro"}, "settings"),
    ({"wallet": {"xpub": ROOT.to_string(), "network": "regtest"}}, "PRIVATE"),
    ({"wallet": {"xpub": XPUB, "network": "main"}}, "not a public key for network"),
    ({"wallet": {"xpub": XPUB, "network": "regtest", "invalid_payment": "send-to-cas"}}, "invalid_payment"),
])
def test_settings_are_validated_before_use(changes, words):
    doc = sign_payload(payload(**changes), KEY)
    if words is None:
        assert verify(doc).fee_percent == Decimal(1)
        return
    with pytest.raises(BundleError, match=words):
        verify(doc)


def test_signed_trust_changes_are_parsed():
    pins = ["ab" * 32]
    new_key = generate_operator_key()
    from atm.cas.signing import public_key_text
    doc = payload()
    doc["trust"] = {"cas_pins": pins, "operator_key": public_key_text(new_key)}
    bundle = verify(sign_payload(doc, KEY))
    assert bundle.cas_pins == tuple(pins)
    assert bundle.operator_key == public_key_text(new_key)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_bundle_parser_given_bytes_raises_only_bundle_error(data):
    with pytest.raises(BundleError):
        verify(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["type", "format", "kiosk_id", "version", "issued_at", "settings"]) |
       st.sampled_from(["currency", "min_buy_minor", "max_buy_minor", "fee_percent", "fixed_fee_minor",
                        "coins", "wallet", "technician_pin_hash", "max_offline_s"]).map(lambda k: "settings." + k),
       json_values)
def test_signed_bundle_with_any_field_replaced_raises_only_bundle_error(path, value):
    doc_payload = copy.deepcopy(payload())
    target = doc_payload
    *parents, leaf = path.split(".")
    for part in parents:
        target = target[part]
    target[leaf] = value
    try:
        canonical(doc_payload)
    except Exception:
        return
    try:
        bundle = verify(sign_payload(doc_payload, KEY))
    except BundleError:
        return
    # Whatever got through is well-typed money and a version above the one in force.
    assert bundle.version > 1 and bundle.min_buy <= bundle.max_buy
    assert isinstance(bundle.min_buy.minor, int) and isinstance(bundle.fee_percent, Decimal)
