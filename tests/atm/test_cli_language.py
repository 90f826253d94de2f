"""`atm run --simulate --language xx` starts on that language, and `atm sim screen` prints
the current screen's name with its words in that language."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from atm import cli, texts

REPO = Path(__file__).resolve().parents[2]


def test_atm_run_with_a_language_it_has_no_texts_for_says_which_it_has(tmp_path, capsys):
    try:
        cli.main(["run", "--simulate", "--language", "xx", "--state-dir", str(tmp_path), "--ui-port", "0"])
    except SystemExit as exc:
        assert "xx" in str(exc) and "de" in str(exc)
    else:
        raise AssertionError("atm run --language xx started")


def test_atm_run_starts_on_the_language_given_and_atm_sim_screen_prints_its_words(tmp_path, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "atm.cli", "run", "--simulate", "--language", "de",
                             "--ui-port", "0", "--state-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            if line.startswith("Customer screen: "):
                url = line.split(": ", 1)[1].strip().rstrip("/")
        assert url, "atm run never printed the customer screen's address"
        screen = None
        while time.monotonic() < deadline:
            capsys.readouterr()
            assert cli.main(["sim", "--url", url, "screen"]) == 0
            screen = json.loads(capsys.readouterr().out)
            if screen["screen"] == "idle":
                break
            time.sleep(0.2)
        assert screen["screen"] == "idle" and screen["data"]["language"] == "de"
        assert "texts" in screen
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert texts.text("de", "screen.buy") == "Bitcoin kaufen"
