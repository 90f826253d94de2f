"""`atm cas check`: pin, configuration version and signature, as JSON, non-zero when not ok."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from atm.cas.check import register, run_check, state_dir_from_config


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="atm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


@pytest.fixture
def config_file(tmp_path, operator):
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[kiosk]\nname = "x"\n[cas]\nstate_dir = "{operator.state_dir}"\nmode = "client"\n')
    return path


async def test_check_of_a_healthy_link_is_ok(operator):
    report = await run_check(operator.state_dir)
    checkpoint = operator.cas.chain.checkpoint
    assert report == {"ok": True, "pin": "match", "config_version": 1, "signature": "valid", "problems": [],
                      "queue_length": 0, "alerts_queued": 0,
                      "sell": {"zero_conf_cap_sats": 50_000, "confirmations_required": 2,
                               "checkpoint_height": checkpoint.height,
                               "checkpoint_hash": checkpoint.block_hash[::-1].hex(), "invoice_ttl_s": 900}}


async def test_check_shows_the_signed_sell_rules_in_force_and_their_absence(operator, capsys):
    operator.publish(sell={**operator.settings["sell"], "zero_conf_cap_sats": 12_345})
    report = await run_check(operator.state_dir)
    assert (report["sell"]["zero_conf_cap_sats"], report["config_version"]) == (12_345, 2)
    from atm.cas.check import _print_human
    _print_human(report)
    assert "unconfirmed up to 12345 sat, above it 2 confirmations; checkpoint height 100" in capsys.readouterr().out
    settings = dict(operator.settings)
    del settings["sell"]
    operator.cas.publish_bundle(operator.sign_bundle(version=3, settings=settings))
    assert (await run_check(operator.state_dir))["sell"] is None


@pytest.mark.parametrize("mode, pin, signature", [
    ("other-certificate", "mismatch", "missing"),
    ("unsigned-bundle", "match", "missing"),
    ("foreign-signed-bundle", "match", "invalid"),
])
async def test_check_reports_what_is_wrong(operator, mode, pin, signature):
    operator.cas.set_hostile(mode)
    report = await run_check(operator.state_dir)
    assert (report["ok"], report["pin"], report["signature"]) == (False, pin, signature)
    assert report["problems"]


async def test_check_reports_a_rollback(operator):
    client = operator.client()
    try:
        operator.publish()
        await client.poll_once()
    finally:
        await client.stop()
    operator.cas.set_hostile("old-bundle")
    report = await run_check(operator.state_dir)
    assert report["ok"] is False and report["config_version"] == 1
    assert "rollback" in report["problems"][0]


async def test_check_command_prints_json_and_exits_zero_when_ok(operator, config_file, capsys):
    # The command runs its own event loop (asyncio.run), so it goes to a thread while
    # this loop keeps serving the simulated CAS.
    code, out = await asyncio.to_thread(
        run_cli, ["cas", "check", "--config", str(config_file), "--json", "--timeout", "5"], capsys)
    assert code == 0
    assert json.loads(out)["ok"] is True


def test_check_command_exits_non_zero_when_not_paired(tmp_path, capsys):
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[cas]\nstate_dir = "{tmp_path / "empty"}"\n')
    code, out = run_cli(["cas", "check", "--config", str(path), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and "not paired" in report["problems"][0]


def test_state_dir_defaults_follow_the_kiosk_config(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('[kiosk]\nstate_dir = "/srv/atm"\n[ui]\nport = 1\n')
    assert str(state_dir_from_config(path)) == "/srv/atm/cas"
    assert str(state_dir_from_config(None)) == "var/cas"
