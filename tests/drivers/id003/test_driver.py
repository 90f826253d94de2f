"""Id003Validator against the ID-003 simulator over a real pty pair (and TCP where
the transport matters): money flow, refusals, device errors, line faults, watchdog."""

from __future__ import annotations

import pytest

from drivers.id003.driver import MISSES_BEFORE_OFFLINE, Id003Validator
from drivers.id003.frames import Frame
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout
from hal.events import (
    CashboxChanged,
    DeviceStatusChanged,
    FraudDetected,
    NoteCredited,
    NoteEscrowed,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat
from hal.status import DeviceState, UnitStatus
from simulators.id003 import Id003Simulator
from tests.drivers.polled_validator_harness import status_event

EUR = "EUR"


# -- money flow ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
def test_note_is_credited_only_after_vend_valid_and_after_the_recorder_returned(sim, log, make_driver):
    seen_by_recorder = []
    driver = make_driver()

    def recorder(event):
        # At this moment the device must be holding VEND VALID, un-acknowledged,
        # and the application must not have seen a credit yet.
        seen_by_recorder.append((sim.state()["state"], sim.state()["acks_received"], len(log.of(NoteCredited))))

    driver.set_credit_recorder(recorder)
    assert sim.insert_note(1000)
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert credited.value == Fiat(1000, EUR) and credited.code == "0x62"
    assert seen_by_recorder == [("vend_valid", 0, 0)]
    kinds = [type(e) for e in log.events if isinstance(e, (NoteEscrowed, NoteCredited, NoteStacked))]
    assert kinds == [NoteEscrowed, NoteCredited, NoteStacked]
    assert sim.state()["stacked"] == [1000]
    assert sim.state()["acks_received"] == 1


def test_escrow_code_missing_from_the_configured_table_is_returned_never_stacked(sim, log, make_driver, credits, wait_until):
    make_driver(currency=EUR, denominations={"0x62": 1000})
    sim.insert_note(500)                   # escrow code 0x61: not in the table
    escrowed = log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert escrowed.value is None and escrowed.code == "0x61"
    assert returned.reason == "unknown denomination"
    wait_until(lambda: sim.state()["returned"] == [500], what="note back to the customer")
    assert sim.state()["stacked"] == [] and credits == []


def test_escrow_code_the_device_did_not_assign_is_returned(log, credits, wait_until):
    simulator = Id003Simulator(step_s=0.02, unassigned=(0x63,))
    url = simulator.start("pty")
    driver = Id003Validator(url, poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    try:
        driver.open(log)
        assert Fiat(2000, EUR) not in driver.denominations
        driver.enable()
        wait_until(lambda: not simulator.state()["inhibited"])
        simulator.insert_note(2000)
        returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
        assert returned.reason == "unknown denomination"
        wait_until(lambda: simulator.state()["returned"] == [2000])
        assert simulator.state()["stacked"] == [] and credits == []
    finally:
        driver.close()
        simulator.stop()


def test_note_that_would_pass_the_limit_is_returned_by_the_application(sim, log, make_driver, credits, wait_until):
    limit = 1500
    driver = make_driver()
    pending = []

    def kiosk(event):
        if isinstance(event, NoteEscrowed) and event.value is not None:
            room = limit - sum(c.value.minor for c in credits) - sum(pending)
            if event.value.minor <= room:
                pending.append(event.value.minor)
                driver.stack()
            else:
                driver.return_note()
        elif isinstance(event, NoteCredited):
            pending.clear()

    log.on_event = kiosk
    sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    wait_until(lambda: sim.state()["state"] == "idle")
    sim.insert_note(1000)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert returned.value == Fiat(1000, EUR) and returned.reason == "returned on request"
    wait_until(lambda: sim.state()["returned"] == [1000])
    assert [c.value.minor for c in credits] == [1000]
    assert sim.state()["stacked"] == [1000]


def test_enable_with_an_accept_list_sets_jcms_inhibit_bits_so_the_unit_refuses_other_notes(
        sim, log, make_driver, credits, wait_until):
    """0xC0 data: byte 0 bit k inhibits escrow code 0x61+k. Accepting only 10.00 (0x62)
    of the simulator's 0x61..0x66 sets bits 0, 2, 3, 4, 5 of byte 0 and nothing in byte 1."""
    driver = make_driver(enable=False)
    driver.enable(accept=[Fiat(1000, EUR)])
    wait_until(lambda: not sim.state()["inhibited"] and sim.state()["denomination_mask"] == "3d00",
               what="mask 3d 00 set")
    sim.insert_note(500)
    rejected = log.wait_for(lambda e: isinstance(e, NoteRejected))
    assert rejected.code == "0x79"
    assert log.of(NoteEscrowed) == [] and credits == []
    wait_until(lambda: sim.state()["rejected"] == [500], what="note refused by the unit")
    driver.enable()
    wait_until(lambda: sim.state()["denomination_mask"] == "0000", what="mask cleared")


class _SimIgnoringTheMask(Id003Simulator):
    """A unit whose denomination inhibit does not work: the driver's own check must hold."""

    def _denomination_inhibited(self, code: int) -> bool:
        return False


def test_note_outside_the_accept_list_that_reaches_escrow_is_returned_without_asking(log, credits, wait_until):
    sim = _SimIgnoringTheMask(step_s=0.02)
    sim.start("pty")
    driver = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    try:
        driver.open(log)
        driver.enable(accept=[Fiat(1000, EUR)])
        wait_until(lambda: not sim.state()["inhibited"])
        sim.insert_note(500)
        returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
        assert returned.value == Fiat(500, EUR) and "not accepted" in returned.reason
        assert log.of(NoteEscrowed) == []
        wait_until(lambda: sim.state()["returned"] == [500])
        assert credits == []
    finally:
        driver.close()
        sim.stop()


def test_escrow_without_a_decision_is_returned_after_the_escrow_timeout(sim, log, make_driver, credits, wait_until):
    log.on_event = lambda e: None
    driver = make_driver(escrow_timeout=0.3)
    sim.insert_note(5000)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert "no stack/return decision" in returned.reason
    wait_until(lambda: sim.state()["returned"] == [5000])
    assert credits == []
    with pytest.raises(DeviceError, match="no note waiting"):
        driver.stack()


def test_note_the_device_does_not_recognise_is_rejected_with_its_reason(sim, log, make_driver, credits):
    make_driver()
    sim.insert_note(700)
    rejected = log.wait_for(lambda e: isinstance(e, NoteRejected))
    assert rejected.reason == "denomination not recognised" and rejected.code == "0x76"
    assert credits == []


def test_disable_inhibits_the_acceptor(sim, make_driver, wait_until):
    driver = make_driver()
    driver.disable()
    wait_until(lambda: sim.state()["inhibited"], what="acceptor inhibited")
    assert not sim.insert_note(1000)


def test_acceptor_stays_inhibited_until_enabled(sim, make_driver):
    driver = make_driver(enable=False)
    assert driver.state == DeviceState.ONLINE
    assert sim.state()["inhibited"]
    assert not sim.insert_note(1000)


# -- identity and tables ------------------------------------------------------------------

def test_open_reads_version_and_denominations_from_the_device(make_driver):
    driver = make_driver(enable=False)
    info = driver.info()
    assert info.model == "U(EUR5)-700-SS"
    assert info.firmware == "ID003-05V027-00 05DEC24"
    assert info.extra["version"] == "U(EUR5)-700-SS ID003-05V027-00 05DEC24"
    assert info.serial == ""
    assert driver.currency == EUR
    assert [d.minor for d in driver.denominations] == [500, 1000, 2000, 5000, 10000, 20000]
    assert driver.escrow_table["0x66"] == Fiat(20000, EUR)


class _SimLosingTableReplies(Id003Simulator):
    """An acceptor whose first `lose` answers to currency assign never arrive."""

    def __init__(self, lose: int):
        super().__init__(step_s=0.02)
        self.lose = lose

    def _handle(self, frame):
        if frame.code == 0x8A and self.lose > 0:
            self.lose -= 1
            return None
        return super()._handle(frame)


def test_a_lost_currency_assign_reply_is_retried_not_taken_as_an_empty_table(EventLog):
    sim = _SimLosingTableReplies(lose=2)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.1)
    try:
        driver.open(EventLog())
        assert len(driver.denominations) == 6
    finally:
        driver.close()
        sim.stop()


def test_a_validator_that_never_gives_its_table_does_not_start(EventLog):
    sim = _SimLosingTableReplies(lose=100)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.1)
    try:
        with pytest.raises(DeviceTimeout, match="currency-assign"):
            driver.open(EventLog())
    finally:
        driver.close()
        sim.stop()


