"""Fixtures for camera scanner tests: a simulated camera per test (the event recorder
and wait_until come from tests/conftest.py)."""

from __future__ import annotations

import itertools

import pytest

from simulators.camera import CameraSimulator

_names = itertools.count()


@pytest.fixture
def camera_sim():
    """A camera whose code stays in view after a read, so the driver's own de-duplication
    is what the tests see (the default simulator takes the phone away after a read)."""
    sim = CameraSimulator(name=f"test-camera-{next(_names)}", hold_after_read=True)
    yield sim
    sim.close()
