"""The dispenser contract's additions: a completion's outcome, and the operations a
dispenser without them refuses in words instead of pretending."""

from __future__ import annotations

import pytest

from hal.dispenser import CashDispenser
from hal.errors import DeviceError
from hal.events import DispenseCompleted
from hal.status import Completion, DeviceState


def completed(**kwargs) -> DispenseCompleted:
    return DispenseCompleted(device="dispenser", request_id="r", exited={"1": 1}, rejected={"1": 0}, **kwargs)


def test_outcome_defaults_from_the_completion_and_unknown_must_be_said():
    assert completed(completion=Completion.SUCCESS).outcome == "complete"
    assert completed(completion=Completion.HARDWARE_ERROR).outcome == "partial"
    unknown = completed(completion=Completion.TIMEOUT, outcome="unknown", uncertain={"1": 3}, error="noAnswer")
    assert unknown.outcome == "unknown" and unknown.uncertain == {"1": 3}
    with pytest.raises(ValueError):
        completed(completion=Completion.SUCCESS, outcome="done")


class _Minimal(CashDispenser):
    name = "dispenser"

    def open(self, sink): ...
    def close(self): ...

    @property
    def state(self):
        return DeviceState.ONLINE

    @property
    def cassettes(self):
        return []

    def dispense(self, request_id, plan): ...
    def last_result(self, request_id):
        return None


def test_a_dispenser_without_status_purge_or_test_says_so():
    minimal = _Minimal()
    for call in (minimal.status, minimal.purge, lambda: minimal.test_dispense("r", "1")):
        with pytest.raises(DeviceError) as info:
            call()
        assert "_Minimal" in str(info.value)
    assert minimal.last_operation() is None