def test_port_is_opened_at_9600_8e1(make_driver):
    driver = make_driver(enable=False)
    line = driver._ser
    assert (line.baudrate, line.bytesize, line.parity, line.stopbits) == (9600, 8, "E", 1)


def test_configured_denominations_override_the_device_table(make_driver):
    driver = make_driver(enable=False, currency=EUR, denominations={"97": 700, "0x62": 1000})
    assert driver.escrow_table == {"0x61": Fiat(700, EUR), "0x62": Fiat(1000, EUR)}
    assert driver.info().extra["denominations_from"] == "configuration"


@pytest.mark.parametrize("table, words", [
    ({"abc": 500}, "'abc'"),
    ({"0x61": 5.0}, "'0x61'"),
    ({"0x61": -5}, "positive integer"),
])
def test_bad_configured_denominations_name_the_key(table, words):
    with pytest.raises(ConfigurationError, match=words):
        Id003Validator("socket://127.0.0.1:9", currency=EUR, denominations=table)


# -- device errors ------------------------------------------------------------------------

@pytest.mark.parametrize("where, words", [("acceptor", "acceptor jam"), ("stacker", "stacker jam")])
def test_jam_is_a_hardware_error_until_cleared(sim, log, make_driver, where, words):
    driver = make_driver()
    sim.jam(where)
    event = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, words))
    assert event.code == ("0x45" if where == "acceptor" else "0x46")
    assert driver.state == DeviceState.HARDWARE_ERROR
    sim.clear_jam()
    log.wait_for(lambda e: e.at > event.at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)


