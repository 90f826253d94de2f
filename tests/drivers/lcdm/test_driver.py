"""LCDM driver against the LCDM simulator over a pty, both models: status, dispense,
test dispense, purge, and every fault the simulator has. The money rules are the point:
exited counts come from the device, and a dispense command is never sent twice."""

from __future__ import annotations

import pytest

from drivers.lcdm.driver import LcdmDispenser
from hal.errors import DeviceTimeout, PortError
from hal.events import CassetteStatusChanged, DeviceStatusChanged
from hal.status import Completion, DeviceState, UnitStatus
from simulators.lcdm import LcdmSimulator


def ids(driver: LcdmDispenser) -> tuple[str, ...]:
    return driver.cassette_ids


def test_status_reports_model_rom_and_cassettes(sim, make_driver):
    sim.set_count(1, 8)
    driver = make_driver()
    status = driver.status()
    assert status.state is DeviceState.ONLINE and not status.path_blocked
    present = [c.present for c in status.cassettes]
    near = [c.near_end for c in status.cassettes]
    if sim.model.name == "lcdm2000":
        assert driver.info().firmware == "T20T5624" and driver.rom_version() == "T20T5624"
        assert present == [True, True] and near == [False, True]
        assert status.reject_tray_present is True
    else:
        assert driver.rom_version() is None
        assert present == [True, True, True, False] and near == [False, True, False, False]
    assert driver.info().model.startswith("Puloon LCDM-")


def test_dispense_books_exactly_what_exited_per_cassette(sim, make_driver, pay):
    driver = make_driver()
    first, second = ids(driver)[:2]
    done = pay(driver, "r1", {first: 3, second: 2})
    assert done.completion is Completion.SUCCESS and done.outcome == "complete" and done.error is None
    assert (done.exited[first], done.exited[second]) == (3, 2)
    assert sum(done.rejected.values()) == 0
    assert sim.delivered()[:2] == [3, 2]
    assert sim.dispense_commands == 1


