"""Alerts reach the operator: queued durably (outlive a restart), uploaded keyed by id
(a repeated upload is stored once), kept and listed by the CAS simulator, counted in
status() and `atm cas check`; the stand-in keeps them the same way."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from atm.cas.check import run_check
from atm.cas.errors import PinMismatch
from atm.cas.interface import CasRefused, CasUnavailable, KioskSettings
from atm.cas.standin import StandinCas
from hal.money import Fiat

from .conftest import FAST, wait_until
from .rogue_server import RogueServer, http_answer
from .test_rogue_cas import _client_at


async def test_alert_outlives_a_restart_and_reaches_the_cas_once(operator):
    await operator.cas.go_down()
    first = operator.client(**FAST)
    alert_id = await first.report_alert("door_open", {"door": "safe", "at_state": "Idle"}, "critical")
    assert first.status()["alerts_queued"] == 1
    await first.stop()  # the kiosk restarts before the CAS comes back
    await operator.cas.come_back()
    second = operator.client(**FAST)
    try:
        assert second.status()["alerts_queued"] == 1
        await second.flush_once()
        assert second.status()["alerts_queued"] == 0
    finally:
        await second.stop()
    [alert] = operator.cas.alerts()
    assert (alert["id"], alert["kind"], alert["severity"], alert["kiosk"]) == (alert_id, "door_open", "critical",
                                                                              "kiosk-1")
    assert alert["detail"] == {"door": "safe", "at_state": "Idle"}


async def test_alert_whose_answer_was_lost_is_uploaded_again_and_stored_once(operator, client):
    alert_id = await client.report_alert("cashbox_full", {"notes": 1000})
    operator.cas.drop_answers.add("/v1/alerts")
    with pytest.raises(CasUnavailable):
        await client.flush_once()
    assert client.status()["alerts_queued"] == 1  # not acknowledged, so still queued
    operator.cas.drop_answers.clear()
    await client.flush_once()
    assert client.status()["alerts_queued"] == 0
    assert operator.cas.alert_submissions[alert_id] == 2
    assert [a["id"] for a in operator.cas.alerts()] == [alert_id]


async def test_running_client_uploads_alerts_in_the_background(operator):
    client = operator.client(**FAST)
    try:
        await client.start()
        await client.report_alert("paper_out", {"printer": "receipt"}, "warning")
        await wait_until(lambda: [a["kind"] for a in operator.cas.alerts()] == ["paper_out"], what="the alert")
    finally:
        await client.stop()


async def test_simulator_lists_a_kiosks_alerts(operator, client):
    await client.report_alert("wrong_pin", {"attempts": 3})
    await client.flush_once()
    answer = await client._request("GET", "/v1/alerts")
    assert [a["kind"] for a in answer["alerts"]] == ["wrong_pin"]


async def test_detail_with_money_values_is_kept_as_text(client):
    await client.report_alert("note_parked", {"amount": Fiat(2000, "EUR"), "rate": Decimal("60000.5")})
    [(_key, _version, body)] = client._store.pending("alert", 10)
    assert body["detail"]["rate"] == "60000.5" and isinstance(body["detail"]["amount"], str)


@pytest.mark.parametrize("kind, severity", [("Door Open", "warning"), ("", "warning"), ("x" * 41, "warning"),
                                            (None, "warning"), ("door_open", "urgent")])
async def test_alert_of_an_unknown_shape_is_a_value_error_and_not_queued(client, kind, severity):
    with pytest.raises(ValueError, match="alert"):
        await client.report_alert(kind, {}, severity)
    assert client.status()["alerts_queued"] == 0


async def test_event_of_kind_alert_goes_to_the_alert_queue(client):
    await client.report_event("alert", {"what": "tamper switch"})
    await client.report_event("door", {"door": "service"})
    assert client.status()["alerts_queued"] == 1 and client.status()["queue_length"] == 2


async def test_pin_mismatch_found_by_the_client_is_raised_as_a_critical_alert(operator, client):
    operator.cas.set_hostile("other-certificate")
    with pytest.raises(PinMismatch):
        await client.poll_once()
    operator.cas.clear_hostile()
    await client.flush_once()
    [alert] = operator.cas.alerts()
    assert (alert["kind"], alert["severity"], alert["detail"]["reason"]) == ("pin_mismatch", "critical",
                                                                            "pin-mismatch")


async def test_check_shows_the_queue_length(operator, client):
    await client.report_alert("tamper", {})
    await client.upload_transaction({"id": "tx-1", "version": 1})
    report = await run_check(operator.state_dir)
    assert (report["queue_length"], report["alerts_queued"]) == (2, 1)


async def test_cas_without_the_alert_endpoint_still_gets_the_transactions(operator, client):
    """An older CAS answers 404 to /v1/alerts: the alert stays queued, the transaction
    upload behind it goes on."""
    async def respond(method, path, body):
        if path == "/v1/alerts":
            return [(http_answer(b'{"error": "no such path"}', status="404 Not Found"), 0.0)]
        items = json.loads(body)["transactions"]
        stored = [{"id": item["id"], "version": item["version"]} for item in items]
        return [(http_answer(json.dumps({"protocol": 1, "stored": stored}).encode()), 0.0)]

    await client.report_alert("tamper", {})
    await client.upload_transaction({"id": "tx-1", "version": 3})
    workdir = operator.cas.workdir
    async with RogueServer(workdir / "cas.crt", workdir / "cas.key", respond) as old_cas:
        old_client = _client_at(operator, old_cas.url)
        try:
            with pytest.raises(CasRefused, match="HTTP 404"):
                await old_client.flush_once()
            assert old_client._store.queue_length("tx") == 0
            assert old_client.status()["alerts_queued"] == 1
        finally:
            await old_client.stop()


# ---- the stand-in CAS -----------------------------------------------------------------

def _standin(tmp_path) -> StandinCas:
    settings = KioskSettings(version=0, min_buy=Fiat(500, "EUR"), max_buy=Fiat(100_000, "EUR"))
    return StandinCas(tmp_path / "ledger.sqlite", settings=settings)


async def test_standin_keeps_alerts_across_a_restart(tmp_path):
    alert_id = await _standin(tmp_path).report_alert("fraud_attempt", {"validator": "string on a note"},
                                                     "critical")
    [alert] = _standin(tmp_path).alerts()
    assert (alert["id"], alert["kind"], alert["severity"]) == (alert_id, "fraud_attempt", "critical")
    assert alert["detail"] == {"validator": "string on a note"}


async def test_standin_refuses_an_alert_of_an_unknown_shape(tmp_path):
    with pytest.raises(ValueError, match="severity"):
        await _standin(tmp_path).report_alert("door_open", {}, "loud")


async def test_standin_signs_its_own_rate_into_bounds(tmp_path):
    standin = _standin(tmp_path)
    low, high = standin.settings().rate_bounds
    assert low <= (await standin.quote("EUR")).rate <= high


async def test_standin_settings_carry_a_fixed_fee_into_its_quote(tmp_path):
    from atm.cas.standin import standin_settings
    settings = standin_settings(Fiat(500, "EUR"), Fiat(100_000, "EUR"), "5", None, fixed_fee=Fiat(100, "EUR"))
    standin = StandinCas(tmp_path / "ledger.sqlite", settings=settings)
    assert (await standin.quote("EUR")).fixed_fee == Fiat(100, "EUR")
    assert standin.settings().fixed_fee == Fiat(100, "EUR")