def test_stacker_full_reports_the_cashbox_full_and_a_user_error(sim, log, make_driver):
    make_driver()
    sim.stacker_full(True)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.FULL)
    log.wait_for(status_event(DeviceState.USER_ERROR, "stacker full"))
    sim.stacker_full(False)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.OK)


def test_stacker_open_reports_the_cashbox_missing_and_a_user_error(sim, log, make_driver):
    make_driver()
    sim.stacker_open(True)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.MISSING)
    event = log.wait_for(status_event(DeviceState.USER_ERROR, "cashbox"))
    assert event.code == "0x44"


def test_cheated_raises_fraud_and_credits_nothing(sim, log, make_driver, credits):
    make_driver()
    sim.insert_counterfeit()
    fraud = log.wait_for(lambda e: isinstance(e, FraudDetected))
    assert "cheat" in fraud.detail
    log.wait_for(status_event(DeviceState.FRAUD_ATTEMPT))
    assert len(log.of(FraudDetected)) == 1
    assert credits == []


def test_pause_is_reported_busy_until_the_second_note_is_removed(sim, log, make_driver):
    make_driver()
    sim.pause(True)
    event = log.wait_for(status_event(DeviceState.BUSY, "pause"))
    sim.pause(False)
    log.wait_for(lambda e: e.at > event.at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)


def test_failure_is_a_hardware_error_with_its_code_named(sim, log, make_driver):
    make_driver()
    sim.fail(0xA2)
    event = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "stack motor failure"))
    assert event.code == "0x49/0xA2"


# -- power-up and reset mid-note -------------------------------------------------------------

def test_power_up_with_a_bill_in_the_acceptor_at_open_returns_it(sim, log, credits):
    sim.power_cycle(note_in="acceptor")
    driver = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    try:
        driver.open(log)
        status = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x41")
        assert status.state == DeviceState.STARTING and "acceptor" in status.detail
        returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
        assert returned.reason == "power-up with a bill in the acceptor"
        assert credits == []
    finally:
        driver.close()


