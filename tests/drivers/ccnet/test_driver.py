"""CcnetValidator against the ccNet simulator over a real pty pair (and TCP where the
transport matters): money flow, HOLD, refusals, device errors, line faults, the stall and
lost-ACK faults, resolve_note()."""

from __future__ import annotations

import threading

import pytest

from drivers.ccnet.driver import CcnetValidator
from drivers.ccnet.frames import ACK, NAK, Command, Frame, FrameDecoder
from hal.errors import ConfigurationError
from hal.events import (
    CashboxChanged,
    DeviceStatusChanged,
    FraudDetected,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat
from hal.status import DeviceState, UnitStatus
from simulators.ccnet import CcnetSimulator
from tests.drivers.polled_validator_harness import status_event

EUR = "EUR"


def insert(sim: CcnetSimulator, minor: int, wait_until) -> None:
    """A customer: the note goes in as soon as the unit draws notes in."""
    wait_until(lambda: sim.insert_note(minor), what=f"unit takes a {minor} note")


# -- money flow ------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
def test_note_is_credited_only_at_bill_stacked_and_before_the_unit_gets_its_ack(sim, log, make_driver, wait_until):
    """Catches: acknowledging STACKED before the recorder returned (the unit would move on
    with the credit not yet durable), and crediting at escrow."""
    seen_by_recorder = []
    driver = make_driver()

    def recorder(event):
        state = sim.state()
        # Give a premature ACK time to reach the unit: with the rule kept, none comes.
        acked = threading.Event()
        for _ in range(30):
            if sim.state()["event_acked"]:
                acked.set()
                break
            acked.wait(0.01)
        seen_by_recorder.append((state["state"], acked.is_set(), len(log.of(NoteCredited))))

    driver.set_credit_recorder(recorder)
    insert(sim, 1000, wait_until)
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert credited.value == Fiat(1000, EUR) and credited.code == "0x03"
    assert seen_by_recorder == [("stacked", False, 0)]
    kinds = [type(e) for e in log.events if isinstance(e, (NoteEscrowed, NoteCredited, NoteStacked))]
    assert kinds == [NoteEscrowed, NoteCredited, NoteStacked]
    wait_until(lambda: sim.state()["event_acked"] and sim.state()["state"] == "idle_enabled", what="unit moved on")
    assert sim.state()["stacked"] == [1000]


@pytest.mark.parametrize("sim_options", [{"escrow_hold_s": 0.6}], indirect=True)
def test_hold_keeps_the_note_in_escrow_while_the_application_takes_longer_than_the_unit_waits(
        sim, log, make_driver, credits, wait_until):
    """The unit returns an escrowed note by itself after escrow_hold_s (10 s on a real one).
    Catches: a driver that never sends HOLD (the note would go back to the customer)."""
    escrowed = threading.Event()
    log.on_event = lambda e: escrowed.set() if isinstance(e, NoteEscrowed) else None
    driver = make_driver(hold_interval=0.1)
    insert(sim, 1000, wait_until)
    assert escrowed.wait(5)
    # The application decides after three times the unit's own escrow time-out.
    threading.Event().wait(1.8)
    assert sim.state()["returned"] == []
    driver.stack()
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert [c.value for c in credits] == [Fiat(1000, EUR)]
    assert sim.state()["stacked"] == [1000] and sim.state()["returned"] == []


def test_returned_note_is_reported_and_never_credited(sim, log, make_driver, credits, wait_until):
    holder = {}
    log.on_event = lambda e: holder["driver"].return_note() if isinstance(e, NoteEscrowed) else None
    holder["driver"] = make_driver()
    insert(sim, 1000, wait_until)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert returned.value == Fiat(1000, EUR) and returned.reason == "returned on request"
    wait_until(lambda: sim.state()["returned"] == [1000], what="note back to the customer")
    assert credits == [] and sim.state()["stacked"] == []
    assert len(log.of(NoteReturned)) == 1


def test_a_note_the_application_does_not_accept_now_is_returned_without_asking_it(
        sim, log, make_driver, credits, wait_until):
    driver = make_driver()
    driver.enable([Fiat(1000, EUR), Fiat(2000, EUR)])
    # Only types 3 and 4 stay enabled in the unit; a 5.00 note is rejected by the unit itself.
    wait_until(lambda: sim.state()["enabled_types"] == [3, 4], what="enable mask sent")
    insert(sim, 500, wait_until)
    rejected = log.wait_for(lambda e: isinstance(e, NoteRejected))
    assert rejected.code == "0x68" and rejected.reason == "denomination inhibited"
    assert credits == [] and log.of(NoteEscrowed) == []


def test_a_note_the_unit_does_not_know_is_rejected_with_its_reason(sim, log, make_driver, credits, wait_until):
    make_driver()
    insert(sim, 700, wait_until)
    rejected = log.wait_for(lambda e: isinstance(e, NoteRejected))
    assert rejected.code == "0x65" and "identification" in rejected.reason
    wait_until(lambda: sim.state()["rejected"] == [700], what="note rejected")
    assert credits == [] and len(log.of(NoteRejected)) == 1


def test_configured_denominations_replace_the_units_table_and_others_are_never_enabled(
        sim, log, make_driver, credits, wait_until):
    driver = make_driver(currency=EUR, denominations={"0x03": 1000, "4": 2000})
    assert driver.denominations == [Fiat(1000, EUR), Fiat(2000, EUR)]
    assert driver.info().extra["denominations_from"] == "configuration"
    wait_until(lambda: sim.state()["enabled_types"] == [3, 4], what="only configured types enabled")
    insert(sim, 2000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert [c.value for c in credits] == [Fiat(2000, EUR)]


def test_counterfeit_is_reported_as_fraud(sim, log, make_driver, credits, wait_until):
    driver = make_driver()
    wait_until(lambda: sim.insert_counterfeit(), what="counterfeit drawn in")
    fraud = log.wait_for(lambda e: isinstance(e, FraudDetected))
    assert "cheat" in fraud.detail
    log.wait_for(status_event(DeviceState.FRAUD_ATTEMPT))
    log.wait_for(lambda e: e.at > fraud.at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)
    assert driver.state == DeviceState.ONLINE and credits == []
    assert len(log.of(FraudDetected)) == 1


# -- device errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("where, words", [("acceptor", "validator jammed"), ("stacker", "drop cassette jammed")])
def test_jam_is_a_hardware_error_until_cleared(sim, log, make_driver, where, words):
    driver = make_driver()
    sim.jam(where)
    log.wait_for(status_event(DeviceState.HARDWARE_ERROR, words))
    assert driver.state == DeviceState.HARDWARE_ERROR
    sim.clear_jam()
    jammed_at = log.of(DeviceStatusChanged)[-1].at
    log.wait_for(lambda e: e.at >= jammed_at and isinstance(e, DeviceStatusChanged) and e.state == DeviceState.ONLINE)


def test_jam_with_a_note_told_to_stack_never_credits_it(sim, log, make_driver, credits, wait_until):
    sim.stall_stacking("stacker")
    sim.stall_s = 60.0                    # the unit does not power-cycle during this test
    make_driver()
    insert(sim, 1000, wait_until)
    wait_until(lambda: sim.state()["stalled"], what="note hanging mid-stack")
    sim.jam("stacker")
    log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "drop cassette jammed"))
    assert credits == [] and log.of(NoteCredited) == []


