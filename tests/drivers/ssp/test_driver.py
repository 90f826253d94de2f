"""SspValidator against the SSP simulator over a real pty (and TCP where marked): money flow,
escrow decisions, device conditions, communication faults, watchdog and eSSP."""

from __future__ import annotations

import socket
import threading

import pytest

from drivers.ssp.frames import Command, Event, parse_poll_events
from hal.errors import ConfigurationError, DeviceTimeout, PortError, ProtocolError
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

EUR = "EUR"


def commands(sim, start: int = 0) -> list[dict]:
    return sim.state()["rx_log"][start:]


def accept_one(drv, events, sim, minor: int) -> NoteCredited:
    sim.insert_note(minor)
    escrowed = events.wait_for(NoteEscrowed, lambda e: e.value == Fiat(minor, EUR))
    drv.stack()
    credited = events.wait_for(NoteCredited, lambda e: e.at >= escrowed.at)
    events.wait_for(NoteStacked, lambda e: e.at >= credited.at)
    return credited


# ------------------------------------------------------------------ opening


@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
def test_open_reads_identity_and_channel_table_and_stays_disabled(make_driver, sim, events) -> None:
    drv = make_driver()
    info = drv.info()
    assert (info.model, info.firmware, info.serial) == ("NV200", "4.20", "12345678")
    assert drv.denominations == [Fiat(v, EUR) for v in (500, 1000, 2000, 5000, 10000, 20000)]
    assert drv.state == DeviceState.ONLINE
    assert sim.state()["enabled"] is False
    assert sim.state()["protocol_version"] == 6
    sent = [entry["command"] for entry in commands(sim)]
    assert sent[:4] == [Command.SYNC, Command.HOST_PROTOCOL_VERSION, Command.SETUP_REQUEST, Command.SERIAL_NUMBER]
    assert Command.ENABLE not in sent


def test_first_frame_is_sync_with_seq_bit_set_then_the_bit_toggles(make_driver, sim) -> None:
    make_driver()
    log = commands(sim)
    assert log[0]["raw"] == "7f 80 01 11 65 82"
    assert [entry["seq"] for entry in log[:6]] == [1, 0, 1, 0, 1, 0]


def test_denominations_from_configuration_replace_the_device_table(make_driver) -> None:
    drv = make_driver(denominations={"1": 500, "2": 1000})
    assert drv.denominations == [Fiat(500, EUR), Fiat(1000, EUR)]


@pytest.mark.parametrize("bad", [{"one": 500}, {"1": 5.0}, {"1": -5}, {"0": 500}])
def test_bad_denomination_configuration_names_the_key(bad) -> None:
    from drivers.ssp.driver import SspValidator
    with pytest.raises(ConfigurationError, match="validator denominations"):
        SspValidator("socket://127.0.0.1:1", denominations=bad)


def test_currency_mismatch_refuses_to_open(make_driver) -> None:
    with pytest.raises(ConfigurationError, match="set up for EUR.*currency = USD"):
        make_driver(currency="USD")


def test_open_on_a_port_that_does_not_exist_names_the_port(events) -> None:
    from drivers.ssp.driver import SspValidator
    drv = SspValidator("/dev/does-not-exist-ssp", **{"reply_timeout": 0.1})
    with pytest.raises(PortError, match="/dev/does-not-exist-ssp"):
        drv.open(events)


def test_open_on_a_silent_line_is_a_device_timeout(events) -> None:
    from drivers.ssp.driver import SspValidator
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        drv = SspValidator(f"socket://127.0.0.1:{server.getsockname()[1]}", reply_timeout=0.05, retries=1)
        with pytest.raises(DeviceTimeout, match="did not answer sync in 2 tries"):
            drv.open(events)
        drv.close()


def test_open_on_a_line_full_of_garbage_is_a_protocol_error(make_driver, sim) -> None:
    sim.fault_next_reply("corrupt", count=10)
    with pytest.raises(ProtocolError, match="only with garbage"):
        make_driver(retries=2)


# ------------------------------------------------------------------ money flow


