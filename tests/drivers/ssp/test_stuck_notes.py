"""Notes told to stack whose credit does not come (the unit stalls, resets, or its reply is
lost), and resolve_note(): the driver against the simulator's faults, each note answered by
exactly one of NoteCredited / NoteReturned / NoteOutcomeUnknown and credited at most once."""

from __future__ import annotations

from hal.events import (
    DeviceStatusChanged,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat
from hal.status import DeviceState

from drivers.ssp.frames import Command

EUR = "EUR"
ANSWERS = (NoteCredited, NoteReturned, NoteOutcomeUnknown)


def answers(events) -> list:
    return [e for e in events.events if isinstance(e, ANSWERS)]


def opened(make_driver, events, **options):
    recorded: list[NoteCredited] = []
    drv = make_driver(open_it=False, **options)
    drv.set_credit_recorder(recorded.append)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    return drv, recorded


def settle(sim, wait_until, polls: int = 10) -> None:
    """Let the driver poll a while longer, so a late second answer would have shown up."""
    start = len(sim.state()["rx_log"])
    wait_until(lambda: sum(1 for c in sim.state()["rx_log"][start:] if c["command"] == Command.POLL) >= polls,
               what=f"{polls} more polls")


def stack_one(drv, events, sim, minor: int) -> NoteEscrowed:
    assert sim.insert_note(minor)
    escrowed = events.wait_for(NoteEscrowed, lambda e: e.value == Fiat(minor, EUR))
    drv.stack()
    return escrowed


def test_note_stalled_then_cleared_into_the_cashbox_is_credited_once_through_the_recorder(
        make_driver, sim, events, wait_until) -> None:
    sim.stall_s = 0.3
    drv, recorded = opened(make_driver, events)
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 2000)
    credited = events.wait_for(NoteCredited)
    assert credited.value == Fiat(2000, EUR) and credited.code == "3"
    assert recorded == [credited]
    assert events.wait_for(NoteStacked, lambda e: e.at >= credited.at).value == Fiat(2000, EUR)
    # It came from the power-up clearing (0xE2), not from a credit event: the unit never sent one.
    assert not [t for t in sim.state()["tx_log"] if t["poll"] and " ee " in f" {t['data']} "]
    assert any(t["poll"] and "e2 03" in t["data"] for t in sim.state()["tx_log"])
    events.wait_for(DeviceStatusChanged, lambda e: e.at > credited.at and e.state == DeviceState.ONLINE)
    settle(sim, wait_until)
    assert answers(events) == [credited] and sim.state()["cashbox"] == {"3": 1}
    # The unit works on: the next note is credited to nobody but itself.
    wait_until(lambda: sim.state()["enabled"], what="enabled again after the reset")
    stack_one(drv, events, sim, 500)
    second = events.wait_for(NoteCredited, lambda e: e.at > credited.at)
    assert second.value == Fiat(500, EUR) and recorded == [credited, second]


def test_note_stalled_then_given_back_at_the_front_is_returned_and_not_credited(make_driver, sim, events,
                                                                               wait_until) -> None:
    sim.stall_s = 0.3
    drv, recorded = opened(make_driver, events)
    sim.stall_stacking("acceptor")
    stack_one(drv, events, sim, 5000)
    returned = events.wait_for(NoteReturned)
    assert returned.value == Fiat(5000, EUR) and "power-up" in returned.reason
    settle(sim, wait_until)
    assert answers(events) == [returned] and recorded == []
    assert sim.state()["cashbox"] == {}


def test_resolve_note_during_a_stall_is_answered_by_the_units_own_power_up_report(make_driver, sim, events,
                                                                                   wait_until) -> None:
    sim.stall_s = 1.0
    drv, recorded = opened(make_driver, events, resolve_timeout=5.0)
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 1000)
    wait_until(lambda: sim.state()["stalling"] == "stacker", what="stall")
    drv.resolve_note()
    credited = events.wait_for(NoteCredited)
    assert credited.value == Fiat(1000, EUR) and recorded == [credited]
    settle(sim, wait_until)
    assert answers(events) == [credited]
    # The unit reset by itself; the driver had no need to.
    assert not [c for c in sim.state()["rx_log"] if c["command"] == Command.RESET]


def test_resolve_note_resets_a_unit_that_stays_silent_and_learns_the_note_is_in_the_cashbox(
        make_driver, sim, events, wait_until) -> None:
    sim.stall_s = 60.0                               # the unit would stall far longer than the test
    drv, recorded = opened(make_driver, events, resolve_timeout=0.3)
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 2000)
    wait_until(lambda: sim.state()["stalling"] == "stacker", what="stall")
    drv.resolve_note()
    credited = events.wait_for(NoteCredited)
    assert credited.value == Fiat(2000, EUR) and recorded == [credited]
    assert [c for c in sim.state()["rx_log"] if c["command"] == Command.RESET]
    settle(sim, wait_until)
    assert answers(events) == [credited] and sim.state()["cashbox"] == {"3": 1}


