"""Fixtures for camera scanner tests: a simulated camera per test (the event recorder
and wait_until come from tests/conftest.py)."""

from __future__ import annotations

import itertools

import pytest

from simulators.camera import CameraSimulator

_names = itertools.count()


@pytest.fixture
def camera_sim():
    sim = CameraSimulator(name=f"test-camera-{next(_names)}")
    yield sim
    sim.close()