def test_power_up_with_a_bill_in_the_stacker_at_open_is_reported_not_credited(sim, log, credits, wait_until):
    sim.power_cycle(note_in="stacker")
    driver = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    try:
        driver.open(log)
        status = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x42")
        assert "reconcile with the journal" in status.detail
        wait_until(lambda: sim.state()["cashbox"] == 1, what="note stacked by the reset")
        assert credits == [] and log.of(NoteCredited) == []
    finally:
        driver.close()


def test_power_loss_after_the_credit_leaves_one_credit_and_says_it_was_acknowledged(sim, log, make_driver, credits, wait_until):
    driver = make_driver()

    def recorder_then_power_loss(event):
        credits.append(event)
        sim.power_cycle(note_in="stacker")

    driver.set_credit_recorder(recorder_then_power_loss)
    sim.insert_note(2000)
    status = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x42")
    assert "vend valid acknowledged" in status.detail and "0x63" in status.detail
    wait_until(lambda: sim.state()["cashbox"] == 1 and sim.state()["state"] == "idle")
    assert len(credits) == 1 and len(log.of(NoteCredited)) == 1


def test_device_reset_mid_note_returns_it_and_the_driver_reinitialises(sim, log, make_driver, credits, wait_until):
    log.on_event = lambda e: None
    make_driver(escrow_timeout=30)
    sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    sim.power_cycle(note_in="acceptor")
    status = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x41")
    assert "last note 0x62 (10.00 EUR), vend valid NOT acknowledged" in status.detail
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert returned.value == Fiat(1000, EUR)
    # Re-initialised and enabled again, as the application left it.
    wait_until(lambda: sim.state()["state"] == "idle" and not sim.state()["inhibited"], what="re-enabled")
    assert credits == []


# -- line faults ------------------------------------------------------------------------------

def test_no_answer_goes_offline_and_recovers_when_the_device_answers(sim, log, make_driver):
    driver = make_driver()
    sim.fault_next_reply("drop", count=6)
    offline = log.wait_for(status_event(DeviceState.OFFLINE, "without a valid answer"))
    assert sim.url in offline.detail
    log.wait_for(lambda e: e.at > offline.at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)
    assert driver.state == DeviceState.ONLINE


@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
@pytest.mark.parametrize("kind", ["corrupt", "truncate", "double", "delay"])
def test_spoiled_replies_during_a_note_still_credit_it_exactly_once(sim, log, make_driver, credits, kind):
    make_driver()
    sim.insert_note(1000)
    sim.fault_next_reply(kind, count=4, delay_s=0.2)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert len(log.of(NoteCredited)) == 1
    assert [c.value for c in credits] == [Fiat(1000, EUR)] * len(credits)
    assert sim.state()["stacked"] == [1000]


@pytest.mark.parametrize("kind", ["corrupt", "truncate"])
def test_bad_frames_are_counted_and_never_acted_on(sim, log, make_driver, kind, wait_until):
    driver = make_driver()
    log.on_event = lambda e: None
    sim.fault_next_reply(kind, count=2)
    sim.insert_note(1000)
    wait_until(lambda: sim.state()["faults_pending"] == 0, what="spoiled replies sent")
    escrowed = log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    assert escrowed.value == Fiat(1000, EUR)
    assert driver.bad_frames >= 2
    # Exactly one announcement for the one note, whatever the line did.
    assert len(log.of(NoteEscrowed)) == 1


# -- watchdog -----------------------------------------------------------------------------------

def test_watchdog_resets_an_acceptor_stuck_accepting(sim, log, make_driver, wait_until):
    make_driver(stuck_timeout=0.4)
    sim.stall(True)
    sim.insert_note(1000)
    fired = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "stuck in accepting"))
    assert fired.code == "0x12"
    wait_until(lambda: sim.state()["returned"] == [1000], what="note returned by the reset")
    log.wait_for(lambda e: e.at > fired.at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)
    assert not sim.state()["stalled"]


def test_watchdog_resets_an_acceptor_stuck_stacking(sim, log, make_driver, credits, wait_until):
    driver = make_driver(stuck_timeout=0.4)

    def stack_then_hang(event):
        if isinstance(event, NoteEscrowed):
            sim.stall(True)
            driver.stack()

    log.on_event = stack_then_hang
    sim.insert_note(1000)
    fired = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "stuck in stacking"))
    assert "reset sent" in fired.detail
    wait_until(lambda: sim.state()["state"] == "idle")
    assert credits == []


