"""Every hostile mode of the simulated CAS is refused, logged, shown in status() and
alerted to the CAS once it behaves, with nothing paid and no setting changed."""

from __future__ import annotations

import pytest

from atm.cas.errors import AddressRefused, AnswerMalformed, AnswerTimeout, PinMismatch
from atm.cas.interface import PaymentRefused
from hal.money import Fiat, Sats

from .conftest import FAST


async def _settle_and_collect_alerts(operator, client):
    """Let the honest CAS back in and flush the queued alerts to it."""
    operator.cas.clear_hostile()
    await client.poll_once()
    while client.queue_length():
        await client.flush_once()
    return operator.cas.alerts()


async def _assert_nothing_changed(operator, client, version=1, check_sends=True):
    settings = client.settings()
    assert settings is not None and settings.version == version
    assert settings.wallet["xpub"] == operator.xpub
    assert settings.max_buy == Fiat(100_000, "EUR")
    if check_sends:
        assert operator.cas.sends == {}


@pytest.mark.parametrize("mode, reason, what", [
    ("unsigned-bundle", "unsigned", "bundle"),
    ("foreign-signed-bundle", "bad-signature", "bundle"),
])
async def test_forged_bundle_is_refused_and_alerted(operator, client, mode, reason, what):
    await client.poll_once()
    operator.cas.set_hostile(mode)
    await client.poll_once()
    await _assert_nothing_changed(operator, client)
    refusals = client.status()["refusals"]
    assert [(r["what"], r["reason"]) for r in refusals] == [(what, reason)]
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [(a["detail"]["what"], a["detail"]["reason"]) for a in alerts] == [(what, reason)]


async def test_rolled_back_bundle_is_refused_and_alerted(operator, client):
    operator.publish(max_buy_minor=200_000)
    await client.poll_once()
    assert client.settings().version == 2
    operator.cas.set_hostile("old-bundle")
    await client.poll_once()
    assert client.settings().version == 2 and client.settings().max_buy == Fiat(200_000, "EUR")
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [a["detail"]["reason"] for a in alerts] == ["old-version"]


async def test_other_certificate_is_refused_before_any_request_and_alerted_later(operator, client):
    await client.poll_once()
    operator.cas.set_hostile("other-certificate")
    before = len(operator.cas.request_log)
    fresh = operator.client(**FAST)
    try:
        with pytest.raises(PinMismatch):
            await fresh.poll_once()
        with pytest.raises(PinMismatch):
            await fresh.send_coins("buy-1", "bcrt1qexample", Sats(10_000))
        await fresh.upload_transaction({"id": "tx-1", "version": 1, "state": "done"})
        with pytest.raises(PinMismatch):
            await fresh.flush_once()
        assert len(operator.cas.request_log) == before
        status = fresh.status()
        assert status["pin"] == "mismatch" and status["refusals"][0]["reason"] == "pin-mismatch"
        alerts = await _settle_and_collect_alerts(operator, fresh)
    finally:
        await fresh.stop()
    assert "pin-mismatch" in [a["detail"]["reason"] for a in alerts]
    assert operator.cas.sends == {}
    assert operator.cas.transactions["tx-1"]["version"] == 1


async def test_sell_address_not_from_the_signed_xpub_is_refused_and_alerted(operator, client):
    await client.poll_once()
    operator.cas.set_hostile("foreign-sell-address")
    with pytest.raises(AddressRefused):
        await client.sell_invoice("sell-1", Fiat(10_000, "EUR"), Sats(16_000))
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [a["detail"]["reason"] for a in alerts] == ["foreign-address"]


@pytest.mark.parametrize("mode, reason", [
    ("claim-without-tx", "no_transaction"),
    ("pay-other-address", "wrong_address"),
    ("wrong-merkle", "bad_merkle"),
    ("weak-headers", "insufficient_work"),
])
async def test_claimed_sell_payment_without_proof_is_refused_alerted_and_never_proven(operator, client, mode, reason):
    """A hijacked CAS says the invoice is paid and confirmed (state "confirmed", the full
    amount, 6 confirmations) and backs it with nothing, another address's payment, a
    made-up transaction in a block it is not in, or headers of regtest work. Each is
    refused by name and alerted as critical; no call ever answers "proven".
    Mutation caught (seen failing): sell_payment trusting the CAS's state "confirmed"
    (returning "proven" when status.state == "confirmed") instead of verify_payment; and
    atm.cas.sell accepting a mined claim without checking its branch and headers; and
    dropping the "claims paid, shows no transaction" refusal (claim-without-tx)."""
    await client.poll_once()
    await client.sell_invoice("sell-h", Fiat(10_000, "EUR"), Sats(16_000))
    operator.cas.set_hostile(mode)
    for _ in range(3):
        with pytest.raises(PaymentRefused) as info:
            await client.sell_payment("sell-h")
        assert info.value.reason == reason
    status = await client.sell_invoice_status("sell-h")
    assert (status.state, status.received_sats) == ("confirmed", 16_000)   # the lie was told
    refusals = client.status()["refusals"]
    assert [(r["what"], r["reason"]) for r in refusals] == [("sell-payment", reason)]
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [(a["kind"], a["severity"], a["detail"]["reason"]) for a in alerts] == [
        ("payment_refused", "critical", reason)]
    # With the CAS honest again and no real payment, the kiosk is still only waiting.
    assert (await client.sell_payment("sell-h")).state == "waiting"


