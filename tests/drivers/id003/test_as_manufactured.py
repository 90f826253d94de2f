"""Id003Validator against a simulator that behaves as JCM's units do where a host can
get it wrong: the unit's own escrow return and HOLD, silence on a bad CRC then 0x4A,
0x1C nearly full, real version strings, a stack that stalls and resets the unit, a
lost ACK to VEND VALID, and resolve_note(). Unit timings are scaled down (the
simulator's escrow_return_s stands for the unit's 10 s); nothing here asserts a time."""

from __future__ import annotations

import threading

import pytest

from drivers.id003.driver import MISSES_BEFORE_OFFLINE, UNIT_ESCROW_RETURN_S, Id003Validator
from drivers.id003.frames import Command, Frame, Status
from hal.errors import ConfigurationError, DeviceError
from hal.events import (
    CashboxChanged,
    DeviceStatusChanged,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat
from hal.status import DeviceState, UnitStatus
from simulators.id003 import Id003Simulator

EUR = "EUR"
SETTLED = (NoteCredited, NoteReturned, NoteOutcomeUnknown)


def undecided(log):
    """The application takes its time: escrowed notes wait for the test to decide."""
    log.on_event = lambda e: None


# -- escrow: the unit's own return, and HOLD ---------------------------------------------

def test_default_escrow_timeout_is_below_the_units_10s_and_the_driver_holds():
    driver = Id003Validator("socket://127.0.0.1:9")
    assert driver.escrow_timeout < UNIT_ESCROW_RETURN_S == 10.0
    assert driver.hold_every is not None and driver.hold_every < UNIT_ESCROW_RETURN_S


@pytest.mark.parametrize("options, key", [
    ({"escrow_timeout": 20.0, "hold_every": None}, "escrow_timeout"),
    ({"hold_every": 10.0}, "hold_every"),
    ({"hold_every": 0}, "hold_every"),
    ({"escrow_timeout": -1}, "escrow_timeout"),
    ({"resolve_timeout": "5"}, "resolve_timeout"),
])
def test_escrow_timings_a_real_unit_would_defeat_are_configuration_errors(options, key):
    with pytest.raises(ConfigurationError, match=key):
        Id003Validator("socket://127.0.0.1:9", **options)


def test_long_escrow_timeout_is_allowed_when_the_driver_holds():
    assert Id003Validator("socket://127.0.0.1:9", escrow_timeout=30.0, hold_every=3.0).escrow_timeout == 30.0


def test_unit_returns_escrowed_note_after_10s_without_hold(sim, log, make_driver, credits, wait_until):
    """Without HOLD the unit's own return comes first: the driver reports the note
    returned (the application undoes its decision) and refuses a late stack()."""
    sim.escrow_return_s = 0.3
    undecided(log)
    driver = make_driver(hold_every=None, escrow_timeout=5.0)
    assert sim.insert_note(2000)
    escrowed = log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert escrowed.value == returned.value == Fiat(2000, EUR)
    assert "by itself" in returned.reason and "0x79" not in returned.reason
    assert log.of(NoteRejected) == []
    wait_until(lambda: sim.state()["returned"] == [2000], what="note back with the customer")
    with pytest.raises(DeviceError, match="no note waiting"):
        driver.stack()
    assert credits == [] and sim.state()["holds_received"] == 0


def test_hold_keeps_the_note_in_escrow_while_the_host_decides(sim, log, make_driver, credits, wait_until):
    """Mutation caught: no HOLD sent while the application decides (the unit then
    returns the note after its own escrow time, and the late stack() is refused)."""
    sim.escrow_return_s = 0.8
    undecided(log)
    driver = make_driver(hold_every=0.1, escrow_timeout=30.0)
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    # Far more HOLDs than fit in one of the unit's return periods: the decision took
    # several of them, and the unit kept the note all along.
    wait_until(lambda: sim.state()["holds_received"] >= 20, what="twenty HOLDs")
    assert sim.state()["state"] == "holding" and sim.state()["returned"] == []
    driver.stack()
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert credited.value == Fiat(1000, EUR)
    wait_until(lambda: sim.state()["stacked"] == [1000])
    assert [c.value for c in credits] == [Fiat(1000, EUR)] and log.of(NoteReturned) == []


def test_held_note_without_a_decision_is_returned_by_the_driver_at_its_escrow_timeout(
        sim, log, make_driver, credits, wait_until):
    sim.escrow_return_s = 0.8
    undecided(log)
    make_driver(hold_every=0.1, escrow_timeout=0.8)
    assert sim.insert_note(5000)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert "no stack/return decision within 0.8 s" in returned.reason
    wait_until(lambda: sim.state()["returned"] == [5000])
    assert sim.state()["holds_received"] >= 1 and credits == []


def test_the_watchdog_does_not_reset_a_unit_holding_for_a_slow_decision(sim, log, make_driver, wait_until):
    sim.escrow_return_s = 0.8
    undecided(log)
    driver = make_driver(hold_every=0.1, escrow_timeout=30.0, stuck_timeout=0.3)
    assert sim.insert_note(1000)
    wait_until(lambda: sim.state()["holds_received"] >= 10, what="ten HOLDs")
    assert not [e for e in log.of(DeviceStatusChanged) if e.state == DeviceState.HARDWARE_ERROR]
    driver.stack()
    log.wait_for(lambda e: isinstance(e, NoteCredited))


# -- bad CRC, 0x4A --------------------------------------------------------------------------

def test_bad_crc_gets_no_reply_and_next_status_is_communication_error(sim, log, make_driver, credits, wait_until):
    """The STACK is garbled on its way in: no ACK comes, the next status answers 0x4A,
    and the driver resends STACK. Mutation caught: taking 0x4A as a state (or a lost
    reply as an ACK) leaves the note in escrow or credits it twice."""
    make_driver()
    sim.corrupt_next_command(Command.STACK_1)
    assert sim.insert_note(1000)
    complaint = log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x4A")
    assert "communication error" in complaint.detail
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert [c.value for c in credits] == [Fiat(1000, EUR)]
    assert len(log.of(NoteCredited)) == 1 and sim.state()["stacked"] == [1000]
    assert sim.bad_frames_received >= 1


def test_a_garbled_ack_to_vend_valid_is_resent_and_the_note_credited_once(sim, log, make_driver, credits, wait_until):
    make_driver()
    sim.corrupt_next_command(Command.ACK)
    assert sim.insert_note(2000)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert [c.value for c in credits] == [Fiat(2000, EUR)] and len(log.of(NoteCredited)) == 1
    assert sim.state()["acks_received"] == 1 and sim.state()["stacked"] == [2000]


# -- 0x1C, version strings ----------------------------------------------------------------------

def test_stacker_nearly_full_is_a_cashbox_warning_not_a_bad_frame(sim, log, make_driver, credits, wait_until):
    driver = make_driver()
    sim.stacker_nearly_full()
    warning = log.wait_for(lambda e: isinstance(e, CashboxChanged))
    assert warning.status == UnitStatus.HIGH
    assert driver.bad_frames == 0 and driver.state == DeviceState.ONLINE
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    wait_until(lambda: sim.state()["state"] == "idle")
    assert [c.value for c in credits] == [Fiat(1000, EUR)]
    # Still nearly full after the note: no flapping back to OK while the cashbox stays in.
    assert [e.status for e in log.of(CashboxChanged)] == [UnitStatus.HIGH]
    sim.stacker_open()
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.MISSING)
    sim.stacker_nearly_full(False)
    sim.stacker_open(False)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.OK)


