"""Sell deposit addresses derive from the signed xpub, or are refused."""

from __future__ import annotations

import pytest
from embit import bip32, script
from embit.networks import NETWORKS
from hypothesis import given, settings, strategies as st

from atm.cas.wallet import WalletError, address_derives_from_xpub, deposit_address, parse_xpub

ROOT = bip32.HDKey.from_seed(bytes(32), version=NETWORKS["regtest"]["xprv"])
ACCOUNT = ROOT.derive("m/84h/1h/0h")
XPUB = ACCOUNT.to_public().to_string(version=NETWORKS["regtest"]["zpub"])


def test_deposit_address_is_the_wallets_own_receive_address():
    expected = script.p2wpkh(ACCOUNT.derive([0, 7]).key).address(NETWORKS["regtest"])
    assert deposit_address(XPUB, "regtest", 7) == expected
    assert address_derives_from_xpub(expected, XPUB, "regtest", 7)


def test_address_from_another_index_or_wallet_does_not_match():
    assert not address_derives_from_xpub(deposit_address(XPUB, "regtest", 8), XPUB, "regtest", 7)
    other = bip32.HDKey.from_seed(bytes([1]) * 32, version=NETWORKS["regtest"]["xprv"]).to_public().to_string()
    assert not address_derives_from_xpub(deposit_address(other, "regtest", 7), XPUB, "regtest", 7)


def test_private_extended_key_is_refused():
    with pytest.raises(WalletError, match="PRIVATE"):
        parse_xpub(ACCOUNT.to_string(), "regtest")


def test_hardened_or_negative_index_is_refused():
    for index in (-1, 2**31, True):
        with pytest.raises(WalletError, match="index"):
            deposit_address(XPUB, "regtest", index)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=130), st.sampled_from(["main", "test", "regtest", "signet", "moon"]))
def test_xpub_parser_garbage_raises_only_wallet_error(text, network):
    with pytest.raises(WalletError):
        parse_xpub(text, network)