def test_a_plan_larger_than_one_command_is_split_and_each_part_sent_once(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    want = 70 if sim.model.name == "lcdm2000" else 50      # 60+10 on the 2000, 20+20+10 on the 4000
    done = pay(driver, "big", {first: want})
    assert done.outcome == "complete" and done.exited[first] == want
    assert sim.delivered()[0] == want
    assert sim.dispense_commands == (2 if sim.model.name == "lcdm2000" else 3)


def test_double_picks_go_to_the_reject_tray_and_the_device_makes_up_the_count(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.set_double_picks(2)
    done = pay(driver, "r", {first: 3})
    assert done.outcome == "complete" and done.exited[first] == 3 and done.rejected[first] == 2
    assert sim.state()["reject_tray"] == 2 and sim.delivered()[0] == 3


def test_too_many_rejects_stops_the_dispense_as_partial(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.set_double_picks(0, every=2)
    done = pay(driver, "r", {first: 20})
    assert done.outcome == "partial" and done.error == "tooManyRejects"
    assert done.completion is Completion.HARDWARE_ERROR
    # Every second pick is a double: the 11th reject (the 22nd pick) stops it with 11 out.
    assert done.exited[first] == sim.delivered()[0] == 11 and done.rejected[first] == 11


def test_jam_stops_the_dispense_until_a_purge_clears_it(sim, make_driver, pay, recorder):
    driver = make_driver()
    first = ids(driver)[0]
    sim.jam_after(1)
    done = pay(driver, "jam", {first: 3})
    assert done.outcome == "partial" and done.error == "jam" and done.exited[first] == 1
    assert driver.state is DeviceState.HARDWARE_ERROR
    assert driver.status().path_blocked
    refused = pay(driver, "refused", {first: 1})
    assert refused.outcome == "partial" and sum(refused.exited.values()) == 0 and refused.error == "jam"
    moved = driver.purge()
    assert not sim.jammed and sim.state()["reject_tray"] == 1
    # The stuck note is booked as rejected exactly once: at the jam on the 2000 (its purge
    # answer has no counts), at the purge on the 4000 (which names the cassette).
    if sim.model.name == "lcdm4000":
        assert done.rejected[first] == 0 and moved[first] == 1
    else:
        assert done.rejected[first] == 1 and moved == {}
        assert "stuck in the transport" in done.detail
    unit = sim.state()["cassettes"][0]
    assert unit["count"] == 100 - done.exited[first] - 1
    assert driver.state is DeviceState.ONLINE
    again = pay(driver, "after-purge", {first: 2})
    assert again.outcome == "complete" and sim.delivered()[0] == 3
    assert DeviceState.HARDWARE_ERROR in recorder.states()


def test_missing_cassette_is_refused_with_nothing_moved(sim, make_driver, pay, recorder):
    driver = make_driver()
    second = ids(driver)[1]
    sim.remove_cassette(1)
    done = pay(driver, "m", {second: 2})
    assert done.outcome == "partial" and done.error == "cassetteMissing"
    assert done.completion is Completion.USER_ERROR and sum(done.exited.values()) == 0
    assert driver.state is DeviceState.USER_ERROR
    changes = [e for e in recorder.of(CassetteStatusChanged) if e.cassette == second]
    assert changes and changes[-1].status is UnitStatus.MISSING
    assert sim.dispense_commands == 1


def test_cassette_running_empty_mid_dispense_reports_the_notes_that_did_exit(sim, make_driver, pay, recorder):
    driver = make_driver()
    second = ids(driver)[1]
    sim.set_count(1, 2)
    done = pay(driver, "e", {second: 5})
    assert done.outcome == "partial" and done.exited[second] == 2
    if sim.model.name == "lcdm2000":
        assert done.error == "cassetteEmpty"
        assert [e.status for e in recorder.of(CassetteStatusChanged) if e.cassette == second][-1] is UnitStatus.EMPTY
    else:
        assert done.error == "pickUpError"       # the 4000's table has no "empty" code
    assert sim.delivered()[1] == 2


def test_missing_reject_tray_refuses_to_dispense(sim, make_driver, pay):
    driver = make_driver()
    sim.remove_reject_tray()
    done = pay(driver, "t", {ids(driver)[0]: 1})
    assert done.error == "noRejectTray" and done.outcome == "partial" and sum(done.exited.values()) == 0
    assert driver.state is DeviceState.USER_ERROR


def test_lost_ack_is_not_answered_with_a_second_dispense(sim, make_driver, pay):
    """Mutation caught: resending the dispense frame when its ACK does not come (the
    simulator then runs it twice: dispense_commands == 2 and twice the notes out)."""
    driver = make_driver()
    first = ids(driver)[0]
    sim.note_s = 0.15            # as on a real unit, the notes take longer than the ACK wait
    sim.lose_ack_once()
    done = pay(driver, "lost-ack", {first: 4})
    assert sim.dispense_commands == 1
    assert done.outcome == "complete" and done.exited[first] == 4
    assert sim.delivered()[0] == 4


def test_lost_answer_is_never_followed_by_a_second_dispense(sim, make_driver, pay):
    """Mutation caught: sending the dispense again when its answer does not come. The 4000
    recovers the counts with LAST STATUS; the 2000, which keeps no record, reports
    "unknown" with the notes of that command as uncertain."""
    driver = make_driver()
    first = ids(driver)[0]
    sim.lose_answer_once()
    done = pay(driver, "lost-answer", {first: 4})
    assert sim.dispense_commands == 1
    assert sim.delivered()[0] == 4
    if sim.model.name == "lcdm4000":
        assert done.outcome == "complete" and done.exited[first] == 4
        assert 0x55 in sim.commands                 # it asked LAST STATUS
    else:
        assert done.outcome == "unknown" and done.completion is Completion.TIMEOUT
        assert done.uncertain == {first: 4} and done.exited[first] == 0
        assert done.error == "noAnswer"


def test_lost_ack_and_lost_answer_together_still_send_one_dispense(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.lose_ack_once()
    sim.lose_answer_once()
    done = pay(driver, "both-lost", {first: 2})
    assert sim.dispense_commands == 1 and sim.delivered()[0] == 2
    if sim.model.name == "lcdm4000":
        # LAST STATUS differs from what the unit reported before: it is this dispense.
        assert done.outcome == "complete" and done.exited[first] == 2
    else:
        assert done.outcome == "unknown" and done.uncertain == {first: 2}


def test_command_that_never_arrived_is_unknown_not_resent(sim, make_driver, pay):
    """Neither ACK nor answer, and LAST STATUS still shows the operation before: the driver
    cannot tell a lost command from a lost answer, so it says unknown and sends nothing more.
    Mutation caught: dropping the baseline comparison books the previous dispense's 2 notes
    as this one's ("complete" for notes that never left)."""
    driver = make_driver()
    first = ids(driver)[0]
    pay(driver, "before", {first: 2})
    sim.drop_next_command()
    done = pay(driver, "dropped", {first: 2})
    assert sim.dispense_commands == 1 and sim.delivered()[0] == 2
    assert done.outcome == "unknown" and done.uncertain == {first: 2} and sum(done.exited.values()) == 0


def test_power_cut_mid_dispense_keeps_the_notes_that_left(sim, make_driver, pay, recorder):
    """Mutation caught: booking a dispense with no answer as "0 exited" (partial) instead of
    asking LAST STATUS (4000: 3 notes are out) or saying unknown (2000)."""
    driver = make_driver()
    first = ids(driver)[0]
    sim.power_cut_after(3)
    done = pay(driver, "power", {first: 6})
    assert sim.delivered()[0] == 3 and sim.dispense_commands == 1
    if sim.model.name == "lcdm4000":
        assert done.outcome == "partial" and done.exited[first] == 3
        assert done.error == "hardwareError"
        last = driver.last_operation()
        assert last.command == "dispense" and last.exited[first] == 3
    else:
        assert done.outcome == "unknown" and done.uncertain == {first: 6}
        assert driver.last_operation() is None
    assert any(e.state is DeviceState.HARDWARE_ERROR for e in recorder.of(DeviceStatusChanged))


def test_nak_for_a_damaged_dispense_frame_is_answered_by_sending_it_again(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.nak_next_command()
    done = pay(driver, "nak", {first: 2})
    assert done.outcome == "complete" and sim.dispense_commands == 1 and sim.delivered()[0] == 2
    assert driver.commands_sent.count(driver.commands_sent[-1]) >= 1
    assert sim.bad_frames_received == 1


def test_damaged_answer_is_nakked_and_the_repeat_booked_once(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.corrupt_next_answer()
    done = pay(driver, "bad-bcc", {first: 3})
    assert done.outcome == "complete" and done.exited[first] == 3
    assert sim.naks_received == 1 and sim.dispense_commands == 1 and driver.bad_frames >= 1


def test_test_dispense_puts_one_note_in_the_reject_tray(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    done = pay(driver, "test", {first: 1}, test=True)
    assert done.outcome == "complete" and sum(done.exited.values()) == 0 and done.rejected[first] == 1
    assert sim.state()["reject_tray"] == 1 and sim.delivered()[0] == 0


def test_last_operation_reports_the_device_record_on_the_4000_only(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    pay(driver, "r", {first: 2})
    last = driver.last_operation()
    if sim.model.name == "lcdm4000":
        assert last.command == "dispense" and last.exited[first] == 2 and last.error is None
        assert driver.last_result("r").exited[first] == 2
    else:
        assert last is None
    assert driver.last_result("another") is None


def test_plans_naming_unknown_cassettes_or_bad_counts_are_refused_before_any_byte(sim, make_driver):
    driver = make_driver()
    with pytest.raises(ValueError):
        driver.dispense("x", {"9": 1})
    with pytest.raises(ValueError):
        driver.dispense("x", {ids(driver)[0]: -1})
    with pytest.raises(ValueError):
        driver.dispense("x", {ids(driver)[0]: 0})
    assert sim.dispense_commands == 0


def test_even_parity_is_a_setting_the_line_accepts(sim, make_driver):
    driver = make_driver(parity="even")
    assert driver.status().state is DeviceState.ONLINE


def test_auto_parity_tries_even_when_the_unit_never_answers_at_none(sim, make_driver):
    for _ in range(3):
        sim.drop_next_command(on="any")          # every send of the first STATUS is lost
    driver = make_driver(parity="auto")
    assert driver.line_parity == "even" and driver.state is DeviceState.ONLINE
    assert driver.status().state is DeviceState.ONLINE


def test_a_unit_that_never_answers_is_a_timeout_naming_the_parities_tried(recorder):
    # A 2000 on the line answers only its own ID: a host for the 4000 hears nothing.
    other = LcdmSimulator("lcdm2000", note_s=0.0)
    other.start("pty")
    try:
        driver = LcdmDispenser(other.url, model="lcdm4000", ack_timeout=0.1)
        with pytest.raises(DeviceTimeout) as info:
            driver.open(recorder)
        assert "none or even" in str(info.value) and driver.state is DeviceState.OFFLINE
        assert other.frames_received == 0
    finally:
        other.stop()


def test_a_port_that_does_not_open_is_a_port_error(recorder):
    driver = LcdmDispenser("/dev/nonexistent-lcdm", model="lcdm2000")
    with pytest.raises(PortError) as info:
        driver.open(recorder)
    assert "/dev/nonexistent-lcdm" in str(info.value)


def test_the_simulator_serves_over_tcp_too(recorder, pay):
    sim = LcdmSimulator("lcdm4000", note_s=0.0)
    url = sim.start("tcp")
    try:
        assert url.startswith("socket://127.0.0.1:")
        driver = LcdmDispenser(url, model="lcdm4000", response_timeout=1.5)
        driver.open(recorder)
        try:
            done = pay(driver, "tcp", {"1": 2, "3": 1})
            assert done.outcome == "complete" and sim.delivered()[:3] == [2, 0, 1]
        finally:
            driver.close()
    finally:
        sim.stop()


def test_read_only_commands_are_simply_asked_again_after_a_lost_answer_or_ack(sim, make_driver):
    driver = make_driver()
    before = len(sim.commands)
    sim.lose_answer_once(on="any")
    assert driver.status().state is DeviceState.ONLINE
    sim.lose_ack_once(on="any")
    assert driver.status().state is DeviceState.ONLINE
    status_cmd = 0x46 if sim.model.name == "lcdm2000" else 0x50
    # Asked twice for the lost answer; once for the lost ACK, whose answer still came.
    assert sim.commands[before:].count(status_cmd) == 3 and sim.dispense_commands == 0


def test_lcdm4000_reset_acknowledges_both_answers(sim, make_driver, pay):
    if sim.model.name == "lcdm2000":
        driver = make_driver()
        with pytest.raises(Exception, match="no RESET"):
            driver.reset()
        return
    sim.reset_s = 0.2
    driver = make_driver()
    assert driver.reset(wait_s=1.0) == 2
    done = pay(driver, "after-reset", {"1": 1})
    assert done.outcome == "complete" and sim.dispense_commands == 1


@pytest.mark.parametrize("model", ["lcdm2000", "lcdm4000"])
def test_cable_pulled_mid_dispense_is_unknown_never_zero_and_never_resent(recorder, pay, model):
    """Mutation caught: treating a port failure after the dispense went out as "nothing
    was sent" (booked as partial with 0 exited while notes left the unit)."""
    sim = LcdmSimulator(model, note_s=0.01)
    url = sim.start("tcp")
    try:
        driver = LcdmDispenser(url, model=model, response_timeout=1.5, ack_timeout=0.3)
        driver.open(recorder)
        try:
            first = driver.cassette_ids[0]
            sim.pull_cable_after(2)
            done = pay(driver, "cable", {first: 5})
            assert done.outcome == "unknown" and done.uncertain == {first: 5}
            assert sim.delivered()[0] == 5 and sim.dispense_commands == 1
        finally:
            driver.close()
    finally:
        sim.stop()


def test_a_lost_host_ack_makes_the_unit_repeat_and_the_repeat_is_booked_once(sim, make_driver, pay):
    driver = make_driver()
    first = ids(driver)[0]
    sim.lose_host_ack_once()
    one = pay(driver, "one", {first: 2})
    two = pay(driver, "two", {first: 3})
    assert (one.exited[first], two.exited[first]) == (2, 3)
    assert sim.delivered()[0] == 5 and sim.dispense_commands == 2
    assert sim.acks_received >= 2


def test_a_short_error_frame_without_counts_is_unknown_not_zero(sim, make_driver, pay):
    """A failed dispense answered with only [CMD ERR] says nothing of what moved: the 4000
    is asked its LAST STATUS, the 2000 reports the error with an unknown outcome.
    Mutation caught: reading the short frame as "0 exited"."""
    driver = make_driver()
    first = ids(driver)[0]
    sim.short_error_frames = True
    sim.jam_after(2)
    done = pay(driver, "short", {first: 4})
    assert done.error == "jam" and sim.delivered()[0] == 2 and sim.dispense_commands == 1
    if sim.model.name == "lcdm4000":
        assert done.outcome == "partial" and done.exited[first] == 2
    else:
        assert done.outcome == "unknown" and done.uncertain == {first: 4}
