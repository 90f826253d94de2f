"""Defects an independent attacker found with a rogue CAS written from
docs/cas-protocol.md alone (issue 8, item 10), each reproduced here: a lone UTF-16
surrogate in a signed-looking document, an answer split over two TLS records, a
same-version bundle with other content, and bounds narrowed under a rate in force.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

import pytest

from atm.cas.check import register, run_check
from atm.cas.client import CasClient
from atm.cas.errors import RateRefused
from atm.cas.signing import b64url
from atm.cas.state import PairingRecord, load_pairing

from .conftest import FAST, wait_until
from .rogue_server import RogueServer, http_answer

SURROGATE = json.loads('"\\ud800"')  # a lone high surrogate: valid JSON text, not encodable as UTF-8


def signed_looking(payload: dict) -> dict:
    """A document shaped like a signed one, with 64 bytes that are no one's signature."""
    return {"payload": payload, "sig": b64url(bytes(range(64)))}


def surrogate_bundle(operator, version: int) -> dict:
    payload = {"type": "atm-config-bundle", "format": 1, "kiosk_id": "kiosk-1", "version": version,
               "issued_at": 1_700_000_000, "settings": {**operator.settings, "currency": "EUR" + SURROGATE}}
    return signed_looking(payload)


def surrogate_command(name: str = "activate", command_id: str = "cmd-surrogate") -> dict:
    return signed_looking({"type": "atm-command", "kiosk_id": "kiosk-1", "name": name, "id": command_id,
                           "sequence": 99, "issued_at": 1_700_000_000, "args": {"why": SURROGATE}})


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="atm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


# ---- lone surrogates ------------------------------------------------------------------

async def test_check_of_a_bundle_holding_a_lone_surrogate_reports_a_refusal(operator):
    operator.cas.publish_bundle(surrogate_bundle(operator, 2))
    report = await run_check(operator.state_dir)
    assert report["ok"] is False and report["signature"] == "invalid"
    assert any("cannot be encoded" in problem for problem in report["problems"]), report["problems"]


@pytest.mark.parametrize("as_json", [True, False])
async def test_check_command_prints_its_report_for_a_surrogate_bundle(operator, tmp_path, capsys, as_json):
    operator.cas.publish_bundle(surrogate_bundle(operator, 2))
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[cas]\nstate_dir = "{operator.state_dir}"\n')
    argv = ["cas", "check", "--config", str(config), "--timeout", "5"] + (["--json"] if as_json else [])
    code, out = await asyncio.to_thread(run_cli, argv, capsys)
    assert code == 1
    if as_json:
        assert json.loads(out)["signature"] == "invalid"
    else:
        assert "NOT OK" in out and "problem:" in out


async def test_poll_with_a_surrogate_command_stores_a_refusal_acknowledges_it_and_goes_on(operator, client):
    await client.poll_once()
    operator.cas.queue_command("kiosk-1", surrogate_command())
    await client.poll_once()
    refusals = client.status()["refusals"]
    assert [(r["what"], r["reason"]) for r in refusals] == [("command", "malformed")]
    await client.poll_once()
    assert {"id": "cmd-surrogate", "result": "refused"} in operator.cas.command_acks
    assert operator.cas.commands["kiosk-1"] == []
    alerts = await _flush_alerts(operator, client)
    assert [(a["kind"], a["detail"]["what"]) for a in alerts] == [("command_refused", "command")]


async def test_poll_with_a_surrogate_in_the_command_id_is_refused_and_acknowledged(operator, client):
    await client.poll_once()
    operator.cas.queue_command("kiosk-1", surrogate_command(command_id="cmd-" + SURROGATE))
    operator.publish(max_buy_minor=70_000)
    await client.poll_once()
    assert client.settings().version == 2  # the bundle check still ran after the command
    await client.poll_once()
    assert operator.cas.commands["kiosk-1"] == []
    assert [r["what"] for r in client.status()["refusals"]] == ["command"]


async def test_poll_of_a_surrogate_bundle_stores_a_refusal_and_keeps_the_settings(operator, client):
    await client.poll_once()
    operator.cas.publish_bundle(surrogate_bundle(operator, 2))
    await client.poll_once()
    assert client.settings().version == 1
    assert [(r["what"], r["reason"]) for r in client.status()["refusals"]] == [("bundle", "malformed")]
    alerts = await _flush_alerts(operator, client)
    assert [a["kind"] for a in alerts] == ["bundle_refused"]