async def test_unsigned_activate_is_refused_while_deactivate_is_obeyed(operator, client):
    obeyed = []

    async def on_command(name, args):
        obeyed.append(name)

    client.on_command = on_command
    operator.cas.queue_command("kiosk-1", {"payload": {"name": "deactivate", "id": "d-1"}})
    await client.poll_once()
    operator.cas.set_hostile("unsigned-activate")
    await client.poll_once()
    assert obeyed == ["deactivate"]
    assert client.status()["remote_state"] == "deactivated"
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [a["detail"]["reason"] for a in alerts] == ["unsigned"]


@pytest.mark.parametrize("mode, error, reason", [
    ("oversized", AnswerMalformed, "malformed"),
    ("malformed", AnswerMalformed, "malformed"),
    ("slow", AnswerTimeout, "slow"),
])
async def test_broken_answers_are_refused_without_paying_and_alerted(operator, tmp_path, mode, error, reason):
    client = operator.client(**{**FAST, "timeout_s": 0.5})
    try:
        await client.poll_once()
        operator.cas.set_hostile(mode, slow_s=5.0)
        with pytest.raises(error):
            await client.poll_once()
        with pytest.raises(error):
            await client.send_coins("buy-9", "bcrt1qexample", Sats(1000))
        with pytest.raises(error):
            await client.sell_invoice("sell-9", Fiat(1000, "EUR"), Sats(1600))
        # The server may have acted on the send before spoiling its answer; the kiosk
        # took nothing from it and will ask again with the same id.
        await _assert_nothing_changed(operator, client, check_sends=False)
        assert client.status()["refusals"][0]["reason"] == reason
        alerts = await _settle_and_collect_alerts(operator, client)
        result = await client.send_coins("buy-9", "bcrt1qexample", Sats(1000))
        assert list(operator.cas.sends) == ["buy-9"]
        assert result.txid == operator.cas.sends["buy-9"]["txid"]
    finally:
        await client.stop()
    assert reason in [a["detail"]["reason"] for a in alerts]


async def test_every_hostile_mode_has_a_test_here():
    from simulators.cas.server import HOSTILE_MODES
    import inspect, sys
    source = inspect.getsource(sys.modules[__name__])
    assert [m for m in HOSTILE_MODES if f'"{m}"' not in source] == []


async def test_redirect_is_not_followed_so_no_body_reaches_another_server(operator, client):
    received = []

    async def listener(reader, writer):
        received.append(await reader.read(65536))
        writer.close()

    import asyncio
    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    try:
        operator.cas.redirect_to = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        await client.poll_once()
        operator.cas.set_hostile("redirect")
        with pytest.raises(AnswerMalformed, match="HTTP 307"):
            await client.send_coins("buy-3", "bcrt1qexample", Sats(1000))
    finally:
        server.close()
        await server.wait_closed()
    assert received == []
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [a["detail"]["reason"] for a in alerts] == ["malformed"]


async def test_junk_answers_do_not_count_as_contact(operator, client):
    await client.poll_once()
    last = client.last_contact()
    operator.cas.set_hostile("malformed")
    for _ in range(3):
        with pytest.raises(AnswerMalformed):
            await client.poll_once()
    assert client.last_contact() == last


async def test_surrogate_bundle_is_refused_and_alerted(operator, client):
    await client.poll_once()
    operator.cas.set_hostile("surrogate-bundle")
    await client.poll_once()
    await _assert_nothing_changed(operator, client)
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [(a["kind"], a["detail"]["reason"]) for a in alerts] == [("bundle_refused", "malformed")]


async def test_surrogate_command_is_refused_acknowledged_and_alerted(operator, client):
    await client.poll_once()
    operator.cas.set_hostile("surrogate-command")
    await client.poll_once()
    await client.poll_once()
    assert {"id": "rogue-surrogate", "result": "refused"} in operator.cas.command_acks
    assert client.status()["remote_state"] == "active"
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [(a["kind"], a["detail"]["reason"]) for a in alerts] == [("command_refused", "malformed")]


async def test_absurd_rate_gives_no_quote_and_is_alerted(operator, client):
    from atm.cas.errors import RateRefused
    await client.poll_once()
    operator.cas.set_hostile("absurd-rate")
    await client.poll_once()
    with pytest.raises(RateRefused, match="EUR rate"):
        await client.quote("EUR")
    alerts = await _settle_and_collect_alerts(operator, client)
    assert [(a["kind"], a["detail"]["reason"]) for a in alerts] == [("rate_refused", "rate-malformed")]
    assert (await client.quote("EUR")).rate == 60000  # the honest CAS's rate, once it is back


async def test_answers_split_over_two_records_are_read_whole(operator, client):
    operator.cas.set_hostile("split-answers")
    operator.publish(max_buy_minor=70_000)
    await client.poll_once()
    assert client.settings().version == 2 and client.status()["refusals"] == []
