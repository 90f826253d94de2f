"""`atm run --simulate` as a newcomer uses it: started, stopped and started again in
the same folder, it sells every time; a second copy on a folder in use is refused
and leaves the first one's keys and journal alone. Each kiosk is a real process."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from kiosk_process import REPO, KioskProcess, journal

pytestmark = pytest.mark.slow


def _completed(state_dir) -> list[dict]:
    return [t for t in journal(state_dir)["transactions"] if t["status"] == "completed"]


async def test_a_simulated_kiosk_restarted_in_the_same_folder_sells_every_time(tmp_path):
    """Each run signs the [limits] of its configuration, and the new ones are in force:
    the fee changes from run to run and the sats follow (20.00 EUR at 50,000 EUR/BTC).
    Caught before the fix: the second start refused to sell ("stored bundle signed by a
    key that is not the trusted operator key", "bundle version 1 is not newer"). Mutations
    caught: a new operator key per run (the stored bundle is refused, and with it the
    previous run's limits), bundle versions restarting at 1 (the second run's fee is
    ignored: its bundle is "not newer")."""
    template = (REPO / "config" / "simulate.toml").read_text()
    expected_sats = {}
    for run, fee in enumerate(("5", "10", "2"), start=1):
        config = tmp_path / f"run{run}.toml"
        config.write_text(template.replace('fee_percent = "5"', f'fee_percent = "{fee}"'))
        with KioskProcess(tmp_path / "state", "--config", str(config)) as kiosk:
            await kiosk.buy([2000])
            assert "refused" not in kiosk.log(), kiosk.log()[-3000:]
        assert kiosk.proc.returncode == 0, kiosk.log()[-3000:]
        done = _completed(tmp_path / "state")
        assert len(done) == run
        expected_sats[done[-1]["id"]] = 2000 * (100 - int(fee)) // 100 * 20  # 1 cent = 20 sat at 50,000 EUR/BTC
    assert {t["id"]: t["sats"] for t in _completed(tmp_path / "state")} == expected_sats
    key = tmp_path / "state" / "simulated-operator" / "operator.key"
    assert key.stat().st_mode & 0o777 == 0o600


def _files(folder):
    """Every key, certificate, pairing and bundle file: bytes and modification time."""
    return {path.relative_to(folder): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.suffix in (".key", ".crt", ".json", ".lock", ".pem")}


async def test_a_second_copy_on_a_folder_in_use_is_refused_and_touches_nothing(tmp_path):
    """Caught before the fix: the second copy re-paired (rewrote the first one's kiosk key,
    certificate and operator key), then died with a traceback on the busy UI port."""
    with KioskProcess(tmp_path) as first:
        await first.buy([1000])
        before = _files(tmp_path)
        assert any(p.name == "operator.key" for p in before) and any(p.name == "kiosk.key" for p in before)
        second = subprocess.run([sys.executable, "-m", "atm.cli", "run", "--simulate", "--state-dir", str(tmp_path),
                                 "--ui-port", "0"], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert second.returncode != 0
        assert "another kiosk" in second.stderr and str(tmp_path) in second.stderr
        assert "Traceback" not in second.stderr
        assert _files(tmp_path) == before
        await first.buy([1000])  # the first one still sells, with its own keys
    assert len(_completed(tmp_path)) == 2


async def test_a_simulated_operator_key_readable_by_others_is_refused_by_name(tmp_path, capsys):
    """The key stays mode 0600; a key file someone opened up is not used, and the message
    names the file and says what to do."""
    from atm import cli
    state = tmp_path / "state"
    with KioskProcess(state):
        pass
    key = state / "simulated-operator" / "operator.key"
    key.chmod(0o644)
    assert await asyncio.to_thread(cli.main, ["run", "--simulate", "--state-dir", str(state), "--ui-port", "0"]) == 2
    err = capsys.readouterr().err
    assert str(key) in err and "600" in err
