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
from hypothesis import given, settings, strategies as st

from atm import cli
from atm.app import REPO_CONFIG, RunningKiosk, with_devices
from atm.config import load
from simulators.world import SAMPLE_ADDRESSES, SimulatedWorld

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_json_is_one_object_with_the_promised_keys_and_exit_zero(tmp_path):
    """Default simulators: ID-003 over TCP, camera frames, ESC/POS virtual printer, LCDM-4000
    over TCP, TLS CAS simulator. The demo buys, then sells (listed beside the buy)."""
    result = subprocess.run([sys.executable, "-m", "atm.cli", "demo", "--json", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert set(out) == {"transactions", "receipts"}
    tx, sale = out["transactions"]
    assert {"id", "type", "status", "fiat_minor", "currency", "sats", "address"} <= set(tx)
    assert tx["type"] == "buy" and tx["status"] == "completed"
    assert tx["fiat_minor"] == 7000 and tx["currency"] == "EUR" and tx["sats"] == 133_000
    assert tx["address"] == SAMPLE_ADDRESSES["regtest"]
    assert sale["type"] == "sell" and sale["status"] == "completed"
    assert sale["fiat_minor"] > 0 and sale["sats"] > 0 and len(sale["txids"]) == 1
    receipt, sell_receipt = out["receipts"]
    assert "70.00 EUR" in receipt and tx["id"][-12:] in receipt.replace("\n", "")
    assert f"[QR: {tx['address']}]" in receipt
    assert sale["id"][-12:] in sell_receipt.replace("\n", "") and f"[QR: {sale['address']}]" in sell_receipt


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


class _NoScreen:
    """The customer screen is not what these tests drive."""

    def snapshot(self):
        return {"screen": "idle", "data": {}, "seq": 1}

    def subscribe(self):
        return asyncio.Queue()

    def unsubscribe(self, queue) -> None:
        pass

    async def handle_action(self, message):
        return {"ok": False, "error": "not here"}


class _Recorder:
    """A simulator's control surface that records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def present(self, payload: str, distortion: str = "none") -> None:
        self.calls.append(("present", payload, distortion))

    def take_away(self) -> None:
        self.calls.append(("take_away",))

    def stall_stacking(self, then: str) -> None:
        self.calls.append(("stall_stacking", then))

    def lose_host_ack_once(self) -> None:
        self.calls.append(("lose_host_ack_once",))


@pytest.fixture
async def panel_url():
    from atm.ui.server import UiServer
    world = SimulatedWorld()
    world.sims["scanner"], world.sims["validator"] = _Recorder(), _Recorder()
    server = UiServer(_NoScreen(), world, port=0)
    url = await server.start()
    try:
        yield url, world
    finally:
        await server.stop()


async def test_atm_sim_screen_into_a_reader_that_stops_early_blames_no_kiosk(panel_url):
    """`atm sim screen | head -c 100`: head leaves before the answer is written. Before the
    fix the broken pipe was caught as a connection error and the technician read "no
    simulated kiosk answers" about a kiosk that had just answered."""
    import os
    import subprocess
    import sys
    url, _world = panel_url
    read_end, write_end = os.pipe()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"from atm import cli; raise SystemExit(cli.main(['sim', '--url', {url!r}, 'state']))",
        stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)                       # the reader is gone before the kiosk answers
    stderr = await asyncio.wait_for(child.stderr.read(), 30)
    assert await asyncio.wait_for(child.wait(), 30) == 0
    assert b"no simulated kiosk answers" not in stderr and b"Traceback" not in stderr, stderr


LINK = "bitcoin:bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080?amount=0.001&label=x%20y&message=a=b"


async def test_atm_sim_qr_presents_a_full_payment_link_as_typed(panel_url):
    """Before the fix the "=" in the link made `atm sim` split it into a key and a value."""
    url, world = panel_url
    assert await asyncio.to_thread(cli.main, ["sim", "--url", url, "qr", LINK]) == 0
    assert await asyncio.to_thread(cli.main, ["sim", "--url", url, "qr", "12345"]) == 0
    assert await asyncio.to_thread(cli.main, ["sim", "--url", url, "qr", LINK, "distortion=blur"]) == 0
    assert world.sims["scanner"].calls == [("present", LINK, "none"), ("present", "12345", "none"),
                                           ("present", LINK, "blur")]


def test_a_payment_link_survives_the_shell_as_one_argument(tmp_path):
    """The command as a person types it, through a real shell and a subprocess."""
    result = subprocess.run(f"{sys.executable} -c 'import sys, json; from atm.cli import _sim_args; "
                            f"print(json.dumps(_sim_args(sys.argv[1], sys.argv[2:])))' qr '{LINK}'",
                            shell=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert json.loads(result.stdout) == ["present_qr", {"text": LINK}], result.stderr


@pytest.mark.parametrize("words, call", [
    (["stall", "acceptor"], ("validator", ("stall_stacking", "acceptor"))),
    (["stall", "then=stacker"], ("validator", ("stall_stacking", "stacker"))),
    (["stall_stacking", "then=acceptor"], ("validator", ("stall_stacking", "acceptor"))),
    (["lose-ack"], ("validator", ("lose_host_ack_once",))),
    (["take-qr"], ("scanner", ("take_away",))),
])
async def test_atm_sim_drives_the_validator_faults_and_takes_the_code_away(panel_url, words, call):
    url, world = panel_url
    assert await asyncio.to_thread(cli.main, ["sim", "--url", url, *words]) == 0
    kind, recorded = call
    assert world.sims[kind].calls == [recorded]


def _journal_with_one_credit(folder: Path) -> None:
    from atm.journal import Journal
    from hal import Fiat, NoteCredited
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder / "journal.sqlite")
    journal.record_credit(NoteCredited(device="validator", value=Fiat(1000, "EUR"), code="x"))
    journal.close()


def test_atm_journal_finds_the_kiosks_journal_from_any_folder(tmp_path, monkeypatch, capsys):
    """The configuration names its state folder relative to itself; before the fix the
    path was taken relative to wherever `atm journal` was started."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "kiosk.toml").write_text('[kiosk]\nstate_dir = "../state"\n')
    _journal_with_one_credit(tmp_path / "state")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert cli.main(["journal", "--config", str(etc / "kiosk.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "no open transaction" in data["reconciliation"][0]["summary"]
    assert cli.main(["journal", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == data
    assert cli.main(["journal", "--state-dir", str(tmp_path / "nothing-here")]) == 2
    assert "no journal at" in capsys.readouterr().err


def test_an_outside_device_port_belongs_to_simulate_mode(capsys):
    assert cli.main(["run", "--config", str(REPO_CONFIG / "kiosk.example.toml"),
                     "--validator-port", "socket://127.0.0.1:7001"]) == 2
    assert "--validator-port is for --simulate" in capsys.readouterr().err


def test_an_outside_device_needs_its_protocol_named(tmp_path, capsys):
    assert cli.main(["run", "--simulate", "--state-dir", str(tmp_path), "--ui-port", "0", "--validator", "standin",
                     "--validator-port", "socket://127.0.0.1:7001"]) == 2
    assert "--validator (id003, ssp" in capsys.readouterr().err


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["qr", "insert", "stall", "lose-ack", "take-qr", "door", "paper", "jam", "x-y", "qr2"]),
       st.lists(st.text(max_size=30), max_size=4))
def test_any_sim_words_give_a_command_or_a_usage_message(command, words):
    try:
        name, args = cli._sim_args(command, words)
    except SystemExit as exc:
        assert command in str(exc)
    else:
        assert isinstance(name, str) and name and isinstance(args, dict)
        json.dumps(args)  # it goes to the kiosk as JSON
        if command == "qr" and words and not ("=" in words[0] and words[0].partition("=")[0].isidentifier()):
            assert args["text"] == words[0]  # a code is passed on exactly as typed
