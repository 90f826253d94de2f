"""A CAS outage loses nothing: sends resume with the same id (one send), transactions
wait in the durable outbox, and the kiosk learns when to stop starting buys."""

from __future__ import annotations

import time

import pytest

from atm.cas.interface import CasUnavailable
from hal.money import Sats

from .conftest import FAST, wait_until


async def test_outage_mid_buy_sends_the_coins_once_after_reconnection(operator, client):
    await client.poll_once()
    await operator.cas.go_down()
    with pytest.raises(CasUnavailable):
        await client.send_coins("buy-42", "bcrt1qcustomer", Sats(25_000))
    assert operator.cas.sends == {}
    await operator.cas.come_back()
    first = await client.send_coins("buy-42", "bcrt1qcustomer", Sats(25_000))
    again = await client.send_coins("buy-42", "bcrt1qcustomer", Sats(25_000))
    assert first == again
    assert list(operator.cas.sends) == ["buy-42"]
    assert operator.cas.sends["buy-42"]["sats"] == 25_000


async def test_transactions_queued_during_an_outage_are_delivered_by_the_background_task(operator, client):
    await operator.cas.go_down()
    await client.start()
    for n in range(5):
        await client.upload_transaction({"id": f"tx-{n}", "version": 1, "state": "open"})
    await client.upload_transaction({"id": "tx-0", "version": 2, "state": "done"})
    assert client.queue_length() == 5
    await operator.cas.come_back()
    await wait_until(lambda: client.queue_length() == 0, what="outbox to drain")
    assert sorted(operator.cas.transactions) == [f"tx-{n}" for n in range(5)]
    assert operator.cas.transactions["tx-0"]["version"] == 2
    assert operator.cas.transactions["tx-0"]["record"]["state"] == "done"


async def test_upload_returns_once_durable_even_with_the_cas_down(operator, client):
    await operator.cas.go_down()
    await client.upload_transaction({"id": "tx-9", "version": 3, "state": "done"})
    await client.stop()
    reopened = operator.client(**FAST)
    try:
        assert reopened.queue_length() == 1
    finally:
        await reopened.stop()


async def test_kiosk_is_unreachable_once_offline_longer_than_allowed(operator, client):
    await client.poll_once()
    assert client.is_reachable(max_offline_s=60)
    await operator.cas.go_down()
    with pytest.raises(CasUnavailable):
        await client.poll_once()
    last = client.last_contact()
    assert client.is_reachable(max_offline_s=60)
    assert not client.is_reachable(max_offline_s=(time.time() - last) / 2)


async def test_never_contacted_kiosk_is_not_reachable(operator):
    await operator.cas.go_down()
    fresh = operator.client(**FAST)
    try:
        assert not fresh.is_reachable(max_offline_s=3600)
    finally:
        await fresh.stop()


def test_backoff_grows_with_failures_within_jitter_and_cap(tmp_path):
    import random
    from atm.cas.client import CasClient
    from atm.cas.state import PairingRecord
    from atm.cas.signing import generate_operator_key, public_key_text
    record = PairingRecord(kiosk_id="k", cas_url="https://127.0.0.1:1", cas_pins=("00" * 32,),
                           operator_key=public_key_text(generate_operator_key()), paired_at=0)
    client = CasClient(tmp_path, record, backoff_base_s=1.0, backoff_cap_s=30.0, rng=random.Random(7))
    delays = [[client._backoff(n) for _ in range(50)] for n in (1, 3, 10)]
    assert all(1.0 <= d <= 2.0 for d in delays[0])
    assert all(4.0 <= d <= 8.0 for d in delays[1])
    assert all(15.0 <= d <= 30.0 for d in delays[2])
    assert len(set(delays[2])) > 1


async def test_events_reported_during_an_outage_reach_the_cas_afterwards(operator, client):
    await operator.cas.go_down()
    event_id = await client.report_event("door", {"door": "open"})
    with pytest.raises(ValueError, match="event kind"):
        await client.report_event("party", {})
    await client.start()
    await operator.cas.come_back()
    await wait_until(lambda: event_id in operator.cas.events, what="door event upload")
    assert operator.cas.events[event_id]["detail"] == {"door": "open"}


async def test_background_poll_recovers_after_an_outage_and_runs_commands(operator, client):
    obeyed = []

    async def on_command(name, args):
        obeyed.append(name)

    client.on_command = on_command
    await operator.cas.go_down()
    await client.start()
    operator.cas.queue_command("kiosk-1", {"payload": {"name": "deactivate", "id": "d-9"}})
    await operator.cas.come_back()
    await wait_until(lambda: obeyed == ["deactivate"], what="deactivate from the background poll")
    await wait_until(lambda: operator.cas.commands["kiosk-1"] == [], what="command acknowledged")
    assert client.settings().version == 1