@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
def test_note_is_credited_only_at_the_credit_event_after_the_recorder_returned(make_driver, sim, events, wait_until) -> None:
    seen_by_sink_when_recorded: list[list[str]] = []

    def recorder(event: NoteCredited) -> None:
        seen_by_sink_when_recorded.append([type(e).__name__ for e in events.events])

    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorder)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(2000)
    escrowed = events.wait_for(NoteEscrowed)
    assert escrowed.value == Fiat(2000, EUR) and escrowed.code == "3"
    # Undecided: the driver holds the note, nothing is credited or stacked.
    start = len(commands(sim))
    wait_until(lambda: sum(c["command"] == Command.HOLD for c in commands(sim, start)) >= 3, what="holds")
    assert sim.state()["phase"] == "escrow"
    assert events.of(NoteCredited) == [] and seen_by_sink_when_recorded == []
    drv.stack()
    credited = events.wait_for(NoteCredited)
    events.wait_for(NoteStacked)
    assert credited.value == Fiat(2000, EUR) and credited.code == "3"
    assert len(seen_by_sink_when_recorded) == 1
    assert "NoteCredited" not in seen_by_sink_when_recorded[0] and "NoteEscrowed" in seen_by_sink_when_recorded[0]
    kinds = [type(e).__name__ for e in events.events if not isinstance(e, DeviceStatusChanged)]
    assert kinds == ["NoteEscrowed", "NoteCredited", "NoteStacked"]
    assert sim.state()["cashbox"] == {"3": 1}


def test_failing_recorder_gets_the_same_reply_again_and_the_note_is_credited_once(make_driver, sim, events) -> None:
    calls: list[Fiat] = []

    def recorder(event: NoteCredited) -> None:
        calls.append(event.value)
        if len(calls) < 3:
            raise OSError("journal disk busy")

    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorder)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    accept_one(drv, events, sim, 5000)
    assert calls == [Fiat(5000, EUR)] * 3
    assert [e.value for e in events.of(NoteCredited)] == [Fiat(5000, EUR)]
    # The reply with the credit was asked for again with the same frame (same sequence bit).
    log = sim.state()["tx_log"]
    credit_replies = [t for t in log if t["poll"] and "ee 04" in t["data"]]
    assert len(credit_replies) == 3
    assert [t["repeat"] for t in credit_replies] == [False, True, True]
    rx = commands(sim)
    repeats = [i for i, c in enumerate(rx) if c["repeat"]]
    assert repeats and all(rx[i]["raw"] == rx[i - 1]["raw"] for i in repeats)


def test_several_events_in_one_poll_reply_are_handled_in_order(make_driver, sim, events) -> None:
    # Slow polling lets the unit queue credit, stacking and stacked into one reply.
    drv = make_driver(poll_interval=0.25)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(1000)
    events.wait_for(NoteEscrowed)
    drv.stack()
    events.wait_for(NoteStacked)
    multi = [parse_poll_events(bytes.fromhex(t["data"])[1:]) for t in sim.state()["tx_log"] if t["poll"]]
    together = [evs for evs in multi if {Event.CREDIT, Event.STACKED} <= {e.code for e in evs}]
    assert together, "the simulator should have sent credit and stacked in one reply"
    kinds = [type(e).__name__ for e in events.events if isinstance(e, (NoteCredited, NoteStacked))]
    assert kinds == ["NoteCredited", "NoteStacked"]


