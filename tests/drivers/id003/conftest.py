"""Fixtures for ID-003 driver tests: the shared polled-validator harness (simulator on a real
pty, driver opened against it, event log with deadlines) bound to the ID-003 driver and simulator."""

from __future__ import annotations

import pytest

from drivers.id003.driver import Id003Validator
from simulators.id003 import Id003Simulator
from tests.drivers.polled_validator_harness import (  # noqa: F401  (fixtures pytest finds here)
    credits,
    event_log_class,
    log,
    make_driver,
    sim,
    sim_options,
    transport,
    wait_until_fixture,
)


@pytest.fixture
def driver_class():
    return Id003Validator


@pytest.fixture
def simulator_class():
    return Id003Simulator


@pytest.fixture
def unit_enabled():
    """The acceptor takes notes once inhibit is off."""
    return lambda state: not state["inhibited"]
