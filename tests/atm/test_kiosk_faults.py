"""Never wedged, never leaking: a failing journal stops the cash and says why, no log
line carries the technician PIN, background work survives any exception, alerts
reach the operator's server, counts do not depend on the wall clock, and no receipt
is promised without a working printer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from atm.cas.standin import StandinCas
from atm.journal import JournalWriteError
from hal import DeviceState, DeviceStatusChanged, Fiat, NoteCredited
from kiosk_harness import PIN, Harness

EUR = "EUR"


class _FailingDb:
    """The journal's sqlite connection, until `fail` is set: then every write fails as
    a full disk does."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.fail = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.fail and sql.startswith("BEGIN"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _break_journal(h: Harness) -> _FailingDb:
    proxy = _FailingDb(h.journal._db)
    h.journal._db = proxy
    return proxy


async def test_a_journal_failure_during_a_customer_action_answers_and_goes_out_of_service_with_the_reason(tmp_path):
    """Mutation caught: a handler failure that leaves the action unanswered (the old
    consumer only logged) or leaves the validator taking cash."""
    async with Harness(tmp_path) as h:
        await h.start_buy()
        await h.insert(2000)
        assert (await h.act("finish_cash"))["ok"]
        await h.wait_for(lambda: h.screen == "confirm")
        tx_id = h.kiosk.tx_id
        disk = _break_journal(h)
        disk.fail = True
        reply = await asyncio.wait_for(h.act("confirm"), 10)   # enter_sending must journal: it cannot
        assert reply["ok"] is False and reply["error"]
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "journal" in h.kiosk.out_of_service_reason() and "no cash" in h.kiosk.out_of_service_reason()
        assert h.validator.state_info()["enabled"] is False
        assert (await h.act("start_buy"))["ok"] is False
        assert h.cas.sent() == []                         # nothing sent without a journaled request
        disk.fail = False
    # after the repair and a restart, recovery sends what was credited
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: len(h.cas.sent()) == 1)
        assert h.cas.sent()[0]["request_id"].startswith(tx_id) and h.cas.sent()[0]["sats"] == 38_000


async def test_a_credit_the_journal_cannot_write_is_not_acknowledged_and_the_kiosk_stops_taking_cash(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        tx_id = h.kiosk.tx_id

        def disk_full(event):
            raise JournalWriteError("the journal cannot be written (credit_recorded): disk full")

        h.journal.record_credit = disk_full
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert "journal" in h.kiosk.out_of_service_reason() and h.validator.state_info()["enabled"] is False
        assert h.validator.state_info()["stalled"] == 2000        # the device was never acknowledged
        assert h.validator.cashbox == [] and h.journal.credited(tx_id).minor == 0


async def test_an_escrow_decision_the_journal_cannot_write_gives_the_note_back(tmp_path):
    async with Harness(tmp_path) as h:
        await h.start_buy()
        _break_journal(h).fail = True
        assert h.validator.insert_note(2000)
        await h.wait_for(lambda: h.screen == "out_of_service")
        assert h.validator.state_info()["escrow"] is None and h.validator.cashbox == []


async def test_no_log_line_carries_the_technician_pin_when_a_login_fails_inside(tmp_path, caplog):
    """Mutation caught: logging the failed item with %r (the old `while handling %r`),
    which printed the action message and its PIN."""
    caplog.set_level(logging.DEBUG)
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        _break_journal(h).fail = True                      # pin_ok journals the attempt: it fails
        reply = await asyncio.wait_for(h.act("service_login", pin=PIN), 10)
        assert reply["ok"] is False
        await h.wait_for(lambda: h.screen == "out_of_service")
    logged = caplog.text + "".join(str(r.args) + str(r.exc_info) + str(r.exc_text) for r in caplog.records)
    assert "while handling service_login" in caplog.text
    assert PIN not in logged


async def test_background_work_survives_any_exception_and_boot_is_not_stopped(tmp_path):
    class BrokenRates(StandinCas):
        calls = 0

        async def quote(self, currency: str):
            BrokenRates.calls += 1
            raise OverflowError("rate 1E-30 does not fit")

    h = Harness(tmp_path)
    broken = BrokenRates(tmp_path / "ledger.sqlite", settings=h.cas.settings())
    h.kiosk.cas = h.kiosk.pricing.cas = h.kiosk.settlement.cas = broken
    h.kiosk.retry_interval = 0.05
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        await h.wait_for(lambda: BrokenRates.calls >= 3)
        assert h.data["buy_enabled"] is False
        assert any(t.get_name() == "kiosk-background" for t in h.kiosk._tasks)
        assert any("rate refresh failed" in a for a in h.kiosk.service_status()["alerts"])


async def test_alerts_are_journaled_and_handed_to_the_cas_link_for_upload(tmp_path):
    """The kiosk's alerts reach the CAS link's durable alert queue in the link's own
    vocabulary (atm.cas.alerts): a detail mapping, a known severity. Catches a kiosk
    that hands the link a shape it refuses (the upload then dies in the background)."""
    h = Harness(tmp_path)
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: any(a["kind"] == "door_open" for a in h.cas.alerts()))
        h.sensors.pin("door").drive_low()
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("service_switch").drive_high()
        await h.wait_for(lambda: h.screen == "maintenance_login")
        await h.act("service_login", pin="000000")
        await h.wait_for(lambda: any(a["kind"] == "wrong_pin" for a in h.cas.alerts()))
        journaled = " ".join(f["data"] for f in h.journal.facts("alert"))
    door = next(a for a in h.cas.alerts() if a["kind"] == "door_open")
    assert door["severity"] == "warning" and door["detail"]["text"] == "door opened"
    assert '"alert": "door_open"' in journaled and '"alert": "wrong_pin"' in journaled


