"""Settings come only from operator-signed bundles; versions only go up across restarts;
signed commands and trust changes (operator key rotation, CAS pin change)."""

from __future__ import annotations

import json

import pytest

from atm.cas.errors import NotConfigured, NotPaired, PinMismatch, RateRefused
from atm.cas.interface import CasRefused
from atm.cas.signing import generate_operator_key, public_key_text
from atm.cas.tls import make_key_and_certificate, spki_pin_of_pem
from hal.money import Fiat, Sats

from .conftest import FAST


async def test_first_poll_accepts_the_signed_bundle_and_reports_it(operator, client):
    seen = []
    client.on_settings = seen.append
    assert client.settings() is None
    with pytest.raises(NotConfigured):
        await client.send_coins("buy-1", "bcrt1qx", Sats(1))
    await client.poll_once()
    assert [s.version for s in seen] == [1]
    quote = await client.quote("EUR")
    assert quote.fee_percent == 5 and str(quote.rate) == "60000"
    await client.poll_once()
    assert operator.cas.kiosks["kiosk-1"].reported_config_version == 1


async def test_bundle_in_force_survives_a_restart(operator, client):
    await client.poll_once()
    operator.publish(max_buy_minor=70_000)
    await client.poll_once()
    await client.stop()
    restarted = operator.client(**FAST)
    try:
        assert restarted.settings().version == 2
        assert restarted.settings().max_buy == Fiat(70_000, "EUR")
    finally:
        await restarted.stop()


async def test_deleting_the_bundle_file_does_not_reopen_old_versions(operator, client):
    await client.poll_once()
    operator.publish()
    await client.poll_once()
    await client.stop()
    (operator.state_dir / "bundle.json").unlink()
    operator.cas.set_hostile("old-bundle")
    restarted = operator.client(**FAST)
    try:
        await restarted.poll_once()
        assert restarted.settings() is None
        assert restarted.status()["refusals"][0]["reason"] == "old-version"
    finally:
        await restarted.stop()


async def test_tampered_bundle_file_on_disk_is_not_used(operator, client):
    await client.poll_once()
    await client.stop()
    path = operator.state_dir / "bundle.json"
    saved = json.loads(path.read_text())
    saved["document"]["payload"]["settings"]["fee_percent"] = "0"
    path.write_text(json.dumps(saved))
    restarted = operator.client(**FAST)
    try:
        assert restarted.settings() is None
        assert restarted.status()["refusals"][0]["reason"] == "bad-signature"
    finally:
        await restarted.stop()


async def test_operator_key_rotation_takes_effect_only_through_a_signed_bundle(operator, client):
    await client.poll_once()
    new_key = generate_operator_key()
    operator.publish(trust={"operator_key": public_key_text(new_key)})
    await client.poll_once()
    assert client.status()["config_version"] == 2
    # A bundle signed by the old key is no longer enough.
    operator.cas.publish_bundle(operator.sign_bundle(version=3))
    await client.poll_once()
    assert client.settings().version == 2
    assert client.status()["refusals"][0]["reason"] == "bad-signature"
    operator.cas.publish_bundle(operator.sign_bundle(version=4, key=new_key))
    await client.poll_once()
    assert client.settings().version == 4
    await client.stop()
    restarted = operator.client(**FAST)
    try:
        assert restarted.settings().version == 4
    finally:
        await restarted.stop()


async def test_signed_pin_change_makes_the_old_server_key_refused(operator, client):
    await client.poll_once()
    _key, cert = make_key_and_certificate("new CAS")
    operator.publish(trust={"cas_pins": [spki_pin_of_pem(cert)]})
    await client.poll_once()
    with pytest.raises(PinMismatch):
        await client.poll_once()


async def test_signed_activate_is_obeyed_once_and_its_replay_is_not(operator, client):
    obeyed = []

    async def on_command(name, args):
        obeyed.append(name)

    client.on_command = on_command
    activate = operator.sign_command("activate")
    operator.cas.queue_command("kiosk-1", {"payload": {"name": "deactivate", "id": "d-1"}})
    operator.cas.queue_command("kiosk-1", activate)
    await client.poll_once()
    assert obeyed == ["deactivate", "activate"]
    await client.poll_once()
    assert operator.cas.commands["kiosk-1"] == []
    operator.cas.queue_command("kiosk-1", {"payload": {"name": "deactivate", "id": "d-2"}})
    operator.cas.queue_command("kiosk-1", activate)
    await client.poll_once()
    assert obeyed == ["deactivate", "activate", "deactivate"]
    assert client.status()["remote_state"] == "deactivated"


async def test_unsigned_unpair_is_refused_and_signed_unpair_unpairs(operator, client):
    operator.cas.queue_command("kiosk-1", {"payload": {"name": "unpair", "id": "u-1"}})
    await client.poll_once()
    assert client.paired
    operator.cas.queue_command("kiosk-1", operator.sign_command("unpair"))
    await client.poll_once()
    assert not client.paired
    with pytest.raises(CasRefused, match="unpaired"):
        await client.poll_once()
    with pytest.raises(NotPaired):
        operator.client(**FAST)


async def test_quote_in_a_currency_not_signed_for_is_refused(operator, client):
    await client.poll_once()
    with pytest.raises(CasRefused, match="signed configuration is for EUR"):
        await client.quote("USD")


async def test_status_shows_what_the_service_view_needs(operator, client):
    await client.poll_once()
    status = client.status()
    assert status["paired"] and status["pin"] == "ok" and status["pin_ok"]
    assert status["config_version"] == 1 and status["reachable"]
    assert status["queue_length"] == 0 and status["refusals"] == []
    assert status["last_contact"] is not None


async def test_from_state_on_an_empty_dir_says_to_pair(tmp_path):
    from atm.cas.client import CasClient
    with pytest.raises(NotPaired, match="pairing code"):
        CasClient.from_state(tmp_path / "nothing")


async def test_rate_outside_the_signed_bounds_is_refused_and_alerted(operator, client):
    operator.publish(rate_bounds={"EUR": ["30000", "120000"]})
    await client.poll_once()
    assert (await client.quote("EUR")).rate == 60000
    operator.cas.set_rate("EUR", "1")
    await client.poll_once()
    with pytest.raises(RateRefused, match="outside the range the operator signed"):
        await client.quote("EUR")
    assert client.status()["refusals"][0]["reason"] == "rate-out-of-bounds"


async def test_failed_re_pairing_leaves_the_existing_pairing_working(operator, client):
    from atm.cas.errors import PairingFailed
    from atm.cas.pairing import pair
    before = (operator.state_dir / "kiosk.key").read_bytes()
    with pytest.raises(PairingFailed):
        await pair(operator.pairing_code, operator.state_dir)  # token already used
    assert (operator.state_dir / "kiosk.key").read_bytes() == before
    assert sorted(p.name for p in operator.state_dir.glob("*.new")) == []
    await client.poll_once()
    assert client.status()["pin"] == "ok"
