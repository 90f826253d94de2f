"""atm/app.py: one kiosk per state folder (an flock the kernel drops with the process),
and what the simulated operator signs from [limits]."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from atm import cli
from atm.app import REPO_CONFIG, StateDirLock, StateDirLocked, simulated_settings
from atm.config import load


def test_a_held_state_folder_refuses_a_second_holder_and_names_the_first(tmp_path):
    with StateDirLock(tmp_path):
        with pytest.raises(StateDirLocked) as info:
            StateDirLock(tmp_path).acquire()
    import os
    assert f"pid {os.getpid()}" in str(info.value) and "--state-dir" in str(info.value)
    with StateDirLock(tmp_path):  # released on exit: the folder is free again
        pass


def test_a_killed_kiosk_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from atm.app import StateDirLock; "
                               f"StateDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateDirLocked):
            StateDirLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        StateDirLock(tmp_path).acquire().release()
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_demo_on_a_folder_in_use_is_refused(tmp_path, capsys):
    with StateDirLock(tmp_path):
        assert cli.main(["demo", "--state-dir", str(tmp_path), "--validator", "standin", "--printer", "standin",
                         "--scanner", "standin", "--cas", "standin"]) == 2
    assert "another kiosk" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kiosk.lock"]


def test_the_simulated_operator_signs_the_limits_fees_bounds_and_quote_age_of_the_configuration(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text((REPO_CONFIG / "simulate.toml").read_text()
                    .replace("fixed_fee_minor = 0", "fixed_fee_minor = 150")
                    .replace('rate_bounds = ["5000", "500000"]', 'rate_bounds = ["40000", "60000"]')
                    .replace("quote_max_age_s = 60", "quote_max_age_s = 45"))
    settings = simulated_settings(load(path))
    assert settings["min_buy_minor"] == 500 and settings["max_buy_minor"] == 100_000
    assert settings["fee_percent"] == "5" and settings["fixed_fee_minor"] == 150
    assert settings["rate_bounds"] == {"EUR": ["40000", "60000"]} and settings["quote_max_age_s"] == 45
    assert settings["technician_pin_hash"].startswith("pbkdf2_sha256$")


def test_without_rate_bounds_the_simulated_operator_signs_a_wide_band_around_the_simulators_rate(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text('[kiosk]\ncurrency = "CHF"\n')
    low, high = (Decimal(v) for v in simulated_settings(load(path))["rate_bounds"]["CHF"])
    assert low < Decimal("50000") < high and high / low >= 10
