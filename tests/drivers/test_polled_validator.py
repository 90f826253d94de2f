"""The money rules and contract checks drivers.polled_validator keeps for every polled bill
validator, proven on each protocol against its own simulator over a real pty: nothing is
credited in escrow, the settled event (ID-003 VEND VALID, ccNet BILL STACKED) is
acknowledged only once the recorder made it durable, and a settled event repeated after a
lost ACK is credited once. What only one protocol does stays in its own folder."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Callable

import pytest

from drivers.ccnet.driver import CcnetValidator
from drivers.id003.driver import Id003Validator
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import NoteCredited, NoteEscrowed, NoteStacked
from hal.money import Fiat
from hal.status import DeviceState
from simulators.ccnet import CcnetSimulator
from simulators.id003 import Id003Simulator
from tests.drivers.polled_validator_harness import (  # noqa: F401  (fixtures pytest finds here)
    credits,
    event_log_class,
    log,
    make_driver,
    sim,
    sim_options,
    status_event,
    transport,
    wait_until_fixture,
)

EUR = "EUR"


@dataclass(frozen=True)
class Unit:
    """One protocol's driver and simulator, and how its simulator shows what the tests check."""

    protocol: str
    driver: type
    simulator: type
    enabled: Callable[[dict], bool]
    idle: str
    escrow_phases: frozenset[str]
    # The phase that reports the settled event, and whether the host has acknowledged it.
    settled_phase: str
    unacknowledged: Callable[[dict], bool]
    # A denomination key of the configuration, in the protocol's own numbering.
    note_key: str
    # What a peer speaking something else sends back (the other protocol's frame, then junk).
    garbage: bytes


UNITS = {
    "id003": Unit("ID-003", Id003Validator, Id003Simulator, enabled=lambda s: not s["inhibited"], idle="idle",
                  escrow_phases=frozenset({"escrow"}), settled_phase="vend_valid",
                  unacknowledged=lambda s: s["acks_received"] == 0, note_key="0x61",
                  garbage=b"\xfc\x07\x11\x00\x00\x00\x00\xff\x00garbage"),
    "ccnet": Unit("ccNet", CcnetValidator, CcnetSimulator,
                  enabled=lambda s: not s["inhibited"] and s["state"] == "idle_enabled", idle="idle_enabled",
                  escrow_phases=frozenset({"escrow", "holding"}), settled_phase="stacked",
                  unacknowledged=lambda s: s["event_acked"] is False, note_key="0x02",
                  garbage=b"\xfc\x05\x11\x27\x56 not ccnet \x02\x03\x09"),
}


@pytest.fixture(params=sorted(UNITS))
def unit(request) -> Unit:
    return UNITS[request.param]


@pytest.fixture
def driver_class(unit):
    return unit.driver


@pytest.fixture
def simulator_class(unit):
    return unit.simulator


@pytest.fixture
def unit_enabled(unit):
    return unit.enabled


def insert(sim, minor: int, wait_until) -> None:
    """A customer: the note goes in as soon as the unit draws notes in."""
    wait_until(lambda: sim.insert_note(minor), what=f"unit takes a {minor} note")


# -- money --------------------------------------------------------------------------------

def test_nothing_is_credited_while_the_note_waits_in_escrow(unit, sim, log, make_driver, credits, wait_until):
    log.on_event = lambda e: None          # the application never answers
    make_driver(escrow_timeout=30)
    insert(sim, 2000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteEscrowed))
    wait_until(lambda: sim.state()["state"] in unit.escrow_phases, what="note held in escrow")
    assert credits == [] and log.of(NoteCredited) == []


def test_failing_recorder_withholds_the_ack_until_the_credit_is_durable(unit, sim, log, make_driver, wait_until):
    """Catches: acknowledging the settled event although the recorder raised (the unit
    would move on with a credit nobody wrote down)."""
    driver = make_driver()
    calls = []
    unit_at_call = []

    def flaky_recorder(event):
        calls.append(event)
        state = sim.state()
        unit_at_call.append(state["state"] == unit.settled_phase and unit.unacknowledged(state))
        if len(calls) < 3:
            raise OSError("journal disk full")

    driver.set_credit_recorder(flaky_recorder)
    insert(sim, 500, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteCredited))
    assert len(calls) == 3 and all(c.value == Fiat(500, EUR) for c in calls)
    # Every try, the last one included, came while the unit still waited for its ACK.
    assert unit_at_call == [True, True, True]
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    assert len(log.of(NoteCredited)) == 1
    assert sim.state()["stacked"] == [500]