def test_cashbox_removed_and_replaced(sim, log, make_driver, wait_until):
    driver = make_driver()
    sim.stacker_open(True)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.MISSING)
    log.wait_for(status_event(DeviceState.USER_ERROR, "out of position"))
    assert driver.state == DeviceState.USER_ERROR
    sim.stacker_open(False)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.OK)
    insert(sim, 1000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteCredited))


def test_cashbox_full_is_reported(sim, log, make_driver):
    make_driver()
    sim.stacker_full(True)
    log.wait_for(lambda e: isinstance(e, CashboxChanged) and e.status == UnitStatus.FULL)
    log.wait_for(status_event(DeviceState.USER_ERROR, "full"))
    assert sim.insert_note(1000) is False


def test_failure_code_is_named_for_the_technician(sim, log, make_driver):
    make_driver()
    sim.fail(0x52)
    event = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "failure 0x52"))
    assert "transport motor failure" in event.detail and event.code == "0x47/0x52"


def test_power_cycle_re_initialises_and_enables_again(sim, log, make_driver, wait_until):
    make_driver()
    resets = sim.state()["resets_received"]
    sim.power_cycle()
    log.wait_for(status_event(DeviceState.STARTING, "powered up"))
    wait_until(lambda: sim.state()["resets_received"] == resets + 1 and sim.state()["state"] == "idle_enabled",
               what="reset and enabled again")
    insert(sim, 500, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteCredited))


