"""The signed sell table (settings.sell): every field checked with a BundleError that
names the key, no table means the kiosk does not sell, and the checkpoint's minimum
work is given as a target or as compact bits, never above the network's own limit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from atm.cas.bundle import BundleError, parse_payload
from atm.cas.payment_proof import Checkpoint, target_from_bits
from atm.cas.signing import sign_payload
from hal.money import Fiat
from simulators.cas.chain import DEFAULT_BITS, EASY_BITS

from .test_bundle import KEY, payload, verify

HASH = "00" * 31 + "ab"


def sell(**changes):
    table = {"min_sell_minor": 2_000, "max_sell_minor": 50_000, "fee_percent": "6.5", "fixed_fee_minor": 100,
             "zero_conf_cap_sats": 40_000, "confirmations_required": 2, "invoice_ttl_s": 900,
             "checkpoint": {"height": 800_000, "block_hash": HASH, "max_bits": "1f7fffff"}}
    table.update(changes)
    return {key: value for key, value in table.items() if value is not ...}


def checkpoint(**changes):
    table = {"height": 800_000, "block_hash": HASH, "max_bits": "1f7fffff"}
    table.update(changes)
    return {key: value for key, value in table.items() if value is not ...}


def settings_of(sell_table):
    """The fields alone (signatures: test_bundle.py; a float cannot even be signed)."""
    return parse_payload(payload(sell=sell_table)).kiosk_settings().sell


def test_signed_sell_table_becomes_the_kiosks_sell_settings():
    got = verify(sign_payload(payload(sell=sell()), KEY)).kiosk_settings().sell
    assert (got.min_sell, got.max_sell, got.fixed_fee) == (Fiat(2_000, "EUR"), Fiat(50_000, "EUR"), Fiat(100, "EUR"))
    assert (got.fee_percent, got.zero_conf_cap_sats, got.confirmations_required, got.invoice_ttl_s) == (
        Decimal("6.5"), 40_000, 2, 900)
    assert got.checkpoint == Checkpoint(800_000, bytes.fromhex(HASH)[::-1], target_from_bits(DEFAULT_BITS))
    assert (got.invalid_payment, got.late_payment) == ("hold", "hold")


def test_no_sell_table_means_the_kiosk_does_not_sell():
    assert verify(sign_payload(payload(), KEY)).kiosk_settings().sell is None
    assert settings_of(None) is None


def test_minimum_work_as_a_target_equals_the_same_work_as_bits():
    target = format(target_from_bits(DEFAULT_BITS), "x")
    by_target = settings_of(sell(checkpoint=checkpoint(max_bits=..., max_target=target)))
    assert by_target.checkpoint == settings_of(sell()).checkpoint


def test_payment_handling_comes_from_the_signed_wallet():
    doc = payload(sell=sell())
    doc["settings"]["wallet"].update(invalid_payment="refund", late_payment="refund")
    got = verify(sign_payload(doc, KEY)).kiosk_settings().sell
    assert (got.invalid_payment, got.late_payment) == ("refund", "refund")


@pytest.mark.parametrize("table, words", [
    (sell(min_sell_minor=...), "settings.sell.min_sell_minor: missing"),
    (sell(min_sell_minor="2000"), "settings.sell.min_sell_minor: expected"),
    (sell(min_sell_minor=0), "0 < min_sell_minor <= max_sell_minor"),
    (sell(max_sell_minor=1_000), "0 < min_sell_minor <= max_sell_minor"),
    (sell(fixed_fee_minor=2_000), "settings.sell.fixed_fee_minor"),
    (sell(fixed_fee_minor=-1), "settings.sell.fixed_fee_minor"),
    (sell(fee_percent=6.5), "settings.sell.fee_percent: expected"),
    (sell(fee_percent="100"), "settings.sell.fee_percent: expected 0 <= fee < 100"),
    (sell(fee_percent="NaN"), "settings.sell.fee_percent"),
    (sell(zero_conf_cap_sats=-1), "settings.sell.zero_conf_cap_sats"),
    (sell(zero_conf_cap_sats=True), "settings.sell.zero_conf_cap_sats: expected"),
    (sell(confirmations_required=0), "settings.sell.confirmations_required"),
    (sell(confirmations_required=101), "settings.sell.confirmations_required"),
    (sell(invoice_ttl_s=59), "settings.sell.invoice_ttl_s"),
    (sell(invoice_ttl_s=86_401), "settings.sell.invoice_ttl_s"),
    (sell(checkpoint=...), "settings.sell.checkpoint: missing"),
    (sell(payout_address="bcrt1q..."), "settings.sell: unknown key 'payout_address'"),
    (sell(checkpoint=checkpoint(height=-1)), "settings.sell.checkpoint.height"),
    (sell(checkpoint=checkpoint(height="800000")), "settings.sell.checkpoint.height: expected"),
    (sell(checkpoint=checkpoint(block_hash="ab" * 31)), "settings.sell.checkpoint.block_hash"),
    (sell(checkpoint=checkpoint(block_hash="zz" * 32)), "settings.sell.checkpoint.block_hash"),
    (sell(checkpoint=checkpoint(max_bits=...)), "exactly one of max_target"),
    (sell(checkpoint=checkpoint(max_target="7f")), "exactly one of max_target"),
    (sell(checkpoint=checkpoint(max_bits="1f7fffff00")), "settings.sell.checkpoint.max_bits"),
    (sell(checkpoint=checkpoint(max_bits="1f800000")), "settings.sell.checkpoint.max_bits"),
    (sell(checkpoint=checkpoint(max_bits="00000000")), "minimum work must be a target 0 < target"),
    (sell(checkpoint=checkpoint(max_bits="21010000")), "regtest network's own limit"),
    (sell(checkpoint=checkpoint(extra=1)), "settings.sell.checkpoint: unknown key 'extra'"),
    ([1, 2], "settings.sell: expected"),
])
def test_bad_sell_table_is_refused_naming_the_key(table, words):
    with pytest.raises(BundleError, match=words.replace("(", r"\(").replace(".", r"\.")):
        settings_of(table)


def test_checkpoint_work_above_the_main_networks_limit_is_refused():
    """Regtest-work headers (EASY_BITS) must never count on a main-network kiosk."""
    doc = payload(sell=sell(checkpoint=checkpoint(max_bits=format(EASY_BITS, "08x"))))
    from .test_bundle import ROOT
    from embit.networks import NETWORKS
    doc["settings"]["wallet"] = {"network": "main", "xpub": ROOT.derive("m/84h/0h/0h").to_public().to_string(
        version=NETWORKS["main"]["zpub"])}
    with pytest.raises(BundleError, match="main network's own limit"):
        verify(sign_payload(doc, KEY))


def test_selling_without_a_signed_wallet_is_refused():
    doc = payload(sell=sell())
    del doc["settings"]["wallet"]
    with pytest.raises(BundleError, match="selling needs settings.wallet") as info:
        verify(sign_payload(doc, KEY))
    assert info.value.reason == "no-wallet"


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3),
                           max_leaves=10)
sell_fields = st.sampled_from(["min_sell_minor", "max_sell_minor", "fee_percent", "fixed_fee_minor",
                               "zero_conf_cap_sats", "confirmations_required", "invoice_ttl_s", "checkpoint"])
checkpoint_fields = st.sampled_from(["height", "block_hash", "max_target", "max_bits"])


@hyp_settings(max_examples=300, deadline=None)
@given(st.dictionaries(sell_fields, json_values, max_size=4), st.dictionaries(checkpoint_fields, json_values,
                                                                                 max_size=3))
def test_any_sell_table_is_accepted_or_refused_by_name(sell_changes, checkpoint_changes):
    """Whatever the bundle holds there: sell settings or a BundleError, never another exception."""
    table = sell(**sell_changes)
    if isinstance(table.get("checkpoint"), dict):
        table["checkpoint"] = {**table["checkpoint"], **checkpoint_changes}
    try:
        got = parse_payload(payload(sell=table)).sell
    except BundleError as exc:
        assert str(exc).startswith("bundle settings.sell")
    else:
        assert 0 < got.min_sell.minor <= got.max_sell.minor and got.confirmations_required >= 1
        assert 0 < got.checkpoint.max_target <= 0x7FFFFF << 232
