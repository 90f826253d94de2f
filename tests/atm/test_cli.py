"""The `atm` command line as technicians' scripts and outside checks use it:
exact JSON shapes and exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from atm import cli
from atm.app import REPO_CONFIG, RunningKiosk, with_devices
from atm.config import load
from simulators.world import SAMPLE_ADDRESSES, SimulatedWorld

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_json_is_one_object_with_the_promised_keys_and_exit_zero(tmp_path):
    """Default simulators: ID-003 over TCP, camera frames, ESC/POS virtual printer, TLS CAS simulator."""
    result = subprocess.run([sys.executable, "-m", "atm.cli", "demo", "--json", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert set(out) == {"transactions", "receipts"}
    (tx,) = out["transactions"]
    assert {"id", "type", "status", "fiat_minor", "currency", "sats", "address"} <= set(tx)
    assert tx["type"] == "buy" and tx["status"] == "completed"
    assert tx["fiat_minor"] == 7000 and tx["currency"] == "EUR" and tx["sats"] == 133_000
    assert tx["address"] == SAMPLE_ADDRESSES["regtest"]
    (receipt,) = out["receipts"]
    assert "70.00 EUR" in receipt and tx["id"][-12:] in receipt.replace("\n", "")
    assert f"[QR: {tx['address']}]" in receipt


def test_demo_exits_non_zero_with_a_json_error_when_the_buy_cannot_complete(tmp_path):
    # 600.00 EUR note: the simulated validator has no such note, so nothing is ever credited
    result = subprocess.run([sys.executable, "-m", "atm.cli", "demo", "--json", "--notes", "60000", "--validator",
                             "standin", "--printer", "standin", "--scanner", "standin", "--cas", "standin",
                             "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["transactions"] == [] and "60000" in out["error"]


async def test_atm_sim_drives_a_running_simulated_kiosk_from_the_shell(tmp_path):
    config = dataclasses.replace(load(REPO_CONFIG / "simulate.toml"), state_dir=tmp_path, ui_port=0,
                                 cas_mode="standin")
    world = SimulatedWorld(validator="standin", printer="standin", scanner="standin")
    config = with_devices(config, world.start())
    running = RunningKiosk(config, simulate=True, world=world)
    await running.start()
    try:
        kiosk, url = running.kiosk, running.url

        def sim(*words: str) -> int:
            return cli.main(["sim", "--url", url, *words])

        async def until(predicate) -> None:
            for _ in range(500):
                if predicate():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"kiosk shows {kiosk.snapshot()}")

        assert (await kiosk.handle_action({"action": "start_buy"}))["ok"]
        assert await asyncio.to_thread(sim, "qr", SAMPLE_ADDRESSES["regtest"]) == 0
        await until(lambda: kiosk.snapshot()["screen"] == "insert_cash")
        assert await asyncio.to_thread(sim, "insert", "2000") == 0
        await until(lambda: kiosk.snapshot()["data"].get("inserted_minor") == 2000)
        assert await asyncio.to_thread(sim, "paper", "state=near_end") == 0
        assert await asyncio.to_thread(sim, "no_such_command") == 1
        with pytest.raises(SystemExit, match="door open|close"):
            sim("door", "sideways")
    finally:
        await running.stop()
        world.stop()


def test_atm_sim_says_how_to_start_a_kiosk_when_none_answers(capsys):
    assert cli.main(["sim", "--url", "http://127.0.0.1:9", "insert", "2000"]) == 2
    assert "atm run --simulate" in capsys.readouterr().err


def test_atm_diagram_writes_the_generated_mermaid_diagram(tmp_path):
    out = tmp_path / "diagram.md"
    assert cli.main(["diagram", "-o", str(out)]) == 0
    text = out.read_text()
    assert "```mermaid" in text and "stateDiagram-v2" in text and "buy_cash --> buy_confirm" in text


def test_the_committed_diagram_is_the_one_the_table_generates(tmp_path):
    out = tmp_path / "state-diagram.md"
    cli.main(["diagram", "-o", str(out)])
    assert out.read_text() == (REPO / "docs" / "state-diagram.md").read_text(), \
        "docs/state-diagram.md is stale: run `atm diagram -o docs/state-diagram.md`"


def test_atm_journal_lists_transactions_and_reconciliation_items(tmp_path, capsys):
    from atm.journal import Journal
    from hal import Fiat, NoteCredited
    journal = Journal(tmp_path / "journal.sqlite")
    journal.record_credit(NoteCredited(device="validator", value=Fiat(1000, "EUR"), code="x"))
    journal.close()
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\nstate_dir = "{tmp_path}"\n')
    assert cli.main(["journal", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["transactions"] == [] and data["pending_sends"] == []
    assert "no open transaction" in data["reconciliation"][0]["summary"]


def test_atm_run_without_a_configuration_says_what_to_pass(capsys):
    assert cli.main(["run"]) == 2
    assert "--config" in capsys.readouterr().err
