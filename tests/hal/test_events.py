"""The sink contract drivers rely on."""

from __future__ import annotations

import logging

from hal import DeviceState, DeviceStatusChanged
from hal.events import emit_safely


def test_a_failing_application_sink_is_logged_and_does_not_reach_the_driver_thread(caplog):
    def broken_sink(event):
        raise RuntimeError("bug in the application")

    event = DeviceStatusChanged(device="validator", state=DeviceState.ONLINE)
    with caplog.at_level(logging.ERROR):
        emit_safely(broken_sink, event, "validator")
    assert "event sink raised" in caplog.text and "bug in the application" in caplog.text


def test_events_reach_the_sink_in_order_and_no_sink_is_not_an_error():
    seen = []
    for state in (DeviceState.STARTING, DeviceState.ONLINE):
        emit_safely(seen.append, DeviceStatusChanged(device="v", state=state), "v")
    emit_safely(None, DeviceStatusChanged(device="v", state=DeviceState.OFFLINE), "v")
    assert [e.state for e in seen] == [DeviceState.STARTING, DeviceState.ONLINE]