def test_watchdog_does_not_fire_on_a_device_that_keeps_moving(sim, log, make_driver, credits, wait_until):
    make_driver(stuck_timeout=1.0)
    for _ in range(3):
        sim_count = len(credits)
        wait_until(lambda: sim.insert_note(500), what="acceptor ready for a note")
        wait_until(lambda: len(credits) == sim_count + 1, what="credit")
    assert not [e for e in log.of(DeviceStatusChanged) if e.state == DeviceState.HARDWARE_ERROR]


# -- open and close ---------------------------------------------------------------------------------

def test_close_is_idempotent_and_leaves_the_acceptor_inhibited(sim, make_driver):
    driver = make_driver()
    driver.close()
    driver.close()
    assert sim.state()["inhibited"]


# -- host restart mid-note -------------------------------------------------------------------------

def _leave_note_at_vend_valid(sim, log, make_driver, wait_until):
    """A first host that stacks a note but can never journal its credit, then goes away."""
    first = make_driver()

    def broken_recorder(event):
        raise OSError("journal unavailable")

    first.set_credit_recorder(broken_recorder)
    sim.insert_note(1000)
    wait_until(lambda: sim.state()["state"] == "vend_valid", what="note at vend valid")
    first.close()


def test_open_refuses_to_reset_over_a_note_whose_credit_cannot_be_recorded(sim, log, make_driver, wait_until,
                                                                          EventLog):
    _leave_note_at_vend_valid(sim, log, make_driver, wait_until)
    second = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15, init_timeout=0.5)
    second.set_credit_recorder(lambda event: (_ for _ in ()).throw(OSError("still unavailable")))
    with pytest.raises(DeviceError, match="still holds a note"):
        second.open(EventLog())
    second.close()
    assert sim.state()["state"] == "vend_valid"
    assert sim.state()["acks_received"] == 0 and sim.state()["stacked"] == []


def test_restart_at_vend_valid_credits_through_the_recorder_without_inventing_a_value(sim, log, make_driver,
                                                                                     wait_until, EventLog):
    _leave_note_at_vend_valid(sim, log, make_driver, wait_until)
    recorded = []
    second = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    second.set_credit_recorder(recorded.append)
    events = EventLog()
    try:
        second.open(events)
        credited = events.wait_for(lambda e: isinstance(e, NoteCredited))
        # ID-003 does not repeat the denomination at VEND VALID: the value is the
        # journal's to supply, never a guess.
        assert credited.value is None and credited.code == ""
        assert recorded == [credited]
        wait_until(lambda: sim.state()["stacked"] == [1000], what="note stacked after the ACK")
        assert sim.state()["acks_received"] == 1
    finally:
        second.close()


def test_lost_connection_goes_offline_and_reconnects_to_a_restarted_device(log, credits, wait_until):
    first = Id003Simulator(step_s=0.02)
    url = first.start("tcp")
    port = int(url.rsplit(":", 1)[1])
    driver = Id003Validator(url, poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    second = Id003Simulator(step_s=0.02)
    log.on_event = lambda e: driver.stack() if isinstance(e, NoteEscrowed) and e.value is not None else None
    try:
        driver.open(log)
        driver.enable()
        first.stop()
        offline = log.wait_for(status_event(DeviceState.OFFLINE))
        second.start("tcp", port=port)
        log.wait_for(lambda e: e.at > offline.at and isinstance(e, DeviceStatusChanged) and e.code == "0x40")
        # Re-initialised and enabled again without the application doing anything.
        wait_until(lambda: second.state()["state"] == "idle" and not second.state()["inhibited"], what="re-enabled")
        second.insert_note(1000)
        log.wait_for(lambda e: isinstance(e, NoteCredited))
        assert [c.value for c in credits] == [Fiat(1000, EUR)]
    finally:
        driver.close()
        second.stop()
        first.stop()


class _SimComplaining(Id003Simulator):
    """An acceptor that answers the next `count` status requests with `complaint`."""

    def __init__(self, complaint: int):
        super().__init__(step_s=0.02)
        self.complaint = complaint
        self.count = 0

    def _handle(self, frame):
        if frame.code == 0x11 and self.count > 0:
            self.count -= 1
            return Frame(self.complaint)
        return super()._handle(frame)


@pytest.mark.parametrize("complaint, words", [(0x4A, "communication error"), (0x4B, "invalid command")])
def test_device_complaints_are_reported_once_and_polling_carries_on(log, credits, wait_until, complaint, words):
    sim = _SimComplaining(complaint)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    log.on_event = lambda e: driver.stack() if isinstance(e, NoteEscrowed) and e.value is not None else None
    try:
        driver.open(log)
        driver.enable()
        wait_until(lambda: not sim.state()["inhibited"])
        # Below the bound at which a run of communication errors means a bad line.
        sim.count = MISSES_BEFORE_OFFLINE - 1
        complained = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == _hex(complaint))
        assert words in complained.detail
        wait_until(lambda: sim.count == 0, what="complaints answered")
        assert len([e for e in log.of(DeviceStatusChanged) if e.code == _hex(complaint)]) == 1
        sim.insert_note(1000)
        log.wait_for(lambda e: isinstance(e, NoteCredited))
        assert [c.value for c in credits] == [Fiat(1000, EUR)]
    finally:
        driver.close()
        sim.stop()