def test_resolve_note_after_a_reset_that_names_no_note_is_unknown_with_the_value(make_driver, sim, events,
                                                                                   wait_until) -> None:
    sim.stall_s = 60.0
    drv, recorded = opened(make_driver, events, resolve_timeout=0.3)
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 2000)
    wait_until(lambda: sim.state()["stalling"] == "stacker", what="stall")
    sim.power_cycle(note_in="none")                  # resets, and says nothing about the note
    reset = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xF1")
    events.wait_for(DeviceStatusChanged, lambda e: e.at > reset.at and e.state == DeviceState.ONLINE)
    drv.resolve_note()
    unknown = events.wait_for(NoteOutcomeUnknown)
    assert unknown.value == Fiat(2000, EUR) and unknown.code == "3" and "reconcile" in unknown.detail
    settle(sim, wait_until)
    assert answers(events) == [unknown] and recorded == []


def test_resolve_note_on_a_unit_that_does_not_answer_is_unknown(make_driver, sim, events, wait_until) -> None:
    sim.stall_s = 60.0
    drv, recorded = opened(make_driver, events, resolve_timeout=0.3)
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 500)
    wait_until(lambda: sim.state()["stalling"] == "stacker", what="stall")
    sim.fault_next_reply("drop", count=10_000)
    events.wait_for(DeviceStatusChanged, lambda e: e.state == DeviceState.OFFLINE)
    drv.resolve_note()
    unknown = events.wait_for(NoteOutcomeUnknown)
    assert unknown.value == Fiat(500, EUR) and "does not answer" in unknown.detail
    assert recorded == [] and answers(events) == [unknown]


def test_resolve_note_with_no_note_on_its_way_answers_unknown_at_once(make_driver, sim, events) -> None:
    drv, _ = opened(make_driver, events)
    drv.resolve_note()
    unknown = events.wait_for(NoteOutcomeUnknown)
    assert unknown.value is None and "no note told to stack" in unknown.detail


def test_lost_reply_carrying_the_credit_is_asked_again_and_credited_once(make_driver, sim, events,
                                                                         wait_until) -> None:
    """The host's acknowledgement of a poll reply is its next poll with the other sequence bit.
    The reply carrying the credit is lost once: the host polls again with the same bit, the
    unit repeats that reply, and the note is credited once."""
    drv, recorded = opened(make_driver, events)
    sim.lose_host_ack_once()
    stack_one(drv, events, sim, 1000)
    credited = events.wait_for(NoteCredited)
    events.wait_for(NoteStacked, lambda e: e.at >= credited.at)
    credit_replies = [t for t in sim.state()["tx_log"] if t["poll"] and "ee 02" in t["data"]]
    assert [(t["fault"], t["repeat"]) for t in credit_replies] == [("drop", False), (None, True)]
    settle(sim, wait_until)
    assert recorded == [credited] and answers(events) == [credited]
    assert sim.state()["pending_faults"] == []


def test_stall_with_the_recorder_failing_once_still_credits_once(make_driver, sim, events, wait_until) -> None:
    """0xE2 is a settled event like a credit: a recorder that fails gets the same reply again."""
    sim.stall_s = 0.3
    calls: list[NoteCredited] = []

    def recorder(event: NoteCredited) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise OSError("journal disk busy")

    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorder)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    sim.stall_stacking("stacker")
    stack_one(drv, events, sim, 2000)
    credited = events.wait_for(NoteCredited)
    settle(sim, wait_until)
    assert [c.value for c in calls] == [Fiat(2000, EUR)] * 2
    assert answers(events) == [credited]


def test_credit_then_reset_mid_stack_finishes_the_stacking_without_a_second_credit(make_driver, sim, events,
                                                                                   wait_until) -> None:
    """The unit credited the note, then lost power before it reached the cashbox: at power-up
    it clears it into the cashbox (0xE2). That only finishes the stacking; the recorder is not
    called again."""
    sim.step_s = 0.4                                 # room between the credit and "stacked"
    drv, recorded = opened(make_driver, events)
    stack_one(drv, events, sim, 1000)
    credited = events.wait_for(NoteCredited)
    sim.power_cycle(note_in="stacker")
    stacked = events.wait_for(NoteStacked, lambda e: e.at >= credited.at)
    assert stacked.value == Fiat(1000, EUR)
    assert any(t["poll"] and "e2 02" in t["data"] for t in sim.state()["tx_log"])
    settle(sim, wait_until)
    assert recorded == [credited] and answers(events) == [credited]


def test_resolve_note_for_a_stack_decision_the_unit_never_got_waits_for_it_then_answers_once(
        make_driver, sim, events, wait_until) -> None:
    """The unit stops answering while a note waits in escrow; the application decides "stack"
    and later asks. The note is not forgotten: when the unit never comes back, unknown with
    the note's value."""
    drv, recorded = opened(make_driver, events, resolve_timeout=0.3)
    assert sim.insert_note(1000)
    events.wait_for(NoteEscrowed)
    sim.fault_next_reply("drop", count=10_000)
    events.wait_for(DeviceStatusChanged, lambda e: e.state == DeviceState.OFFLINE)
    drv.stack()
    drv.resolve_note()
    unknown = events.wait_for(NoteOutcomeUnknown)
    assert unknown.value == Fiat(1000, EUR) and "does not answer" in unknown.detail
    assert answers(events) == [unknown] and recorded == []
