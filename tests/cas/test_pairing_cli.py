"""`atm cas pair`: a technician pairs the kiosk from the operator's code, typed or scanned."""

from __future__ import annotations

import asyncio
import json

import segno

from atm import cli
from simulators.cas.harness import SimulatedOperator


async def test_a_technician_pairs_the_kiosk_from_the_code_text_and_the_check_then_passes(tmp_path, capsys):
    async with SimulatedOperator(tmp_path / "op", kiosk_id="kiosk-7", pair_kiosk=False) as op:
        state = tmp_path / "kiosk-cas"
        code = await asyncio.to_thread(cli.main, ["cas", "pair", "--code", op.pairing_code, "--state-dir",
                                                  str(state), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"] and report["kiosk_id"] == "kiosk-7"
        assert report["cas_pin"] == op.cas.pin
        key_files = [p for p in state.iterdir() if p.name.endswith(".key")]
        assert key_files and all((p.stat().st_mode & 0o777) == 0o600 for p in key_files)


async def test_a_technician_pairs_the_kiosk_by_showing_the_code_to_the_camera(tmp_path, capsys):
    async with SimulatedOperator(tmp_path / "op", kiosk_id="kiosk-8", pair_kiosk=False) as op:
        image = tmp_path / "pairing.png"
        segno.make(op.pairing_code, error="m").save(str(image), scale=6, border=4)
        code = await asyncio.to_thread(cli.main, ["cas", "pair", "--scan-source", str(image), "--timeout", "20",
                                                  "--state-dir", str(tmp_path / "kiosk-cas"), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"] and report["kiosk_id"] == "kiosk-8"


async def test_a_used_or_garbage_code_is_refused_with_a_reason(tmp_path, capsys):
    async with SimulatedOperator(tmp_path / "op", kiosk_id="kiosk-9", pair_kiosk=False):
        code = await asyncio.to_thread(cli.main, ["cas", "pair", "--code", "atmpair:not-a-real-code",
                                                  "--state-dir", str(tmp_path / "k"), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 1 and report["ok"] is False and report["error"]
