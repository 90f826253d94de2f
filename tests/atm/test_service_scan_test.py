"""The service menu's scan test on a kiosk (atm.service_menu): it says whether the scanner
can show a camera picture, gives none while the menu is closed or the test is not
running, and whichever way the technician leaves the menu, the scanner stops."""

from __future__ import annotations

import pytest

from atm.config import Timeouts
from atm.ui.facade import PreviewRefused
from kiosk_harness import REGTEST_ADDRESS, Harness, open_service_menu



async def _refused(h: Harness) -> PreviewRefused:
    with pytest.raises(PreviewRefused) as refused:
        await h.kiosk.service_camera_preview()
    return refused.value


async def test_a_scanner_without_a_camera_runs_the_scan_test_and_says_it_has_no_picture(tmp_path):
    async with Harness(tmp_path) as h:
        assert (await _refused(h)).status == 404           # idle: the customer's screen gets no frame
        await open_service_menu(h)
        assert h.data["tests"]["scan_test"] == {"running": False, "preview": False}
        assert (await _refused(h)).status == 409           # menu open, scan test not running
        assert (await h.act("service_action", do="scan_test"))["ok"]
        assert h.data["tests"]["scan_test"] == {"running": True, "preview": False}
        refused = await _refused(h)
        assert refused.status == 404 and "no camera" in str(refused)
        assert h.scanner.present(REGTEST_ADDRESS)          # it still reads codes: shown, not acted on
        await h.wait_for(lambda: h.data["tests"]["last_scan"] == REGTEST_ADDRESS)
        assert (await h.act("service_action", do="scan_test", stop=True))["ok"]
        assert h.data["tests"]["scan_test"] == {"running": False, "preview": False}
        assert not h.scanner.present(REGTEST_ADDRESS)
        assert h.screen == "maintenance" and h.journal.transactions() == []


@pytest.mark.parametrize("way_out", ["exit_button", "menu_timer"])
async def test_leaving_the_menu_any_way_stops_a_running_scan_test(tmp_path, way_out):
    """Mutation caught: without the menu state's on_exit (atm.machine `leave_menu`), the
    menu's timer leaves the camera scanning on the customer's idle screen."""
    timeouts = Timeouts(scan=30, cash=30, confirm=30, sending=30, receipt=30,
                        maintenance=1 if way_out == "menu_timer" else 30, recheck=30)
    async with Harness(tmp_path, timeouts=timeouts) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="scan_test"))["ok"]
        assert h.data["tests"]["scan_test"]["running"] is True
        if way_out == "exit_button":
            assert (await h.act("service_action", do="exit"))["ok"]
        await h.wait_for(lambda: h.screen == "idle")
        assert not h.scanner.present(REGTEST_ADDRESS), "the scanner still scans after the menu was left"
        assert h.kiosk.service_menu.scan_test is False
        assert (await _refused(h)).status == 404
        assert h.journal.transactions() == []


async def test_the_menu_timer_ends_a_running_note_test_so_the_idle_kiosk_takes_no_note(tmp_path):
    """Mutation caught: a `leave_menu` that stops only the scanner leaves the validator
    enabled after the menu's timer, so the idle kiosk would draw a customer's note in
    with no purchase open."""
    timeouts = Timeouts(scan=30, cash=30, confirm=30, sending=30, receipt=30, maintenance=1, recheck=30)
    async with Harness(tmp_path, timeouts=timeouts) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="note_test"))["ok"]
        assert h.validator.state_info()["enabled"] is True
        await h.wait_for(lambda: h.screen == "idle")
        assert h.kiosk.service_menu.note_test is False
        assert h.validator.state_info()["enabled"] is False, "the validator still takes notes after the menu"
        assert not h.validator.insert_note(2000)
        assert h.journal.transactions() == []
