"""The stand-in CAS of simulate mode sells too: addresses from its own wallet, payments
on a simulated chain proven by the same judgement as CasClient's, and a chain and
wallet that survive a restart of the kiosk."""

from __future__ import annotations

import pytest

from atm.cas.interface import CasRefused, PaymentRefused
from atm.cas.standin import StandinCas, standin_settings
from atm.cas.wallet import address_derives_from_xpub
from hal.money import Fiat, Sats

SELL = {"min_sell_minor": 2_000, "max_sell_minor": 50_000, "fee_percent": "5", "fixed_fee_minor": 0,
        "zero_conf_cap_sats": 50_000, "confirmations_required": 2, "invoice_ttl_s": 900}


def make(tmp_path, sell=SELL):
    return StandinCas(tmp_path / "ledger.sqlite", sell=sell,
                      settings=standin_settings(Fiat(500, "EUR"), Fiat(100_000, "EUR"), "5", None))


async def test_standin_without_sell_rules_does_not_sell(tmp_path):
    standin = make(tmp_path, sell=None)
    assert standin.settings().sell is None
    with pytest.raises(CasRefused, match="does not sell"):
        await standin.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))


async def test_standin_sell_settings_carry_its_chains_checkpoint(tmp_path):
    standin = make(tmp_path)
    sell = standin.settings().sell
    assert sell.checkpoint == standin.chain.checkpoint and sell.zero_conf_cap_sats == 50_000
    invoice = await standin.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))
    assert address_derives_from_xpub(invoice.address, standin.settings().wallet["xpub"], "regtest", invoice.index)
    assert await standin.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000)) == invoice


async def test_standin_proves_small_payments_at_once_and_large_ones_after_confirmations(tmp_path):
    standin = make(tmp_path)
    await standin.sell_invoice("small", Fiat(5_000, "EUR"), Sats(10_000))
    await standin.sell_invoice("large", Fiat(40_000, "EUR"), Sats(60_000))
    assert (await standin.sell_payment("small")).state == "waiting"
    standin.pay_invoice("small", 10_000)
    standin.pay_invoice("large", 60_000)
    assert (await standin.sell_payment("small")).state == "proven"
    assert (await standin.sell_payment("large")).detail == "0 of 2 confirmations"
    standin.mine(2)
    large = await standin.sell_payment("large")
    assert large.state == "proven" and large.proof.confirmations == 2 and large.in_time


async def test_standin_expiry_and_late_payment_follow_the_kiosks_clock(tmp_path):
    standin = make(tmp_path)
    await standin.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))
    standin.clock = lambda: 10**10
    assert (await standin.sell_payment("s-1")).state == "expired"
    standin.pay_invoice("s-1", 10_000)
    late = await standin.sell_payment("s-1")
    assert late.state == "proven" and late.in_time is False


async def test_standin_underpayment_is_refused_and_alerted(tmp_path):
    standin = make(tmp_path)
    await standin.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))
    standin.pay_invoice("s-1", 9_000, confirmations=2)
    with pytest.raises(PaymentRefused) as info:
        await standin.sell_payment("s-1")
    assert info.value.reason == "underpaid"
    assert [(a["kind"], a["detail"]["reason"]) for a in standin.alerts()] == [("payment_refused", "underpaid")]


async def test_standin_chain_and_wallet_survive_a_restart(tmp_path):
    standin = make(tmp_path)
    invoice = await standin.sell_invoice("s-1", Fiat(40_000, "EUR"), Sats(60_000))
    txid = standin.pay_invoice("s-1", 60_000, confirmations=1)
    again = make(tmp_path)
    assert again.settings().wallet == standin.settings().wallet
    assert again.settings().sell.checkpoint == standin.settings().sell.checkpoint
    assert await again.sell_invoice("s-1", Fiat(40_000, "EUR"), Sats(60_000)) == invoice
    assert (await again.sell_payment("s-1")).detail == "1 of 2 confirmations"
    again.mine(1)
    proven = await again.sell_payment("s-1")
    assert proven.state == "proven" and proven.proof.txid == txid