@pytest.mark.parametrize("version, currency", [
    ("U(EUR5)-700-SS ID003-05V027-00 05DEC24", EUR),
    ("i(EUR)-100-SS ID003-05V100-00 01JAN24", EUR),
    ("i(USA)100-SS ID003-03V1", "USD"),
])
def test_currency_is_read_from_a_real_units_version_string(sim, make_driver, version, currency):
    sim.version = version
    driver = make_driver(enable=False)
    assert driver.currency == currency
    assert driver.info().extra["version"] == version


# -- settings never mid-note -------------------------------------------------------------------------

def test_disable_while_a_note_is_in_escrow_waits_for_idle_before_inhibiting(sim, log, make_driver, credits, wait_until):
    undecided(log)
    driver = make_driver()
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    driver.disable()
    driver.enable(accept=[Fiat(1000, EUR)])
    driver.disable()
    driver.stack()
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    wait_until(lambda: sim.state()["inhibited"] and sim.state()["state"] == "idle", what="inhibited at idle")
    assert sim.state()["settings_refused"] == 0
    assert [c.value for c in credits] == [Fiat(1000, EUR)]


# -- a stack that stalls and resets the unit --------------------------------------------------------

def test_note_stalled_while_stacking_then_found_in_the_stacker_is_credited_once(
        sim, log, make_driver, credits, wait_until):
    """0x42 after the stall: the note is this customer's credit, at the value decided,
    through the recorder first. Mutation caught: treating 0x42 as "reported, not
    credited" (as at open) leaves the customer's note uncredited."""
    sim.stall_s = 0.3
    make_driver(stuck_timeout=30.0)
    sim.stall_stacking("stacker")
    assert sim.insert_note(2000)
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert credited.value == Fiat(2000, EUR) and credited.code == "0x63"
    wait_until(lambda: sim.state()["stacked"] == [2000] and sim.state()["state"] == "idle", what="stacked at reset")
    assert sim.state()["vend_valid_reports"] == 0
    wait_until(lambda: not sim.state()["inhibited"], what="enabled again after the reset")
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteCredited) and e.value == Fiat(1000, EUR))
    assert [c.value for c in credits] == [Fiat(2000, EUR), Fiat(1000, EUR)]
    assert len(log.of(NoteCredited)) == 2 and log.of(NoteReturned) == [] and log.of(NoteOutcomeUnknown) == []


