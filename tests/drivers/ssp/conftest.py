"""Fixtures for SSP driver <-> simulator tests: a simulator on a real pty (or TCP), a driver
with fast timings, and an event collector (over the shared recorder) that tests wait on with a deadline."""

from __future__ import annotations

import time
from typing import Callable, Iterator, TypeVar

import pytest

from drivers.ssp.driver import SspValidator
from hal.events import Event
from simulators.ssp import SspSimulator

E = TypeVar("E", bound=Event)

FAST = dict(poll_interval=0.03, reply_timeout=0.15, retries=3)


class Collector:
    """The SSP tests' view of the shared recorder (tests/conftest.py): events by type, and a
    wait that returns the first matching event or fails naming what did arrive."""

    def __init__(self, recorder) -> None:
        self._recorder = recorder

    @property
    def events(self) -> list[Event]:
        return self._recorder.events

    def __call__(self, event: Event) -> None:
        self._recorder(event)

    def of(self, cls: type[E]) -> list[E]:
        return self._recorder.of(cls)

    def wait_for(self, cls: type[E], pred: Callable[[E], bool] = lambda e: True, timeout: float = 5.0) -> E:
        found: list[E] = []

        def arrived(events: list[Event]) -> bool:
            match = next((e for e in events if isinstance(e, cls) and pred(e)), None)
            if match is not None:
                found.append(match)
            return match is not None

        if self._recorder.wait_for(arrived, timeout):
            return found[0]
        names = [type(e).__name__ + ":" + str(getattr(e, "detail", getattr(e, "reason", "")))
                 for e in self.of(Event)]
        raise AssertionError(f"no {cls.__name__} matching within {timeout} s; got {names}")


def _wait_until(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `check` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    return _wait_until


@pytest.fixture(params=["pty"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sim(transport: str) -> Iterator[SspSimulator]:
    simulator = SspSimulator()
    simulator.start(transport)
    yield simulator
    simulator.stop()


@pytest.fixture
def events(recorder) -> Collector:
    return Collector(recorder)


@pytest.fixture
def make_driver(sim: SspSimulator, events: Collector) -> Iterator[Callable[..., SspValidator]]:
    made: list[SspValidator] = []

    def make(open_it: bool = True, **kwargs: object) -> SspValidator:
        options = dict(FAST)
        options.update(kwargs)
        driver = SspValidator(sim.url, **options)  # type: ignore[arg-type]
        made.append(driver)
        if open_it:
            driver.open(events)
        return driver

    yield make
    for driver in made:
        driver.close()
