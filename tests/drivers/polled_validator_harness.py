"""Fixtures every polled bill validator's driver tests use (ID-003, ccNet): a simulator on a
real pty (or TCP), a driver opened against it, and an event log that tests wait on with
deadlines. Each protocol's conftest imports them and names its driver and simulator
(`driver_class`, `simulator_class`, `unit_enabled`); the behaviour tests stay per protocol."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from hal.events import DeviceStatusChanged, Event, NoteEscrowed
from hal.status import DeviceState

WAIT_S = 5.0


class EventLog:
    """Thread-safe list of what the driver emitted, with condition waits (no sleeps).
    `on_event` plays the application: by default make_driver stacks every note it can value."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self.on_event: Callable[[Event], None] | None = None

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    def of(self, kind: type) -> list:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = WAIT_S) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event within {timeout} s; got {self.events!r}")
                self._cond.wait(remaining)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    """Poll a condition with a deadline (the simulator has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        threading.Event().wait(0.005)


def status_event(state: DeviceState, text: str = "") -> Callable[[Event], bool]:
    """A predicate for EventLog.wait_for: a status change to `state` whose detail says `text`."""
    return lambda e: isinstance(e, DeviceStatusChanged) and e.state == state and text in e.detail


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    return wait_until


@pytest.fixture(name="EventLog")
def event_log_class():
    return EventLog


@pytest.fixture(params=["pty"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def sim_options(request) -> dict:
    """Simulator keyword arguments; a test sets them with parametrize(..., indirect=True)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def sim(transport, sim_options, simulator_class):
    simulator = simulator_class(**{"step_s": 0.02, **sim_options})
    simulator.start(transport)
    yield simulator
    simulator.stop()


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
def credits() -> list:
    return []


@pytest.fixture
def make_driver(sim, log, credits, driver_class, unit_enabled):
    """Build and open a driver against `sim`; closed at teardown. Escrowed notes are
    stacked unless the test sets log.on_event."""
    opened: list = []

    def build(*, open_it: bool = True, enable: bool = True, **kwargs):
        kwargs.setdefault("poll_interval", 0.02)
        kwargs.setdefault("reply_timeout", 0.15)
        driver = driver_class(sim.url, **kwargs)
        driver.set_credit_recorder(credits.append)
        if log.on_event is None:
            def stack_everything(event: Event) -> None:
                if isinstance(event, NoteEscrowed) and event.value is not None:
                    driver.stack()
            log.on_event = stack_everything
        opened.append(driver)
        if open_it:
            driver.open(log)
            if enable:
                driver.enable()
                wait_until(lambda: unit_enabled(sim.state()), what="validator enabled")
        return driver

    yield build
    for driver in opened:
        driver.close()
