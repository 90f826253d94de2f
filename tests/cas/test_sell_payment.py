"""Sell payments proven by the kiosk (CasClient.sell_payment) against the TLS CAS
simulator's regtest-style chain: unconfirmed payments count up to the signed cap,
larger ones wait for the signed confirmations, and the kiosk's own clock decides
expiry and lateness. The CAS's "state", "received_sats" and "confirmations" are
never used for money (hostile claims: tests/cas/test_client_hostile.py)."""

from __future__ import annotations

import pytest

from atm.cas.client import CasClient
from atm.cas.errors import NotConfigured
from atm.cas.interface import CasRefused, PaymentRefused
from hal.money import Fiat, Sats
from simulators.cas.harness import DEFAULT_SELL, SimulatedOperator

from .conftest import FAST

CAP = DEFAULT_SELL["zero_conf_cap_sats"]          # 50,000 sats
NEEDED = DEFAULT_SELL["confirmations_required"]   # 2
TTL = DEFAULT_SELL["invoice_ttl_s"]


class Clock:
    """The kiosk's wall clock, moved by the test instead of waiting."""

    def __init__(self) -> None:
        import time
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def seller(operator, clock):
    cas_client = operator.client(clock=clock, **FAST)
    await cas_client.poll_once()
    yield cas_client
    await cas_client.stop()


async def test_signed_sell_settings_reach_the_kiosk(operator, seller):
    sell = seller.settings().sell
    assert sell is not None
    assert (sell.zero_conf_cap_sats, sell.confirmations_required, sell.invoice_ttl_s) == (CAP, NEEDED, TTL)
    assert sell.checkpoint == operator.cas.chain.checkpoint
    assert (sell.min_sell, sell.max_sell) == (Fiat(2_000, "EUR"), Fiat(50_000, "EUR"))


async def test_unpaid_invoice_is_waiting(seller):
    await seller.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))
    payment = await seller.sell_payment("s-1")
    assert (payment.state, payment.proof, payment.in_time) == ("waiting", None, True)


async def test_unconfirmed_payment_under_the_cap_is_proven_on_the_raw_transaction(operator, seller):
    await seller.sell_invoice("s-1", Fiat(5_000, "EUR"), Sats(10_000))
    tx = operator.cas.pay_invoice("s-1", 10_000)
    payment = await seller.sell_payment("s-1")
    assert payment.state == "proven" and payment.in_time
    assert (payment.proof.txid, payment.proof.paid_sats, payment.proof.confirmations) == (
        tx.txid().hex(), 10_000, 0)


async def test_payment_above_the_cap_waits_for_the_signed_confirmations(operator, seller):
    sats = CAP + 1
    await seller.sell_invoice("s-2", Fiat(30_000, "EUR"), Sats(sats))
    operator.cas.pay_invoice("s-2", sats)
    first = await seller.sell_payment("s-2")
    assert (first.state, first.detail) == ("waiting", f"0 of {NEEDED} confirmations")
    operator.cas.mine(1)
    second = await seller.sell_payment("s-2")
    assert (second.state, second.detail) == ("waiting", f"1 of {NEEDED} confirmations")
    operator.cas.mine(1)
    proven = await seller.sell_payment("s-2")
    assert proven.state == "proven" and proven.proof.confirmations == NEEDED and proven.in_time


async def test_cas_saying_confirmed_does_not_prove_an_unconfirmed_payment_above_the_cap(operator, seller):
    """The CAS's own confirmations field is a claim: with the transaction still in the
    mempool the kiosk waits, whatever the field says. Mutation caught: trusting
    status.confirmations / state "confirmed" instead of the evidence."""
    sats = CAP + 1
    await seller.sell_invoice("s-3", Fiat(30_000, "EUR"), Sats(sats))
    operator.cas.pay_invoice("s-3", sats)
    operator.cas.invoices["s-3"].confirmations = 6       # the CAS's word, not the chain's
    status = await seller.sell_invoice_status("s-3")
    assert (status.state, status.confirmations) == ("confirmed", 6)
    payment = await seller.sell_payment("s-3")
    assert payment.state == "waiting" and payment.proof is None


async def test_invoice_past_the_kiosks_expiry_with_nothing_seen_is_expired(seller, clock):
    await seller.sell_invoice("s-4", Fiat(5_000, "EUR"), Sats(10_000))
    clock.now += TTL + 1
    payment = await seller.sell_payment("s-4")
    assert (payment.state, payment.proof, payment.in_time) == ("expired", None, False)


async def test_payment_first_seen_after_the_expiry_is_proven_but_late(operator, seller, clock):
    await seller.sell_invoice("s-5", Fiat(5_000, "EUR"), Sats(10_000))
    clock.now += TTL + 1
    assert (await seller.sell_payment("s-5")).state == "expired"
    operator.cas.pay_late("s-5", 10_000)
    payment = await seller.sell_payment("s-5")
    assert payment.state == "proven" and payment.in_time is False


