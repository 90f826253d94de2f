"""Sell invoices: addresses checked against the signed xpub, simulated chain payments."""

from __future__ import annotations

import pytest

from atm.cas.interface import CasRefused
from atm.cas.wallet import deposit_address
from hal.money import Fiat, Sats


async def test_sell_invoice_address_is_the_operators_own(operator, client):
    await client.poll_once()
    invoice = await client.sell_invoice("sell-1", Fiat(10_000, "EUR"), Sats(16_000))
    assert invoice.address == deposit_address(operator.xpub, "regtest", invoice.index)
    again = await client.sell_invoice("sell-1", Fiat(10_000, "EUR"), Sats(16_000))
    assert again == invoice


@pytest.mark.parametrize("paid, confirmations, late, state", [
    (0, 0, False, "unpaid"),
    (16_000, 0, False, "seen"),
    (16_000, 1, False, "confirmed"),
    (15_000, 1, False, "underpaid"),
    (17_000, 1, False, "overpaid"),
    (16_000, 1, True, "late"),
])
async def test_sell_invoice_reports_the_simulated_chain_payment(operator, client, paid, confirmations, late, state):
    await client.poll_once()
    await client.sell_invoice("sell-2", Fiat(10_000, "EUR"), Sats(16_000))
    if paid:
        operator.cas.pay_invoice("sell-2", paid, confirmations=confirmations, late=late)
    status = await client.sell_invoice_status("sell-2")
    assert (status.state, status.received_sats, status.confirmations) == (state, paid, confirmations)


async def test_sell_invoice_for_another_amount_is_refused(operator, client):
    await client.poll_once()
    await client.sell_invoice("sell-3", Fiat(10_000, "EUR"), Sats(16_000))
    with pytest.raises(CasRefused, match="asks 16000 sat"):
        await client.sell_invoice("sell-3", Fiat(10_000, "EUR"), Sats(15_000))
    assert client.status()["refusals"][0]["reason"] == "wrong-amount"