def test_enable_with_a_subset_inhibits_the_other_channels(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable([Fiat(1000, EUR), Fiat(5000, EUR)])
    assert drv.wait_applied()
    assert sim.state()["enabled"] and sim.state()["inhibits"] == [2, 4]
    sim.insert_note(500)
    rejected = events.wait_for(NoteRejected)
    assert rejected.reason == "channel inhibited" and rejected.code == "0x06"
    assert events.of(NoteEscrowed) == []


def test_disable_stops_the_unit(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    assert sim.state()["enabled"]
    drv.disable()
    assert drv.wait_applied()
    assert not sim.state()["enabled"]


def test_unknown_channel_is_returned_by_the_driver_and_never_stacked(make_driver, sim, events, wait_until) -> None:
    drv = make_driver(denominations={"1": 500, "2": 1000})
    drv.enable()
    assert drv.wait_applied()
    assert sim.state()["inhibits"] == [1, 2]
    sim.honour_inhibits = False
    sim.insert_note(5000)                     # channel 4: the device takes it, our table has no value
    escrowed = events.wait_for(NoteEscrowed)
    returned = events.wait_for(NoteReturned)
    assert escrowed.value is None and escrowed.code == "4"
    assert returned.value is None and returned.reason == "unknown denomination"
    wait_until(lambda: sim.state()["phase"] == "idle", what="note back out")
    assert sim.state()["cashbox"] == {} and events.of(NoteCredited) == []
    # The command right after the reply that announced channel 4 is the reject, not a poll.
    tx = sim.state()["tx_log"]
    rx = commands(sim)
    announce = next(i for i, t in enumerate(tx) if t["poll"] and "ef 04" in t["data"])
    assert rx[announce + 1]["command"] == Command.REJECT


def test_return_note_gives_the_note_back(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(10000)
    events.wait_for(NoteEscrowed)
    drv.return_note()
    returned = events.wait_for(NoteReturned)
    assert returned.value == Fiat(10000, EUR) and returned.reason == "returned by host"
    assert sim.state()["cashbox"] == {} and events.of(NoteCredited) == []
    assert sim.state()["last_reject_code"] == 0x08


def test_no_decision_in_time_returns_the_note(make_driver, sim, events) -> None:
    drv = make_driver(escrow_timeout=0.3)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(500)
    events.wait_for(NoteEscrowed)
    returned = events.wait_for(NoteReturned)
    assert returned.value == Fiat(500, EUR) and "no decision within 0.3 s" in returned.reason
    assert sim.state()["cashbox"] == {}


def test_decision_after_the_note_left_is_ignored(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    accept_one(drv, events, sim, 500)
    drv.stack()
    drv.return_note()
    assert len(events.of(NoteCredited)) == 1


# ------------------------------------------------------------------ device conditions


@pytest.mark.parametrize("where, code, words", [("stacker", "0xEA", "safe jam"), ("acceptor", "0xE9", "unsafe jam")])
def test_jams_report_a_hardware_error_a_technician_can_act_on_and_clear(make_driver, sim, events,
                                                                       where, code, words) -> None:
    drv = make_driver()
    sim.jam(where)
    jam = events.wait_for(DeviceStatusChanged, lambda e: e.code == code)
    assert jam.state == DeviceState.HARDWARE_ERROR and jam.detail.startswith(words) and "clear" in jam.detail
    assert drv.state == DeviceState.HARDWARE_ERROR
    sim.clear_jam()
    back = events.wait_for(DeviceStatusChanged, lambda e: e.at > jam.at and e.state == DeviceState.ONLINE)
    assert "cleared" in back.detail
    assert len([e for e in events.of(DeviceStatusChanged) if e.code == code]) == 1


def test_stacker_full_reports_cashbox_full_and_a_user_error(make_driver, sim, events) -> None:
    make_driver()
    sim.stacker_full(True)
    full = events.wait_for(CashboxChanged)
    assert full.status == UnitStatus.FULL
    status = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xE7")
    assert status.state == DeviceState.USER_ERROR and "empty the cashbox" in status.detail
    sim.stacker_full(False)
    events.wait_for(CashboxChanged, lambda e: e.status == UnitStatus.OK)
    assert len(events.of(CashboxChanged)) == 2


def test_cashbox_removed_and_replaced(make_driver, sim, events, wait_until) -> None:
    drv = make_driver()
    sim.stacker_open(True)
    removed = events.wait_for(CashboxChanged, lambda e: e.status == UnitStatus.MISSING)
    status = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xE3")
    assert status.state == DeviceState.USER_ERROR and "put the cashbox back" in status.detail
    sim.stacker_open(False)
    events.wait_for(CashboxChanged, lambda e: e.status == UnitStatus.OK and e.at > removed.at)
    wait_until(lambda: drv.state == DeviceState.ONLINE, what="online after cashbox back")
    assert [e.status for e in events.of(CashboxChanged)] == [UnitStatus.MISSING, UnitStatus.OK]


def test_counterfeit_is_rejected_with_the_devices_reason(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    sim.insert_counterfeit()
    rejected = events.wait_for(NoteRejected)
    assert rejected.reason.startswith("note not recognised") and rejected.code == "0x02"
    assert events.of(NoteEscrowed) == [] and events.of(FraudDetected) == []


def test_strimming_attempt_reports_fraud(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    sim.insert_counterfeit(strimming=True)
    fraud = events.wait_for(FraudDetected)
    assert "fraud attempt on channel 1" in fraud.detail
    status = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xE6")
    assert status.state == DeviceState.FRAUD_ATTEMPT
    assert events.wait_for(NoteRejected).reason == "strimming attempt"
    assert events.of(NoteCredited) == []


def test_power_cycle_with_a_note_in_the_acceptor_returns_it_and_reinitialises(make_driver, sim, events, wait_until) -> None:
    drv = make_driver()
    drv.enable([Fiat(500, EUR), Fiat(2000, EUR)])
    assert drv.wait_applied()
    sim.insert_note(2000)
    events.wait_for(NoteEscrowed)
    sim.power_cycle(note_in="acceptor")
    reset = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xF1")
    assert reset.state == DeviceState.STARTING
    returned = events.wait_for(NoteReturned)
    assert returned.value == Fiat(2000, EUR) and "power-up" in returned.reason
    events.wait_for(DeviceStatusChanged, lambda e: e.at > reset.at and e.state == DeviceState.ONLINE)
    # The unit forgot everything at power-up; the driver put back what the application asked.
    wait_until(lambda: sim.state()["enabled"] and sim.state()["inhibits"] == [1, 3], what="re-enabled")
    drv.stack()                                  # too late: nothing waits any more
    assert events.of(NoteCredited) == []
    accept_one(drv, events, sim, 500)


def test_note_cleared_into_the_cashbox_at_power_up_goes_through_the_recorder_as_a_settled_note(
        make_driver, sim, events) -> None:
    """0xE2 says a note of this channel is now in the cashbox. With no note of this driver on
    its way, the recorder (the journal) decides whether it settles an earlier decision, repeats
    a credit or is an orphan for the operator; the driver never drops it."""
    recorded: list[NoteCredited] = []
    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorded.append)
    drv.open(events)
    sim.power_cycle(note_in="stacker")
    credited = events.wait_for(NoteCredited)
    assert recorded == [credited] and credited.value == Fiat(500, EUR) and credited.code == "1"
    assert events.wait_for(NoteStacked).value == Fiat(500, EUR)


# ------------------------------------------------------------------ communication faults


def test_lost_reply_is_asked_for_again_with_the_same_frame_and_sequence_bit(make_driver, sim, events, wait_until) -> None:
    drv = make_driver()
    start = len(commands(sim))
    sim.fault_next_reply("drop")
    wait_until(lambda: any(c["repeat"] for c in commands(sim, start)), what="a resend")
    log = commands(sim, start)
    i = next(i for i, c in enumerate(log) if c["repeat"])
    assert log[i]["raw"] == log[i - 1]["raw"] and log[i]["seq"] == log[i - 1]["seq"]
    assert drv.state == DeviceState.ONLINE
    assert not [e for e in events.of(DeviceStatusChanged) if e.state == DeviceState.OFFLINE]


def test_silent_unit_goes_offline_then_recovers_by_resending_the_same_frame(make_driver, sim, events) -> None:
    drv = make_driver(retries=2)
    drv.enable()
    assert drv.wait_applied()
    start = len(commands(sim))
    sim.fault_next_reply("drop", count=6)
    offline = events.wait_for(DeviceStatusChanged, lambda e: e.state == DeviceState.OFFLINE)
    assert "did not answer poll in 3 tries" in offline.detail and sim.url in offline.detail
    online = events.wait_for(DeviceStatusChanged, lambda e: e.at > offline.at and e.state == DeviceState.ONLINE)
    assert online.detail == "validator answering again"
    # Six lost answers, then the seventh: one frame sent seven times in a row, same bytes.
    log = commands(sim, start)
    longest = run = 1
    for before, after in zip(log, log[1:]):
        run = run + 1 if after["raw"] == before["raw"] and after["repeat"] else 1
        longest = max(longest, run)
    assert longest >= 7
    accept_one(drv, events, sim, 1000)


@pytest.mark.parametrize("kind", ["drop", "corrupt", "truncate", "double", "delay"])
def test_spoiled_credit_reply_neither_loses_nor_doubles_the_credit(make_driver, sim, events, kind) -> None:
    drv = make_driver(reply_timeout=0.3)
    drv.enable()
    assert drv.wait_applied()
    sim.fault_next_reply(kind, carrying="CREDIT")
    accept_one(drv, events, sim, 20000)
    assert [e.value for e in events.of(NoteCredited)] == [Fiat(20000, EUR)]
    assert [t["fault"] for t in sim.state()["tx_log"] if t["fault"]] == [kind]
    accept_one(drv, events, sim, 500)
    assert [e.value.minor for e in events.of(NoteCredited)] == [20000, 500]
    assert sim.state()["cashbox"] == {"1": 1, "6": 1}


def test_doubled_replies_are_not_taken_for_the_next_answer(make_driver, sim, events) -> None:
    drv = make_driver()
    sim.fault_next_reply("double", count=5)
    drv.enable()
    assert drv.wait_applied()
    accept_one(drv, events, sim, 1000)
    assert len(events.of(NoteCredited)) == 1 and drv.state == DeviceState.ONLINE


# ------------------------------------------------------------------ watchdog


@pytest.mark.parametrize("phase, cleared", [("stacking", "0xE2"), ("reading", "0xE1")])
def test_watchdog_resets_a_unit_stuck_in_a_transient_state(make_driver, sim, events, phase, cleared) -> None:
    drv = make_driver(stuck_timeout=0.4)
    drv.enable()
    assert drv.wait_applied()
    sim.stick(phase)
    fired = events.wait_for(DeviceStatusChanged, lambda e: e.code == "watchdog")
    assert fired.state == DeviceState.HARDWARE_ERROR
    assert f"stuck {phase} for more than 0.4 s; sent reset" in fired.detail
    assert any(c["command"] == Command.RESET for c in commands(sim))
    events.wait_for(DeviceStatusChanged, lambda e: e.at > fired.at and e.state == DeviceState.ONLINE, timeout=8)
    if cleared == "0xE2":
        # Cleared into the cashbox at power-up: a settled note, through the recorder.
        assert events.wait_for(NoteCredited).value == Fiat(500, EUR)
    else:
        assert events.wait_for(NoteReturned).reason.startswith("note given back at power-up")
    assert sim.state()["stuck"] is None
    accept_one(drv, events, sim, 500)


def test_watchdog_stays_quiet_during_normal_notes(make_driver, sim, events) -> None:
    drv = make_driver(stuck_timeout=0.5)
    drv.enable()
    assert drv.wait_applied()
    for minor in (500, 1000, 2000):
        accept_one(drv, events, sim, minor)
    assert [e for e in events.of(DeviceStatusChanged) if e.code == "watchdog"] == []


# ------------------------------------------------------------------ eSSP


@pytest.mark.parametrize("transport", ["pty", "tcp"], indirect=True)
def test_encrypted_session_end_to_end(make_driver, sim, events) -> None:
    drv = make_driver(encrypted=True)
    assert sim.state()["encrypted"]
    drv.enable()
    assert drv.wait_applied()
    accept_one(drv, events, sim, 10000)
    log = commands(sim)
    exchange = max(i for i, c in enumerate(log) if c["command"] == Command.REQUEST_KEY_EXCHANGE)
    after = log[exchange + 1:]
    assert after and all(c["command"] == 0x7E for c in after)
    assert drv.info().extra["protocol"] == "ITL SSP (eSSP)"


def test_encrypted_session_survives_a_power_cycle_by_exchanging_keys_again(make_driver, sim, events, wait_until) -> None:
    drv = make_driver(encrypted=True)
    drv.enable()
    assert drv.wait_applied()
    sim.power_cycle()
    reset = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xF1")
    events.wait_for(DeviceStatusChanged, lambda e: e.at > reset.at and e.state == DeviceState.ONLINE)
    wait_until(lambda: sim.state()["encrypted"] and sim.state()["enabled"], what="re-keyed and enabled")
    accept_one(drv, events, sim, 1000)
    # Once at open, then again after the reset (twice if the unit's "key not set" answer and
    # its reset event each trigger a re-initialisation: harmless, the last key wins).
    assert sum(c["command"] == Command.REQUEST_KEY_EXCHANGE for c in commands(sim)) >= 2


def test_encrypted_lost_reply_is_resent_with_the_same_counter(make_driver, sim, events) -> None:
    drv = make_driver(encrypted=True)
    drv.enable()
    assert drv.wait_applied()
    sim.fault_next_reply("drop", carrying="CREDIT")
    accept_one(drv, events, sim, 2000)
    assert len(events.of(NoteCredited)) == 1
    # The resend is the identical ciphertext: same counter, same padding, same sequence bit.
    rx = commands(sim)
    resent = [i for i, c in enumerate(rx) if c["repeat"]]
    assert resent and all(rx[i]["raw"] == rx[i - 1]["raw"] and rx[i]["command"] == 0x7E for i in resent)


# ------------------------------------------------------------------ closing


def test_close_disables_the_unit_and_can_be_called_twice(make_driver, sim, events) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    poller = next(t for t in threading.enumerate() if t.name == "ssp-validator")
    assert sim.state()["enabled"]
    drv.close()
    assert not sim.state()["enabled"] and not poller.is_alive()
    polls = len(commands(sim))
    drv.close()
    assert len(commands(sim)) == polls


def test_a_failing_sink_does_not_stop_the_driver(make_driver, sim, wait_until) -> None:
    from drivers.ssp.driver import SspValidator
    seen: list[str] = []

    def sink(event) -> None:
        seen.append(type(event).__name__)
        raise RuntimeError("application bug")

    drv = SspValidator(sim.url, poll_interval=0.03, reply_timeout=0.15)
    drv.open(sink)
    try:
        drv.enable()
        assert drv.wait_applied()
        sim.insert_note(500)
        wait_until(lambda: "NoteEscrowed" in seen, what="escrow despite failing sink")
        drv.stack()
        wait_until(lambda: "NoteStacked" in seen, what="stacked despite failing sink")
    finally:
        drv.close()


def test_unit_that_disables_itself_is_enabled_again(make_driver, sim, events, wait_until) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    enables = sum(c["command"] == Command.ENABLE for c in commands(sim))
    sim.disable_self()
    said = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xE8")
    assert "enabling it again" in said.detail
    wait_until(lambda: sim.state()["enabled"], what="enabled again")
    assert sum(c["command"] == Command.ENABLE for c in commands(sim)) == enables + 1
    accept_one(drv, events, sim, 2000)


def test_escrow_table_and_currency_are_what_the_unit_reported(make_driver) -> None:
    drv = make_driver()
    assert drv.currency == EUR
    assert drv.escrow_table["1"] == Fiat(500, EUR) and drv.escrow_table["6"] == Fiat(20000, EUR)


def test_unknown_event_is_reported_and_the_events_before_it_still_count(make_driver, sim, events) -> None:
    drv = make_driver()
    sim.stacker_open(True)
    events.wait_for(CashboxChanged, lambda e: e.status == UnitStatus.MISSING)
    sim.stacker_open(False)
    sim.queue_event(0x42)
    replaced = events.wait_for(CashboxChanged, lambda e: e.status == UnitStatus.OK)
    report = events.wait_for(DeviceStatusChanged, lambda e: e.code == "unreadable")
    assert report.at >= replaced.at and "0x42" in report.detail and "cannot size" in report.detail
    drv.enable()
    assert drv.wait_applied()
    accept_one(drv, events, sim, 500)


def test_enable_does_not_wait_for_the_device_and_is_applied_when_it_answers(make_driver, sim, events,
                                                                            wait_until) -> None:
    drv = make_driver(retries=1)
    sim.fault_next_reply("drop", count=8)
    drv.enable()                               # returns although the unit is not answering
    assert drv.wait_applied(0.01) is False and not sim.state()["enabled"]
    assert drv.wait_applied(10)
    wait_until(lambda: sim.state()["enabled"], what="enabled once the unit answers")


def test_disable_during_escrow_waits_until_the_note_is_settled(make_driver, sim, events, wait_until) -> None:
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(1000)
    events.wait_for(NoteEscrowed)
    start = len(commands(sim))
    drv.disable()
    wait_until(lambda: sum(c["command"] == Command.HOLD for c in commands(sim, start)) >= 3, what="holds")
    assert Command.DISABLE not in [c["command"] for c in commands(sim, start)]
    assert sim.state()["phase"] == "escrow"
    drv.stack()
    events.wait_for(NoteCredited)
    assert drv.wait_applied()
    assert not sim.state()["enabled"] and sim.state()["cashbox"] == {"2": 1}


def test_watchdog_acts_when_a_held_note_vanishes_without_a_word(make_driver, sim, events, wait_until) -> None:
    drv = make_driver(stuck_timeout=0.4)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(5000)
    events.wait_for(NoteEscrowed)
    sim.vanish_note()                          # the unit now refuses HOLD and reports nothing
    fired = events.wait_for(DeviceStatusChanged, lambda e: e.code == "watchdog")
    assert "stuck holding" in fired.detail and fired.state == DeviceState.HARDWARE_ERROR
    events.wait_for(DeviceStatusChanged, lambda e: e.at > fired.at and e.state == DeviceState.ONLINE, timeout=8)
    assert events.of(NoteCredited) == []
    accept_one(drv, events, sim, 1000)


def test_port_that_goes_away_is_reopened_when_it_comes_back(events) -> None:
    from drivers.ssp.driver import SspValidator
    from simulators.ssp import SspSimulator
    first = SspSimulator()
    url = first.start("tcp")
    port = int(url.rsplit(":", 1)[1])
    drv = SspValidator(url, poll_interval=0.03, reply_timeout=0.15)
    drv.open(events)
    second = SspSimulator(serial_number=777)
    try:
        first.stop()                                  # the line drops: the socket closes
        gone = events.wait_for(DeviceStatusChanged, lambda e: e.state == DeviceState.OFFLINE)
        assert url in gone.detail
        second.start("tcp", port)                     # a unit answers on the same URL again
        events.wait_for(DeviceStatusChanged, lambda e: e.at > gone.at and e.state == DeviceState.ONLINE)
        assert drv.info().serial == "777"
        drv.enable()
        assert drv.wait_applied()
        accept_one(drv, events, second, 1000)
    finally:
        drv.close()
        second.stop()


@pytest.mark.parametrize("encrypted", [False, True])
def test_late_copy_of_a_credit_reply_is_not_taken_for_a_later_answer(make_driver, sim, events, encrypted) -> None:
    drv = make_driver(reply_timeout=0.2, encrypted=encrypted)
    drv.enable()
    assert drv.wait_applied()
    sim.fault_next_reply("late", carrying="CREDIT")
    accept_one(drv, events, sim, 5000)
    accept_one(drv, events, sim, 1000)
    assert [e.value.minor for e in events.of(NoteCredited)] == [5000, 1000]
    assert [t["fault"] for t in sim.state()["tx_log"] if t["fault"]] == ["late"]