def test_note_stalled_then_back_in_the_acceptor_is_returned_never_credited(sim, log, make_driver, credits, wait_until):
    sim.stall_s = 0.3
    make_driver(stuck_timeout=30.0)
    sim.stall_stacking("acceptor")
    assert sim.insert_note(2000)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert returned.value == Fiat(2000, EUR) and "acceptor" in returned.reason
    wait_until(lambda: sim.state()["returned"] == [2000] and sim.state()["state"] == "idle")
    assert credits == [] and log.of(NoteCredited) == []


class _FailingOnce:
    """A recorder whose journal write fails the first time (disk full), then works."""

    def __init__(self) -> None:
        self.calls = 0
        self.recorded: list = []

    def __call__(self, event) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk full")
        self.recorded.append(event)


def test_bill_in_the_stacker_is_not_reset_over_until_its_credit_is_durable(sim, log, make_driver, wait_until):
    """Mutation caught: resetting on 0x42 before the recorder succeeded (the unit then
    stacks the note and nothing in the journal says whose it was)."""
    sim.stall_s = 0.3
    driver = make_driver(stuck_timeout=30.0)
    recorder = _FailingOnce()
    driver.set_credit_recorder(recorder)
    sim.stall_stacking("stacker")
    assert sim.insert_note(5000)
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert recorder.calls == 2 and [e.value for e in recorder.recorded] == [Fiat(5000, EUR)]
    assert credited.value == Fiat(5000, EUR) and len(log.of(NoteCredited)) == 1
    wait_until(lambda: sim.state()["stacked"] == [5000])


# -- resolve_note ------------------------------------------------------------------------------------