async def test_running_client_takes_the_next_bundle_after_a_surrogate_command(operator):
    """The old client crashed on every poll from the surrogate command on, never
    acknowledged it, and so never reached the bundle check of a later poll."""
    client = operator.client(**FAST)
    try:
        operator.cas.queue_command("kiosk-1", surrogate_command())
        await client.start()
        await wait_until(lambda: client.settings() is not None, what="bundle 1")
        operator.publish(max_buy_minor=70_000)
        await wait_until(lambda: client.settings().version == 2, what="bundle 2 after the surrogate command")
        await wait_until(lambda: operator.cas.commands["kiosk-1"] == [], what="the command acknowledged")
    finally:
        await client.stop()


async def _flush_alerts(operator, client):
    operator.cas.clear_hostile()
    for _ in range(5):
        if not client.queue_length():
            break
        await client.flush_once()
    return operator.cas.alerts()


# ---- answers read whole ---------------------------------------------------------------

def _client_at(operator, url: str) -> CasClient:
    record = load_pairing(operator.state_dir)
    rogue_record = PairingRecord(kiosk_id=record.kiosk_id, cas_url=url, cas_pins=record.cas_pins,
                                 operator_key=record.operator_key, paired_at=record.paired_at)
    return CasClient(operator.state_dir, rogue_record, **FAST)


@pytest.mark.parametrize("content_length", [True, False])
async def test_honest_bundle_in_two_tls_records_300_ms_apart_is_accepted(operator, content_length):
    """The server holds the CAS's own key (so the pin matches) and sends the operator's
    valid bundle in two pieces; the first piece alone is not JSON."""
    body = json.dumps({"protocol": 1, "bundle": operator.cas.current_bundle()}).encode()
    answer = http_answer(body, content_length=content_length)
    cut = len(answer) - len(body) // 2

    async def respond(method, path, request_body):
        return [(answer[:cut], 0.3), (answer[cut:], 0.0)]

    workdir = operator.cas.workdir
    async with RogueServer(workdir / "cas.crt", workdir / "cas.key", respond) as rogue:
        client = _client_at(operator, rogue.url)
        try:
            assert await client.fetch_config() is True
        finally:
            await client.stop()
    assert client.settings().version == 1


async def test_answer_larger_than_the_limit_in_many_pieces_is_still_refused(operator):
    from atm.cas.errors import AnswerMalformed
    body = json.dumps({"protocol": 1, "bundle": None, "pad": "x" * 5000}).encode()
    answer = http_answer(body, content_length=False)

    async def respond(method, path, request_body):
        return [(answer[i:i + 1000], 0.01) for i in range(0, len(answer), 1000)]

    workdir = operator.cas.workdir
    async with RogueServer(workdir / "cas.crt", workdir / "cas.key", respond) as rogue:
        client = CasClient(operator.state_dir, _client_at(operator, rogue.url)._record, max_answer_bytes=2000, **FAST)
        try:
            with pytest.raises(AnswerMalformed, match="more than 2000 bytes"):
                await client.fetch_config()
        finally:
            await client.stop()


# ---- same version, other content ------------------------------------------------------

async def test_check_reports_a_bundle_of_the_version_in_force_with_other_content(operator, client):
    await client.poll_once()
    assert client.settings().version == 1
    other = operator.sign_bundle(version=1, settings={**operator.settings, "max_buy_minor": 90_000})
    operator.cas.publish_bundle(other)
    report = await run_check(operator.state_dir)
    assert report["ok"] is False and report["signature"] == "valid"
    assert any("other content" in problem and "refuse" in problem for problem in report["problems"])


async def test_check_of_the_same_bundle_as_in_force_is_ok(operator, client):
    await client.poll_once()
    report = await run_check(operator.state_dir)
    assert report["ok"] is True, report


# ---- bounds narrowed under a rate in force --------------------------------------------

async def test_narrowed_bounds_drop_the_rate_in_force_at_once(operator, client, caplog):
    seen = []
    client.on_settings = seen.append
    await client.poll_once()
    assert (await client.quote("EUR")).rate == 60000
    assert client.status()["rates"] == {"EUR": "60000"}
    operator.publish(rate_bounds={"EUR": ["70000", "80000"]})
    with caplog.at_level(logging.WARNING, "atm.cas"):
        await client.fetch_config()
    assert seen[-1].rate_bounds == (70000, 80000)
    # Dropped when the bundle is accepted, not only at the next quote.
    assert client.status()["rates"] == {}
    assert [r["reason"] for r in client.status()["refusals"]] == ["rate-out-of-bounds"]
    with pytest.raises(RateRefused, match="outside the range the operator signed, 70000..80000"):
        await client.quote("EUR")
