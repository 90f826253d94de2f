"""The sale at kiosk level against the CAS simulator through the paired CasClient: the
payment is proven by the kiosk from the simulator's regtest-style chain, and every
hostile claim (no transaction, another address, a wrong merkle branch, too little work,
a deposit address from another wallet) is refused and alerted with nothing dispensed."""

from __future__ import annotations

import pytest

from hal import Fiat
from simulators.cas.harness import SimulatedOperator
from tests.atm.sell_world import SellKiosk

pytestmark = pytest.mark.asyncio

FAST = {"poll_interval_s": 0.05, "timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}


@pytest.fixture
async def operator(tmp_path):
    op = SimulatedOperator(tmp_path / "operator", kiosk_id="kiosk-1", rates={"EUR": "50000"})
    await op.start()
    yield op
    await op.stop()


@pytest.fixture
async def client(operator):
    cas = operator.client(**FAST)
    await cas.start()
    yield cas
    await cas.stop()


def alerts(k: SellKiosk, kind: str) -> list[str]:
    return [f["data"] for f in k.journal.facts("alert") if f'"alert": "{kind}"' in f["data"]]


async def test_a_payment_proven_from_the_simulated_chain_pays_the_cash(tmp_path, operator, client):
    async with SellKiosk(tmp_path, cas=client) as k:
        await k.wait_for(lambda: k.kiosk.can_start_sell())
        tx = await k.sell(4000)
        operator.cas.pay_invoice(tx, k.journal.deposit(tx)["sats_due"], confirmations=2)
        await k.wait_for(lambda: k.screen == "sell_receipt", timeout=30)
        assert k.journal.dispensed(tx) == Fiat(4000, "EUR") and k.exited_notes() > 0
        deposit = k.journal.deposit(tx)
        assert deposit["state"] == "proven" and deposit["confirmations"] >= 2 and len(deposit["txid"]) == 64


@pytest.mark.parametrize("mode", ["claim-without-tx", "pay-other-address", "wrong-merkle", "weak-headers"])
async def test_a_hostile_payment_claim_is_refused_alerted_and_dispenses_nothing(tmp_path, operator, client, mode):
    async with SellKiosk(tmp_path, cas=client) as k:
        await k.wait_for(lambda: k.kiosk.can_start_sell())
        tx = await k.sell(4000)
        operator.cas.set_hostile(mode)
        await k.wait_for(lambda: len(alerts(k, "payment_refused")) >= 2, timeout=30)
        assert k.screen == "sell_pay"
        assert k.exited_notes() == 0 and k.journal.dispenses_for(tx) == []
        assert k.journal.deposit(tx)["state"] == "invoiced"
        await k.act("cancel")                     # the customer gives up: a code, still nothing paid
        await k.wait_for(lambda: k.screen == "sell_receipt")
        assert k.exited_notes() == 0 and k.journal.owed(tx).minor == 0


async def test_a_deposit_address_from_another_wallet_stops_the_sale(tmp_path, operator, client):
    async with SellKiosk(tmp_path, cas=client) as k:
        await k.wait_for(lambda: k.kiosk.can_start_sell())
        operator.cas.set_hostile("foreign-sell-address")
        tx = await k.sell(4000)
        assert k.screen == "sell_receipt" and "not available" in k.data["message"]
        assert k.journal.transaction(tx)["status"] == "canceled" and k.journal.deposit(tx)["address"] is None
        assert alerts(k, "sell_refused") and k.exited_notes() == 0
