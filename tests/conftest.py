"""Fixtures shared across test folders: a thread-safe event recorder that a test waits on
with a deadline (never a fixed sleep), and a deadline poll for state with no event to wait on.
A folder's own conftest may override either name with a variant its tests need."""

from __future__ import annotations

import threading
from typing import Callable

import pytest

from hal.events import CodeScanned, DeviceStatusChanged, Event
from hal.status import DeviceState

WAIT_S = 10.0


class EventRecorder:
    """A thread-safe EventSink that lets a test wait for a condition on what arrived."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout=timeout)

    def of(self, cls: type) -> list:
        with self._cond:
            return [e for e in self.events if isinstance(e, cls)]

    def codes(self) -> list[CodeScanned]:
        return self.of(CodeScanned)

    def states(self) -> list[DeviceState]:
        return [e.state for e in self.of(DeviceStatusChanged)]


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll a condition with a deadline (for state that has no event to wait on)."""
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if predicate():
                return True
            done.wait(0.01)
        return predicate()
    finally:
        deadline.cancel()


@pytest.fixture
def recorder() -> EventRecorder:
    return EventRecorder()


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., bool]:
    return wait_until
