"""SspValidator against the simulator over a pty, one test per fact checked against ITL's
manuals (GA138 v2.2, GA973 v2.2) that a naive implementation gets wrong: the 8N2 line, the
NV200's 0xE0 in every poll, events the driver cannot size, encryption enforced, and the
Diffie-Hellman numbers ITL's hosts send."""

from __future__ import annotations

import logging
import os
import termios

import pytest

from drivers.ssp import crypto
from drivers.ssp.driver import SspValidator
from drivers.ssp.frames import ENCRYPTED_PACKET, Command, decode_frame
from hal.errors import ConfigurationError
from hal.events import DeviceStatusChanged, NoteCredited, NoteEscrowed, NoteStacked
from hal.money import Fiat
from hal.status import DeviceState

EUR = "EUR"


def polls_since(sim, start: int) -> int:
    return sum(1 for c in sim.state()["rx_log"][start:] if c["command"] == Command.POLL or c.get("inside") == Command.POLL)


def test_serial_line_is_8n2_as_itl_sets_it(make_driver, sim) -> None:
    """GA138 / ITL's host libraries: 9600 baud, 8 data bits, no parity, two stop bits. Read
    back from the terminal itself, as the driver left it."""
    make_driver()
    fd = os.open(sim.url, os.O_RDWR | os.O_NOCTTY)
    try:
        cflag = termios.tcgetattr(fd)[2]
    finally:
        os.close(fd)
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & termios.PARENB
    assert cflag & termios.CSTOPB, "one stop bit: a real unit wants two"


def test_note_path_open_in_every_poll_does_not_cost_the_credit_beside_it(make_driver, sim, events,
                                                                        wait_until) -> None:
    """An NV200 repeats 0xE0 in every poll while its lid is open; the simulator puts it first
    in the reply, so a parser that stops at it loses the credit behind it."""
    recorded: list[NoteCredited] = []
    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorded.append)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(2000)
    events.wait_for(NoteEscrowed)
    sim.open_note_path()
    drv.stack()
    credited = events.wait_for(NoteCredited)
    events.wait_for(NoteStacked, lambda e: e.at >= credited.at)
    assert credited.value == Fiat(2000, EUR) and recorded == [credited]
    credit_replies = [t["data"] for t in sim.state()["tx_log"] if t["poll"] and "ee 03" in t["data"]]
    assert credit_replies and credit_replies[0].startswith("f0 e0 ")     # 0xE0 came before the credit
    assert sim.state()["cashbox"] == {"3": 1}


def test_note_path_open_is_one_status_report_not_one_per_poll_and_clears_when_closed(make_driver, sim, events,
                                                                                     wait_until) -> None:
    make_driver()
    sim.open_note_path()
    report = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xE0")
    assert report.state == DeviceState.USER_ERROR and "note path open" in report.detail
    start = len(sim.state()["rx_log"])
    wait_until(lambda: polls_since(sim, start) >= 10, what="ten polls with the path open")
    assert len([e for e in events.of(DeviceStatusChanged) if e.code == "0xE0"]) == 1
    assert not sim.insert_note(500)                           # the open unit takes no note
    sim.close_note_path()
    back = events.wait_for(DeviceStatusChanged, lambda e: e.at > report.at and e.state == DeviceState.ONLINE)
    assert "note path open cleared" in back.detail


