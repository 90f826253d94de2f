"""Fixtures for LCDM driver tests: a simulator of either model on a real pty, a driver
opened against it with short (but real) timeouts, and a recorder for its events."""

from __future__ import annotations

import pytest

from drivers.lcdm.driver import LcdmDispenser
from hal.events import DispenseCompleted
from simulators.lcdm import LcdmSimulator

WAIT_S = 20.0


@pytest.fixture(params=["lcdm2000", "lcdm4000"])
def model(request) -> str:
    return request.param


@pytest.fixture
def sim(model):
    cassettes = [(2000, 100), (5000, 100)] if model == "lcdm2000" else [(1000, 100), (2000, 100), (5000, 50)]
    simulator = LcdmSimulator(model, cassettes, note_s=0.002)
    simulator.start("pty")
    yield simulator
    simulator.stop()


@pytest.fixture
def make_driver(sim, recorder):
    opened: list[LcdmDispenser] = []

    def build(*, open_it: bool = True, **kwargs) -> LcdmDispenser:
        kwargs.setdefault("model", sim.model.name)
        kwargs.setdefault("ack_timeout", 0.3)
        kwargs.setdefault("response_timeout", 1.5)
        kwargs.setdefault("per_note_s", 0.05)
        driver = LcdmDispenser(sim.url, **kwargs)
        opened.append(driver)
        if open_it:
            driver.open(recorder)
        return driver

    yield build
    for driver in opened:
        driver.close()


@pytest.fixture
def pay(recorder):
    """Start a dispense and wait (with a deadline) for its one DispenseCompleted."""

    def run(driver: LcdmDispenser, request_id: str, plan: dict[str, int], *, test: bool = False) -> DispenseCompleted:
        if test:
            (cassette,) = plan
            driver.test_dispense(request_id, cassette)
        else:
            driver.dispense(request_id, plan)
        assert recorder.wait_for(lambda events: any(isinstance(e, DispenseCompleted) and e.request_id == request_id
                                                    for e in events), timeout=WAIT_S), recorder.events
        done = [e for e in recorder.of(DispenseCompleted) if e.request_id == request_id]
        assert len(done) == 1, f"one completion per dispense, got {done}"
        return done[0]

    return run
