"""The service menu at kiosk level: it opens only with the physical service switch and
the technician PIN; wrong PINs lock the pad for longer and longer, the count survives a
restart, and every attempt is an alert for the operator."""

from __future__ import annotations

import json

from atm.service_lockout import FIRST_DELAY_S, FREE_ATTEMPTS, PinGuard
from kiosk_harness import PIN, Harness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(h: Harness, clock: Clock) -> None:
    h.kiosk.pin_guard = PinGuard(h.config.state_dir / "service-pin.json", clock=clock)


async def _open_pad(h: Harness) -> None:
    await h.wait_for(lambda: h.screen == "idle")
    h.sensors.pin("service_switch").drive_high()
    await h.wait_for(lambda: h.screen == "maintenance_login")


async def test_no_screen_action_opens_the_service_menu_only_the_switch_does(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        for action in ("open_service", "service", "service_login"):
            reply = await h.act(action, pin=PIN)
            assert reply["ok"] is False, action
        assert h.screen == "idle"
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        assert (await h.act("service_login", pin=PIN))["ok"]
        await h.wait_for(lambda: h.screen == "maintenance")


async def test_wrong_pins_grow_the_lockout_and_the_right_pin_works_after_the_delay(tmp_path):
    clock = Clock()
    h = Harness(tmp_path)
    _guard(h, clock)
    async with h:
        await _open_pad(h)
        for n in range(1, FREE_ATTEMPTS):
            reply = await h.act("service_login", pin="000000")
            assert reply["message"] == {"key": "service.wrong_pin", "values": {"left": str(FREE_ATTEMPTS - n)}}
        reply = await h.act("service_login", pin="000000")          # the fifth: the pad locks
        assert reply["message"]["key"] == "service.wrong_pin_locking"
        assert reply["message"]["values"]["wait"] == str(int(FIRST_DELAY_S))
        # even the right PIN is not checked while locked
        reply = await h.act("service_login", pin=PIN)
        assert reply["ok"] is False and reply["message"]["key"] == "service.locked"
        assert h.screen == "maintenance_login" and h.data["locked_for_s"] == FIRST_DELAY_S
        clock.now += FIRST_DELAY_S
        reply = await h.act("service_login", pin="000000")          # the sixth: twice as long
        assert reply["message"]["values"]["wait"] == str(int(2 * FIRST_DELAY_S))
        clock.now += 2 * FIRST_DELAY_S
        assert (await h.act("service_login", pin=PIN))["ok"]
        await h.wait_for(lambda: h.screen == "maintenance")
        assert h.kiosk.pin_guard.failures == 0


async def test_the_lockout_survives_a_restart(tmp_path):
    clock = Clock()
    h = Harness(tmp_path)
    _guard(h, clock)
    async with h:
        await _open_pad(h)
        for _ in range(FREE_ATTEMPTS):
            await h.act("service_login", pin="000000")
    assert json.loads((tmp_path / "service-pin.json").read_text()) == {"failures": FREE_ATTEMPTS}
    clock2 = Clock()
    h2 = Harness(tmp_path)
    _guard(h2, clock2)
    async with h2:
        await _open_pad(h2)
        reply = await h2.act("service_login", pin=PIN)
        assert reply["ok"] is False and reply["message"]["key"] == "service.locked"
        clock2.now += FIRST_DELAY_S
        assert (await h2.act("service_login", pin=PIN))["ok"]
        await h2.wait_for(lambda: h2.screen == "maintenance")


async def test_every_attempt_is_an_alert_and_the_pin_is_in_none_of_them(tmp_path):
    async with Harness(tmp_path) as h:
        await _open_pad(h)
        await h.act("service_login", pin="999999")
        assert (await h.act("service_login", pin=PIN))["ok"]
        alerts = [json.loads(f["data"]) for f in h.journal.facts("alert")]
        kinds = [a["alert"] for a in alerts]
        assert kinds.count("wrong_pin") == 1 and kinds.count("service_login") == 1
        assert not any(PIN in a["text"] or "999999" in a["text"] for a in alerts)


async def test_a_wrong_pin_gives_the_login_screen_its_full_time_again(tmp_path):
    async with Harness(tmp_path) as h:
        await _open_pad(h)
        first_deadline = h.kiosk._deadline
        h.kiosk._deadline -= 20                   # as if 20 s went by on the pad
        await h.act("service_login", pin="000000")
        assert h.kiosk._deadline >= first_deadline