def settled_events(log) -> list:
    return [e for e in log.events if isinstance(e, SETTLED)]


@pytest.mark.parametrize("then, kind", [("stacker", NoteCredited), ("acceptor", NoteReturned)])
def test_resolve_note_during_a_stall_answers_with_where_the_note_went(sim, log, make_driver, credits, wait_until,
                                                                     then, kind):
    sim.stall_s = 0.5
    driver = make_driver(stuck_timeout=30.0, resolve_timeout=10.0)
    sim.stall_stacking(then)
    assert sim.insert_note(1000)
    wait_until(lambda: sim.state()["state"] == "stacking", what="stalled in stacking")
    driver.resolve_note()
    answer = log.wait_for(lambda e: isinstance(e, SETTLED))
    assert isinstance(answer, kind) and answer.value == Fiat(1000, EUR)
    wait_until(lambda: sim.state()["state"] == "idle" and driver._resolve_deadline is None, what="settled")
    assert len(settled_events(log)) == 1
    assert len(credits) == (1 if kind is NoteCredited else 0)


def test_resolve_note_answers_unknown_when_the_device_cannot_tell(sim, log, make_driver, credits, wait_until):
    sim.stall_s = 60.0             # the unit stays stuck for longer than the driver may wait
    driver = make_driver(stuck_timeout=60.0, resolve_timeout=0.3)
    sim.stall_stacking("stacker")
    assert sim.insert_note(1000)
    wait_until(lambda: sim.state()["state"] == "stacking", what="stalled in stacking")
    driver.resolve_note()
    unknown = log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    assert unknown.value == Fiat(1000, EUR) and unknown.code == "0x62"
    assert "stacking" in unknown.detail
    assert credits == [] and len(settled_events(log)) == 1


def test_a_note_declared_unknown_is_not_credited_when_the_unit_later_shows_it(sim, log, make_driver, credits,
                                                                             wait_until):
    """One answer per note: after "unknown" the operator reconciles it, so a later
    0x42 does not credit it a second way."""
    sim.stall_s = 1.0
    driver = make_driver(stuck_timeout=60.0, resolve_timeout=0.2)
    sim.stall_stacking("stacker")
    assert sim.insert_note(1000)
    wait_until(lambda: sim.state()["state"] == "stacking", what="stalled in stacking")
    driver.resolve_note()
    log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.code == "0x42")
    wait_until(lambda: sim.state()["stacked"] == [1000] and sim.state()["state"] == "idle")
    assert credits == [] and len(settled_events(log)) == 1


def test_a_stall_the_driver_resets_itself_leaves_the_note_for_resolve_note_to_call_unknown(
        sim, log, make_driver, credits, wait_until):
    """The unit does not reset by itself in time; the driver's watchdog resets it. A
    reset mid-stack says nothing of where the note went, so it is not credited, and
    resolve_note() answers unknown with the value for the operator."""
    sim.stall_s = 60.0
    driver = make_driver(stuck_timeout=0.3, resolve_timeout=5.0)
    sim.stall_stacking("stacker")
    assert sim.insert_note(2000)
    log.wait_for(lambda e: isinstance(e, DeviceStatusChanged) and e.state == DeviceState.HARDWARE_ERROR
                 and "stuck in stacking" in e.detail)
    wait_until(lambda: sim.state()["state"] == "idle", what="unit reset by the driver")
    assert credits == [] and settled_events(log) == []
    driver.resolve_note()
    unknown = log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    assert unknown.value == Fiat(2000, EUR) and unknown.code == "0x63"
    assert credits == [] and len(settled_events(log)) == 1


def test_resolve_note_after_the_note_was_credited_sends_nothing_more(sim, log, make_driver, credits, wait_until):
    driver = make_driver()
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    driver.resolve_note()
    wait_until(lambda: driver._resolve_deadline is None, what="resolve answered")
    assert len(settled_events(log)) == 1 and len(credits) == 1