def test_a_hung_mechanism_is_reset_by_the_watchdog_and_the_unit_takes_notes_again(sim, log, make_driver, wait_until):
    make_driver(stuck_timeout=0.3)
    resets = sim.state()["resets_received"]
    insert(sim, 1000, wait_until)
    sim.stall(True)                       # frozen while accepting the note
    event = log.wait_for(status_event(DeviceState.HARDWARE_ERROR, "stuck in accepting"))
    assert event.code == "0x15"
    wait_until(lambda: sim.state()["resets_received"] == resets + 1, what="watchdog reset")
    wait_until(lambda: sim.state()["returned"] == [1000], what="note given back by the reset")
    insert(sim, 2000, wait_until)
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert credited.value == Fiat(2000, EUR)


# -- stall, resolve_note ---------------------------------------------------------------------

def test_stall_then_stacker_credits_the_note_once_from_the_units_credit_recovery(
        sim, log, make_driver, credits, wait_until):
    """The unit hangs mid-stack, powers up with the bill in the stacker (0x12), and after the
    reset reports STACKED: credited once, through the recorder."""
    make_driver()
    sim.stall_stacking("stacker")
    insert(sim, 1000, wait_until)
    log.wait_for(status_event(DeviceState.STARTING, "bill in the stacker"))
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    wait_until(lambda: sim.state()["state"] == "idle_enabled", what="unit back to idle")
    assert credited.value == Fiat(1000, EUR)
    assert [c.value for c in credits] == [Fiat(1000, EUR)] and len(log.of(NoteCredited)) == 1
    assert sim.state()["stacked"] == [1000]


def test_stall_then_acceptor_reports_the_note_returned_and_never_credits_it(
        sim, log, make_driver, credits, wait_until):
    make_driver()
    sim.stall_stacking("acceptor")
    insert(sim, 1000, wait_until)
    returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
    assert returned.value == Fiat(1000, EUR) and "bill in the validator" in returned.reason
    wait_until(lambda: sim.state()["returned"] == [1000], what="note back to the customer")
    assert credits == [] and sim.state()["stacked"] == []


@pytest.mark.parametrize("sim_options", [{"stall_s": 60.0}], indirect=True)
def test_resolve_note_on_a_hung_stack_resets_the_unit_and_credits_the_note_it_finishes(
        sim, log, make_driver, credits, wait_until):
    driver = make_driver(resolve_timeout=0.2)
    sim.stall_stacking("stacker")
    insert(sim, 2000, wait_until)
    wait_until(lambda: sim.state()["stalled"], what="note hanging mid-stack")
    assert log.of(NoteCredited) == []
    driver.resolve_note()
    credited = log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert credited.value == Fiat(2000, EUR)
    wait_until(lambda: sim.state()["state"] == "idle_enabled", what="unit back to idle")
    assert [c.value for c in credits] == [Fiat(2000, EUR)]
    assert log.of(NoteOutcomeUnknown) == [] and log.of(NoteReturned) == []


@pytest.mark.parametrize("sim_options", [{"stall_s": 60.0}], indirect=True)
def test_resolve_note_answers_unknown_when_the_unit_ends_idle_without_saying(
        sim, log, make_driver, credits, wait_until):
    driver = make_driver(resolve_timeout=0.2)
    sim.stall_stacking("acceptor")
    insert(sim, 2000, wait_until)
    wait_until(lambda: sim.state()["stalled"], what="note hanging mid-stack")
    driver.resolve_note()
    unknown = log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    assert unknown.value == Fiat(2000, EUR) and unknown.code == "0x04" and "idle" in unknown.detail
    wait_until(lambda: sim.state()["state"] == "idle_enabled", what="unit back to idle")
    assert credits == [] and log.of(NoteCredited) == [] and len(log.of(NoteOutcomeUnknown)) == 1