def test_event_the_driver_cannot_size_in_every_poll_is_warned_once_and_the_credit_before_it_counts(
        make_driver, sim, events, wait_until, caplog) -> None:
    recorded: list[NoteCredited] = []
    drv = make_driver(open_it=False)
    drv.set_credit_recorder(recorded.append)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    sim.queue_event(0x42, repeat=True)             # ends every poll reply from now on
    caplog.set_level(logging.WARNING, logger="drivers.ssp.driver")
    sim.insert_note(1000)
    events.wait_for(NoteEscrowed)
    drv.stack()
    credited = events.wait_for(NoteCredited)
    assert credited.value == Fiat(1000, EUR) and recorded == [credited]
    start = len(sim.state()["rx_log"])
    wait_until(lambda: polls_since(sim, start) >= 10, what="ten more polls carrying 0x42")
    reports = [e for e in events.of(DeviceStatusChanged) if e.code == "unreadable"]
    assert len(reports) == 1 and "0x42" in reports[0].detail
    warnings = [r for r in caplog.records if "0x42" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "were not read" in warnings[0].getMessage()
    assert drv.state == DeviceState.ONLINE
    sim.clear_repeated_events()


def _rx(sim) -> list[dict]:
    return sim.state()["rx_log"]


def test_with_encryption_enforced_the_key_exchange_comes_straight_after_sync_then_everything_is_encrypted(
        make_driver, sim, events) -> None:
    sim.encryption_enforced = True
    recorded: list[NoteCredited] = []
    drv = make_driver(open_it=False, encrypted=True)
    drv.set_credit_recorder(recorded.append)
    drv.open(events)
    drv.enable()
    assert drv.wait_applied()
    sim.insert_note(5000)
    events.wait_for(NoteEscrowed)
    drv.stack()
    credited = events.wait_for(NoteCredited)
    assert credited.value == Fiat(5000, EUR) and recorded == [credited]
    commands = [c["command"] for c in _rx(sim)]
    assert commands[:4] == [Command.SYNC, Command.SET_GENERATOR, Command.SET_MODULUS, Command.REQUEST_KEY_EXCHANGE]
    assert set(commands[4:]) == {ENCRYPTED_PACKET}
    inside = [c["inside"] for c in _rx(sim)[4:]]
    assert inside[:2] == [Command.HOST_PROTOCOL_VERSION, Command.SETUP_REQUEST]
    assert Command.POLL in inside and Command.ENABLE in inside
    # Nothing was refused on the way: no reply was KEY NOT SET.
    assert not [t for t in sim.state()["tx_log"] if t["data"] == "fa"]


def test_plain_driver_on_a_unit_with_encryption_enforced_says_to_set_encrypted(make_driver, sim) -> None:
    sim.encryption_enforced = True
    with pytest.raises(ConfigurationError, match="encryption enforced.*set encrypted = true"):
        make_driver()


def test_enforced_unit_that_loses_power_is_keyed_again_before_anything_else(make_driver, sim, events,
                                                                             wait_until) -> None:
    sim.encryption_enforced = True
    drv = make_driver(encrypted=True)
    drv.enable()
    assert drv.wait_applied()
    sim.power_cycle()
    reset = events.wait_for(DeviceStatusChanged, lambda e: e.code == "0xF1")
    events.wait_for(DeviceStatusChanged, lambda e: e.at > reset.at and e.state == DeviceState.ONLINE)
    wait_until(lambda: sim.state()["enabled"], what="enabled again")
    sync = max(i for i, c in enumerate(_rx(sim)) if c["command"] == Command.SYNC)
    after = [c["command"] for c in _rx(sim)[sync:]]
    assert after[:4] == [Command.SYNC, Command.SET_GENERATOR, Command.SET_MODULUS, Command.REQUEST_KEY_EXCHANGE]
    assert set(after[4:]) == {ENCRYPTED_PACKET}


def test_key_exchange_numbers_are_below_2_31_with_the_generator_larger_than_the_modulus(make_driver, sim) -> None:
    """ITL's reference host (GA973) keeps generator, modulus and its secret below 2^31 and
    sends the generator larger; a unit is only ever met with such numbers."""
    make_driver(encrypted=True)
    sent = {c["command"]: decode_frame(bytes.fromhex(c["raw"])).data for c in _rx(sim)
            if c["command"] in (Command.SET_GENERATOR, Command.SET_MODULUS, Command.REQUEST_KEY_EXCHANGE)}
    generator = crypto.read_u64(sent[Command.SET_GENERATOR][1:], "generator")
    modulus = crypto.read_u64(sent[Command.SET_MODULUS][1:], "modulus")
    intermediate = crypto.read_u64(sent[Command.REQUEST_KEY_EXCHANGE][1:], "host intermediate key")
    assert modulus < generator < 2 ** 31
    assert crypto.is_probable_prime(generator) and crypto.is_probable_prime(modulus)
    assert 1 < intermediate < modulus
    assert sim.state()["encrypted"]


def test_barcode_ticket_in_escrow_is_given_back_before_any_poll_could_accept_it(make_driver, sim, events,
                                                                               wait_until) -> None:
    """NV200 0xE5: a barcode ticket waits in escrow and the next poll would accept it (GA138).
    A cash-only kiosk sends reject first."""
    drv = make_driver()
    drv.enable()
    assert drv.wait_applied()
    sim.queue_event(0xE5)
    wait_until(lambda: any(t["poll"] and t["data"].startswith("f0 e5") for t in sim.state()["tx_log"]),
               what="ticket reported")
    wait_until(lambda: any(c["command"] == Command.REJECT for c in sim.state()["rx_log"]), what="reject sent")
    state = sim.state()
    sent_at = next(t["t"] for t in state["tx_log"] if t["poll"] and t["data"].startswith("f0 e5"))
    after = [c["command"] for c in state["rx_log"] if c["t"] > sent_at and not c["repeat"]]
    assert after[0] == Command.REJECT
    assert events.of(NoteCredited) == []


@pytest.mark.parametrize("options, words", [
    ({"encrypted": "yes"}, "encrypted = 'yes': expected true or false"),
    ({"resolve_timeout": 0}, "resolve_timeout = 0: expected a number of seconds above 0"),
    ({"poll_interval": "fast"}, "poll_interval = 'fast'"),
])
def test_bad_options_from_configuration_name_the_key_and_what_is_expected(options, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        SspValidator("socket://127.0.0.1:9", **options)