def test_resolve_note_with_no_note_on_record_and_an_idle_unit_is_unknown(sim, log, make_driver, wait_until):
    driver = make_driver()
    driver.resolve_note()
    unknown = log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    assert unknown.value is None and "no record" in unknown.detail


def test_note_held_by_a_previous_host_is_returned_at_open(sim, log, make_driver, credits, wait_until, EventLog):
    undecided(log)
    first = make_driver(hold_every=0.05, escrow_timeout=30.0)
    assert sim.insert_note(5000)
    wait_until(lambda: sim.state()["state"] == "holding", what="note held")
    first.close()
    second = Id003Validator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    second.set_credit_recorder(credits.append)
    events = EventLog()
    try:
        second.open(events)
        events.wait_for(lambda e: isinstance(e, NoteReturned))
        wait_until(lambda: sim.state()["returned"] == [5000], what="held note returned")
        assert credits == [] and events.of(NoteEscrowed) == []
    finally:
        second.close()


# -- a lost ACK to VEND VALID ----------------------------------------------------------------------

def test_a_note_after_one_the_unit_returned_by_itself_is_announced_afresh(sim, log, make_driver, credits, wait_until):
    """Same denomination twice: the second note is a new escrow, never mistaken for
    the first one that went back."""
    sim.escrow_return_s = 0.3
    undecided(log)
    driver = make_driver(hold_every=None, escrow_timeout=5.0)
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteReturned))
    wait_until(lambda: sim.state()["state"] == "idle" and sim.insert_note(1000), what="second note taken")
    wait_until(lambda: len(log.of(NoteEscrowed)) == 2, what="second escrow announced")
    driver.stack()
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert credited.value == Fiat(1000, EUR) and [c.value for c in credits] == [Fiat(1000, EUR)]
    wait_until(lambda: sim.state()["stacked"] == [1000], what="second note stacked")
    assert sim.state()["returned"] == [1000]


def test_resolve_note_while_stack_has_not_reached_the_device_gives_no_second_outcome(
        sim, log, make_driver, credits, wait_until):
    """STACK garbled on the line again and again: the note is still in escrow, so
    resolve_note() must not call it unknown; its credit comes once the line clears."""
    driver = make_driver()
    sim.corrupt_next_command(Command.STACK_1, count=1000)
    assert sim.insert_note(1000)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    wait_until(lambda: sim.bad_frames_received >= 3, what="three garbled STACKs")
    driver.resolve_note()
    wait_until(lambda: driver._resolve_deadline is None, what="resolve handled")
    assert log.of(NoteOutcomeUnknown) == []
    sim.clear_line_faults()
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert len(settled_events(log)) == 1 and [c.value for c in credits] == [Fiat(1000, EUR)]


class _SimWithoutDenominationInhibit(Id003Simulator):
    """A unit that refuses 0xC0 altogether (INVALID COMMAND)."""

    def _handle(self, frame):
        if frame.code == Command.SET_ENABLE:
            self.settings_refused += 1
            return Frame(Status.INVALID_COMMAND)
        return super()._handle(frame)


def test_a_unit_refusing_the_denomination_mask_is_not_asked_on_every_poll(log, credits, wait_until):
    sim = _SimWithoutDenominationInhibit(step_s=0.02)
    driver = Id003Validator(sim.start("pty"), poll_interval=0.02, reply_timeout=0.15)
    driver.set_credit_recorder(credits.append)
    try:
        driver.open(log)
        driver.enable(accept=[Fiat(1000, EUR)])
        wait_until(lambda: not sim.state()["inhibited"])
        frames = sim.frames_received
        wait_until(lambda: sim.frames_received >= frames + 20, what="twenty more polls")
        assert sim.settings_refused <= 2         # once at initialise, once for the accept list
        assert sim.insert_note(500)
        returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
        assert "not accepted" in returned.reason and credits == []
    finally:
        driver.close()
        sim.stop()