@pytest.mark.parametrize("sim_options", [{"stall_s": 60.0}], indirect=True)
def test_resolve_note_answers_unknown_when_the_unit_is_jammed(sim, log, make_driver, credits, wait_until):
    driver = make_driver(resolve_timeout=30)
    sim.stall_stacking("stacker")
    insert(sim, 500, wait_until)
    wait_until(lambda: sim.state()["stalled"], what="note hanging mid-stack")
    sim.jam("stacker")
    driver.resolve_note()
    unknown = log.wait_for(lambda e: isinstance(e, NoteOutcomeUnknown))
    assert unknown.value == Fiat(500, EUR) and "cassette jammed" in unknown.detail
    assert credits == []


def test_resolve_note_after_the_note_settled_answers_once_with_that_outcome(
        sim, log, make_driver, credits, wait_until):
    driver = make_driver()
    insert(sim, 1000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    wait_until(lambda: sim.state()["state"] == "idle_enabled", what="unit back to idle")
    driver.resolve_note()
    log.wait_for(lambda e: len(log.of(NoteCredited)) == 2)
    # The answer went through the recorder again (it is idempotent), and nothing else came.
    assert [c.value for c in credits] == [Fiat(1000, EUR)] * 2
    assert log.of(NoteOutcomeUnknown) == [] and sim.state()["stacked"] == [1000]


# -- line faults -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["drop", "corrupt", "truncate", "double", "delay"])
def test_spoiled_answers_around_a_note_still_credit_it_exactly_once(sim, log, make_driver, credits, wait_until, kind):
    make_driver()
    insert(sim, 5000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    sim.fault_next_reply(kind, count=3, delay_s=0.3)
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    wait_until(lambda: sim.state()["state"] == "idle_enabled", what="unit back to idle")
    assert [c.value for c in credits] == [Fiat(5000, EUR)] and len(log.of(NoteCredited)) == 1
    assert sim.state()["stacked"] == [5000]


def test_the_simulator_naks_a_frame_with_a_bad_crc_and_ignores_other_addresses(sim):
    """The device side follows the document: NAK for a bad CRC, silence for another peripheral."""
    import serial
    port = serial.serial_for_url(sim.url, timeout=0.3)
    try:
        bad = bytearray(Frame.command(Command.POLL).encode())
        bad[-1] ^= 0xFF
        port.write(bytes(bad))
        reply = FrameDecoder().feed(port.read(6))
        assert reply == [Frame(bytes((NAK,)))]
        port.write(Frame.command(Command.POLL, address=0x01).encode())
        assert port.read(6) == b""
        port.write(Frame.command(Command.POLL).encode())
        assert FrameDecoder().feed(port.read(6))[0].payload == b"\x10"     # power up
        port.write(Frame(bytes((ACK,))).encode())
    finally:
        port.close()


def test_unit_that_goes_silent_is_reported_offline_and_back_online(sim, log, make_driver, wait_until):
    driver = make_driver()
    sim.fault_next_reply("drop", count=6)
    log.wait_for(status_event(DeviceState.OFFLINE, "no answer"))
    wait_until(lambda: driver.state == DeviceState.ONLINE, what="back online")


# -- opening ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options, words", [
    ({"denominations": {"3": 1000}}, "currency"),
    ({"currency": EUR, "denominations": {"24": 1000}}, "out of range"),
    ({"currency": EUR, "denominations": {"three": 1000}}, "not a number"),
    ({"currency": EUR, "denominations": {"3": 10.0}}, "positive integer"),
    ({"address": 0}, "address"),
])
def test_bad_configuration_is_a_configuration_error_naming_the_key(options, words):
    with pytest.raises(ConfigurationError, match=words):
        CcnetValidator("socket://127.0.0.1:9", **options)


def test_a_restarted_host_returns_the_note_left_in_escrow(sim, log, credits, wait_until):
    first = CcnetValidator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    first.set_credit_recorder(credits.append)
    first.open(lambda e: None)            # an application that never answers, then dies
    first.enable()
    insert(sim, 1000, wait_until)
    wait_until(lambda: sim.state()["state"] == "escrow", what="note in escrow")
    first._stop.set()
    first._thread.join(timeout=2)
    first._close_port()
    second = CcnetValidator(sim.url, poll_interval=0.02, reply_timeout=0.15)
    second.set_credit_recorder(credits.append)
    try:
        second.open(log)
        returned = log.wait_for(lambda e: isinstance(e, NoteReturned))
        assert "start-up" in returned.reason
        wait_until(lambda: sim.state()["returned"] == [1000], what="note back to the customer")
        assert credits == []
    finally:
        second.close()