def test_settled_event_is_never_acknowledged_without_a_recorder(unit, sim, log, make_driver, wait_until):
    """Catches: an ACK sent before the recorder is looked at (the unit would move on with a
    credit nobody can write down)."""
    driver = make_driver()
    driver.set_credit_recorder(None)
    insert(sim, 500, wait_until)
    log.wait_for(status_event(DeviceState.ONLINE, "no credit recorder"))
    # Several more polls: an ACK written just before the status change has surely arrived.
    polled = sim.frames_received
    wait_until(lambda: sim.frames_received >= polled + 4, what="four more polls")
    state = sim.state()
    assert state["state"] == unit.settled_phase and unit.unacknowledged(state)
    assert log.of(NoteCredited) == []


def test_a_lost_host_ack_makes_the_unit_repeat_the_settled_event_and_the_note_is_credited_once(
        unit, sim, log, make_driver, wait_until):
    """Mutations caught: calling the recorder again for the repeat (the driver must not lean
    on the journal's idempotence alone), or emitting a second NoteCredited."""
    driver = make_driver()
    recorded = []
    driver.set_credit_recorder(recorded.append)
    sim.lose_host_ack_once()
    insert(sim, 1000, wait_until)
    log.wait_for(lambda e: isinstance(e, NoteStacked))
    wait_until(lambda: sim.state()["state"] == unit.idle, what="unit back to idle")
    state = sim.state()
    assert state["acks_lost"] == 1
    assert [e.value for e in recorded] == [Fiat(1000, EUR)]
    assert len(log.of(NoteCredited)) == 1 and state["stacked"] == [1000]


# -- contract -----------------------------------------------------------------------------

def test_enable_refuses_an_accept_list_in_another_currency(make_driver):
    driver = make_driver(enable=False)
    with pytest.raises(ValueError, match="EUR"):
        driver.enable(accept=[Fiat(1000, "USD")])


def test_stack_without_a_note_in_escrow_is_a_device_error(make_driver):
    driver = make_driver()
    with pytest.raises(DeviceError, match="no note waiting"):
        driver.stack()


def test_configured_denominations_need_a_currency(unit):
    with pytest.raises(ConfigurationError, match="currency"):
        unit.driver("socket://127.0.0.1:9", denominations={unit.note_key: 500})


# -- opening ------------------------------------------------------------------------------

def test_a_port_that_does_not_open_is_a_port_error_naming_it(unit):
    port = f"/dev/ttyNOPE-{unit.protocol}"
    driver = unit.driver(port, reply_timeout=0.05)
    with pytest.raises(PortError, match=port):
        driver.open(lambda e: None)


def _peer(reply: bytes):
    """A loopback TCP peer that accepts one connection and answers every write with `reply`
    (nothing: a silent line)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(2)
    stop = threading.Event()

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.05)
            while not stop.is_set():
                try:
                    data = conn.recv(64)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if reply:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"socket://127.0.0.1:{server.getsockname()[1]}", stop, server, thread


@pytest.mark.parametrize("garbage, error", [(False, DeviceTimeout), (True, ProtocolError)])
def test_a_silent_or_garbage_peer_is_a_typed_error_a_technician_can_act_on(unit, garbage, error):
    url, stop, server, thread = _peer(unit.garbage if garbage else b"")
    driver = unit.driver(url, reply_timeout=0.1)
    words = f"not {unit.protocol} frames" if garbage else "no answer"
    try:
        with pytest.raises(error, match=words) as raised:
            driver.open(lambda e: None)
        assert url in str(raised.value) and unit.protocol in str(raised.value)
        assert driver.state != DeviceState.ONLINE
    finally:
        stop.set()
        server.close()
        thread.join(timeout=2)
        driver.close()