def test_a_run_of_communication_errors_is_reported_as_a_line_fault_and_recovers(log, credits, wait_until):
    """0x4A answers say our frames arrive garbled: a few are noise, a run of them is a
    line a technician must check. Mutation caught: no bound (the kiosk sells on a line
    that corrupts every command)."""
    sim = _SimComplaining(0x4A)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    log.on_event = lambda e: driver.stack() if isinstance(e, NoteEscrowed) and e.value is not None else None
    try:
        driver.open(log)
        driver.enable()
        wait_until(lambda: not sim.state()["inhibited"])
        sim.count = MISSES_BEFORE_OFFLINE
        fault = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.state == DeviceState.OFFLINE)
        assert fault.code == "0x4A" and "9600 baud 8E1" in fault.detail and sim.url in fault.detail
        log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE
                     and e.at > fault.at)
        sim.insert_note(1000)
        log.wait_for(lambda e: isinstance(e, NoteCredited))
        assert [c.value for c in credits] == [Fiat(1000, EUR)]
    finally:
        driver.close()
        sim.stop()


def _hex(code: int) -> str:
    return f"0x{code:02X}"


class _SimIgnoringStack(Id003Simulator):
    """An acceptor that acknowledges STACK-1 but leaves the note in escrow (a dead stack motor)."""

    def _handle(self, frame):
        if frame.code == 0x41 and self._phase == "escrow":
            return Frame(0x50)
        return super()._handle(frame)


def test_watchdog_resets_an_acceptor_that_acknowledges_stack_but_never_stacks(log, credits, wait_until):
    sim = _SimIgnoringStack(step_s=0.02)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.15, stuck_timeout=0.4)
    driver.set_credit_recorder(credits.append)
    log.on_event = lambda e: driver.stack() if isinstance(e, NoteEscrowed) and e.value is not None else None
    try:
        driver.open(log)
        driver.enable()
        wait_until(lambda: not sim.state()["inhibited"])
        sim.insert_note(2000)
        fired = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.state == DeviceState.HARDWARE_ERROR)
        assert "stuck in escrow" in fired.detail
        wait_until(lambda: sim.state()["returned"] == [2000], what="note returned by the reset")
        assert credits == []
    finally:
        driver.close()
        sim.stop()


def test_note_left_in_escrow_by_a_previous_host_is_returned_at_open(sim, log, make_driver, credits, wait_until,
                                                                   EventLog):
    log.on_event = lambda e: None
    first = make_driver(escrow_timeout=30)
    sim.insert_note(5000)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    first.close()
    assert sim.state()["state"] == "escrow"
    events = EventLog()
    second = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    second.set_credit_recorder(credits.append)
    try:
        second.open(events)
        returned = events.wait_for(lambda e: isinstance(e, NoteReturned))
        assert returned.value == Fiat(5000, EUR) and "start-up" in returned.reason
        assert events.of(NoteEscrowed) == []
        wait_until(lambda: sim.state()["returned"] == [5000])
        assert credits == []
    finally:
        second.close()
