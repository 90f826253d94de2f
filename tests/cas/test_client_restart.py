"""A restart in the middle of an upload sends the transaction once: the outbox keeps it
until the server acknowledges it, and the server ratchets versions."""

from __future__ import annotations

import pytest

from atm.cas.interface import CasUnavailable

from .conftest import FAST


async def test_restart_mid_upload_delivers_each_transaction_once(operator, client):
    await client.upload_transaction({"id": "tx-1", "version": 1, "state": "open"})
    await client.upload_transaction({"id": "tx-1", "version": 2, "state": "done"})
    operator.cas.drop_answers.add("/v1/transactions")
    with pytest.raises(CasUnavailable):
        await client.flush_once()
    # The server did the work; the kiosk never heard. It "crashes" here.
    assert operator.cas.transactions["tx-1"]["version"] == 2
    await client.stop()
    operator.cas.drop_answers.clear()

    restarted = operator.client(**FAST)
    try:
        assert restarted.queue_length() == 1
        assert await restarted.flush_once() == 1
        assert restarted.queue_length() == 0
    finally:
        await restarted.stop()
    assert list(operator.cas.transactions) == ["tx-1"]
    assert operator.cas.transactions["tx-1"]["version"] == 2
    assert operator.cas.transaction_submissions["tx-1"] == 2


async def test_server_keeps_the_newer_version_when_an_older_one_arrives_late(operator, client):
    await client.upload_transaction({"id": "tx-5", "version": 4, "state": "done"})
    await client.flush_once()
    await client.upload_transaction({"id": "tx-5", "version": 3, "state": "open"})
    await client.flush_once()
    assert operator.cas.transactions["tx-5"]["version"] == 4
    assert operator.cas.transactions["tx-5"]["record"]["state"] == "done"
    assert client.queue_length() == 0


async def test_newer_version_queued_while_older_is_in_flight_is_not_dropped(operator, client):
    await client.upload_transaction({"id": "tx-7", "version": 1})
    await client.flush_once()
    await client.upload_transaction({"id": "tx-7", "version": 2})
    # An acknowledgement for version 1 must not remove version 2 from the outbox.
    client._store.acknowledge("tx", {"tx-7": 1})
    assert client.queue_length() == 1
    await client.flush_once()
    assert operator.cas.transactions["tx-7"]["version"] == 2


@pytest.mark.parametrize("record, words", [
    ({"version": 1}, "'id'"),
    ({"id": "t", "version": -1}, "version"),
    ({"id": "t", "version": "2"}, "version"),
])
async def test_transaction_without_id_or_version_is_refused_at_once(client, record, words):
    with pytest.raises(ValueError, match=words):
        await client.upload_transaction(record)