async def test_alerts_fall_back_to_report_event_on_a_link_without_an_alert_queue(tmp_path):
    class EventsOnly(StandinCas):
        report_alert = None                         # an older CAS link: events only

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.events: list[tuple[str, dict]] = []

        async def report_event(self, kind: str, detail: dict) -> str:
            self.events.append((kind, dict(detail)))
            return str(len(self.events))

    h = Harness(tmp_path)
    reporting = EventsOnly(tmp_path / "ledger.sqlite", settings=h.cas.settings())
    h.kiosk.cas = h.kiosk.pricing.cas = h.kiosk.settlement.cas = reporting
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: any(d["kind"] == "door_open" for _, d in reporting.events))
    assert all(kind == "alert" for kind, _ in reporting.events)


async def test_alerts_survive_in_the_journal_without_a_cas_upload(tmp_path):
    h = Harness(tmp_path)
    h.kiosk.cas.report_alert = None                  # no upload path at all: the journal keeps it
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: h.screen == "out_of_service")
        kinds = [f["data"] for f in h.journal.facts("alert")]
        assert any('"alert": "door_open"' in k and '"severity": "warning"' in k for k in kinds)


async def test_no_receipt_is_promised_while_the_printer_is_offline(tmp_path):
    async with Harness(tmp_path) as h:
        await h.wait_for(lambda: h.screen == "idle")
        h.kiosk._sink(DeviceStatusChanged(device="printer", state=DeviceState.OFFLINE, detail="cable"))
        await h.settle_events()
        await h.start_buy()
        assert h.data["receipt_available"] is False
        h.kiosk._sink(DeviceStatusChanged(device="printer", state=DeviceState.ONLINE, detail=""))
        await h.settle_events()
        await h.insert(1000)
        assert h.data["receipt_available"] is True


def test_cashbox_counts_follow_the_journal_order_even_when_the_clock_steps_back(tmp_path, monkeypatch):
    """Mutation caught: counting by credited_at timestamps (the old cashbox_counts)."""
    import atm.journal as journal_mod
    from atm.journal import Journal
    clock = [2_000_000_000.0]
    monkeypatch.setattr(journal_mod.time, "time", lambda: clock[0])
    journal = Journal(tmp_path / "journal.sqlite")
    journal.open_buy("t1", "addr", EUR)
    journal.escrow_decided("validator", "1", Fiat(2000, EUR), "stack", "t1")
    journal.record_credit(NoteCredited(device="validator", value=Fiat(2000, EUR), code="1"))
    assert journal.collect_cash() == {2000: 1}
    clock[0] -= 3600                                     # NTP steps the clock back an hour
    journal.escrow_decided("validator", "2", Fiat(5000, EUR), "stack", "t1")
    journal.record_credit(NoteCredited(device="validator", value=Fiat(5000, EUR), code="2"))
    assert journal.cashbox_counts() == {5000: 1}
    journal.close()


async def test_a_failing_alert_upload_is_logged_once_and_never_becomes_an_alert_loop(tmp_path, caplog):
    """Mutation caught: raising an "internal" alert when an alert upload fails (its upload
    fails the same way, and the kiosk spins alerting about alerts)."""
    h = Harness(tmp_path)
    calls: list[str] = []

    async def broken_queue(kind: str, detail: Any = None, severity: str = "warning") -> str:
        calls.append(kind)
        raise OSError("disk full")

    h.kiosk.cas.report_alert = broken_queue
    async with h:
        await h.wait_for(lambda: h.screen == "idle")
        h.sensors.pin("door").drive_high()
        await h.wait_for(lambda: "door_open" in calls)
        for _ in range(20):                          # give a loop every chance to show itself
            await asyncio.sleep(0.01)
    assert calls.count("door_open") == 1 and "internal" not in calls
    assert "could not be queued for the CAS: OSError" in caplog.text
