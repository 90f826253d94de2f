"""`--validator ccnet` reaches the kiosk: the composition root builds CcnetValidator from
configuration, the simulated world starts the ccNet simulator, and a scripted buy on it
credits both notes and completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atm.composition import build_device
from atm.config import load
from atm.app import REPO_CONFIG
from drivers.ccnet.driver import CcnetValidator
from simulators.world import VALIDATORS, SimulatedWorld

REPO = Path(__file__).parents[3]


def test_the_simulated_world_offers_ccnet_and_the_composition_root_builds_its_driver():
    assert "ccnet" in VALIDATORS
    world = SimulatedWorld(validator="ccnet")
    try:
        tables = world.start()
        assert tables["validator"]["driver"] == "ccnet"
        assert tables["validator"]["port"].startswith("socket://127.0.0.1:")
        config = load(REPO_CONFIG / "simulate.toml")
        from atm.app import with_devices
        config = with_devices(config, tables)
        driver = build_device(config, config.devices["validator"], simulate=True)
        assert isinstance(driver, CcnetValidator)
        assert driver.port == tables["validator"]["port"] and driver.currency == config.currency
    finally:
        world.stop()


@pytest.mark.slow
def test_a_scripted_buy_on_the_ccnet_simulator_completes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "atm.cli", "demo", "--json", "--validator", "ccnet",
                             "--cas", "standin", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (tx,) = [t for t in json.loads(result.stdout)["transactions"] if t["type"] == "buy"]
    assert tx["status"] == "completed" and tx["notes"] == [2000, 5000] and tx["fiat_minor"] == 7000
