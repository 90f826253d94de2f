"""Fixtures for ccNet driver tests: the shared polled-validator harness (simulator on a real
pty, driver opened against it, event log with deadlines) bound to the ccNet driver and simulator."""

from __future__ import annotations

import pytest

from drivers.ccnet.driver import CcnetValidator
from simulators.ccnet import CcnetSimulator
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
    return CcnetValidator


@pytest.fixture
def simulator_class():
    return CcnetSimulator


@pytest.fixture
def unit_enabled():
    """The unit takes notes once it has bill types enabled and is idling."""
    return lambda state: not state["inhibited"] and state["state"] == "idle_enabled"