async def test_payment_seen_in_time_stays_in_time_when_it_confirms_after_the_expiry(operator, seller, clock):
    sats = CAP + 1
    await seller.sell_invoice("s-6", Fiat(30_000, "EUR"), Sats(sats))
    operator.cas.pay_invoice("s-6", sats)
    assert (await seller.sell_payment("s-6")).in_time
    clock.now += TTL + 1
    operator.cas.mine(NEEDED)
    payment = await seller.sell_payment("s-6")
    assert payment.state == "proven" and payment.in_time


async def test_a_cas_hiding_a_payment_until_after_the_expiry_cannot_make_it_in_time(operator, seller, clock):
    """The kiosk counts its own first sighting against its own expiry (never later than
    the signed invoice_ttl_s after it accepted the invoice): a payment it never saw in
    time is late, whatever the CAS's invoice says. Mutation caught: taking the CAS's
    expires_at as the expiry (a CAS stretching the invoice to make a late payment
    count as in time)."""
    operator.cas.invoice_ttl_s = 10 * TTL                  # the CAS hands out a far longer life
    await seller.sell_invoice("s-7", Fiat(5_000, "EUR"), Sats(10_000))
    clock.now += TTL + 1
    operator.cas.pay_invoice("s-7", 10_000)
    assert operator.cas.invoices["s-7"].state(clock.now) == "seen"
    payment = await seller.sell_payment("s-7")
    assert payment.state == "proven" and payment.in_time is False


async def test_first_sighting_outlives_a_restart_of_the_kiosk(operator, seller, clock):
    """The kiosk stops after it saw the payment in time and starts again after the expiry,
    when the payment confirms. Mutation caught: keeping the first sighting in memory
    only (the restarted kiosk would call a payment it saw in time late)."""
    sats = CAP + 1
    await seller.sell_invoice("s-8", Fiat(30_000, "EUR"), Sats(sats))
    operator.cas.pay_invoice("s-8", sats)
    assert (await seller.sell_payment("s-8")).state == "waiting"
    # The kiosk dies here without stopping anything (the fixture closes the old client later).
    clock.now += TTL + 1
    operator.cas.mine(NEEDED)
    again = operator.client(clock=clock, **FAST)
    try:
        payment = await again.sell_payment("s-8")
    finally:
        await again.stop()
    assert payment.state == "proven" and payment.in_time


async def test_underpayment_is_refused_as_a_warning(operator, seller):
    await seller.sell_invoice("s-9", Fiat(5_000, "EUR"), Sats(10_000))
    operator.cas.pay_invoice("s-9", 9_999, confirmations=3)
    with pytest.raises(PaymentRefused) as info:
        await seller.sell_payment("s-9")
    assert info.value.reason == "underpaid"
    while seller.queue_length():
        await seller.flush_once()
    assert [(a["kind"], a["severity"], a["detail"]["reason"]) for a in operator.cas.alerts()] == [
        ("payment_refused", "warning", "underpaid")]


async def test_payment_of_an_invoice_the_kiosk_never_accepted_counts_for_nothing(operator, seller):
    with pytest.raises(CasRefused, match="never accepted"):
        await seller.sell_payment("not-ours")


async def test_without_a_signed_sell_table_the_kiosk_does_not_sell(tmp_path):
    async with SimulatedOperator(tmp_path, settings={"sell": None}) as op:
        cas_client: CasClient = op.client(**FAST)
        try:
            await cas_client.poll_once()
            assert cas_client.settings().sell is None
            with pytest.raises(NotConfigured, match="no sell rules"):
                await cas_client.sell_payment("s-1")
        finally:
            await cas_client.stop()


async def test_a_newer_signed_checkpoint_is_proven_from_with_the_headers_after_it(operator, seller):
    """The operator signs a later block as the checkpoint; the CAS then sends only the
    headers after it, and the kiosk proves the payment from the new checkpoint."""
    operator.cas.mine(3)
    chain = operator.cas.chain
    newer = {"height": chain.tip_height, "block_hash": chain.blocks[-1].hash[::-1].hex(), "max_bits": "1f7fffff"}
    operator.publish(sell={**operator.settings["sell"], "checkpoint": newer})
    await seller.poll_once()
    assert seller.settings().sell.checkpoint.height == chain.tip_height
    sats = CAP + 1
    await seller.sell_invoice("s-c", Fiat(30_000, "EUR"), Sats(sats))
    operator.cas.pay_invoice("s-c", sats, confirmations=NEEDED)
    status = await seller.sell_invoice_status("s-c")
    assert len(status.payment.headers) == NEEDED
    proven = await seller.sell_payment("s-c")
    assert proven.state == "proven" and proven.proof.confirmations == NEEDED
