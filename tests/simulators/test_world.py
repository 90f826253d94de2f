"""The simulated world's control surface: the validator faults (stall while stacking,
lost host ACK) and taking a QR code away are forwarded to the simulator objects by
the names every simulator shares; a device given a port is an outside device the
world neither starts nor drives."""

from __future__ import annotations

import pytest

from simulators.world import SimulatedWorld


class RecordingSimulator:
    """Stands in for a wire simulator's control surface: records what the world calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def stall_stacking(self, then: str) -> None:
        self.calls.append(("stall_stacking", then))

    def lose_host_ack_once(self) -> None:
        self.calls.append(("lose_host_ack_once",))

    def take_away(self) -> None:
        self.calls.append(("take_away",))

    def state_info(self) -> dict:
        return {"calls": len(self.calls)}


@pytest.fixture
def world():
    world = SimulatedWorld()
    world.sims["validator"] = RecordingSimulator()
    world.sims["scanner"] = RecordingSimulator()
    return world


@pytest.mark.parametrize("then", ["stacker", "acceptor"])
async def test_stall_stacking_is_forwarded_with_where_the_note_ends(world, then):
    assert await world.run("stall_stacking", {"then": then}) == {"ok": True}
    assert world.sims["validator"].calls == [("stall_stacking", then)]


async def test_a_stall_ending_anywhere_else_is_refused_before_the_simulator_sees_it(world):
    result = await world.run("stall_stacking", {"then": "floor"})
    assert result["ok"] is False and "stacker or acceptor" in result["error"]
    assert world.sims["validator"].calls == []


async def test_losing_the_host_ack_once_is_forwarded(world):
    assert await world.run("lose_host_ack_once", {}) == {"ok": True}
    assert world.sims["validator"].calls == [("lose_host_ack_once",)]


async def test_taking_the_qr_code_away_is_forwarded_to_the_scanner(world):
    assert await world.run("take_away_qr", {}) == {"ok": True}
    assert world.sims["scanner"].calls == [("take_away",)]
    assert world.sims["validator"].calls == []


async def test_a_simulator_without_the_fault_says_which_one_lacks_it():
    world = SimulatedWorld(validator="ssp")
    world.sims["validator"] = object()
    result = await world.run("lose_host_ack_once", {})
    assert result["ok"] is False and "ssp validator simulator has no lose_host_ack_once" in result["error"]


def test_the_panel_lists_the_fault_commands_with_their_choices(world):
    listed = {c["command"]: c for c in world.commands()}
    assert listed["stall_stacking"]["args"] == {"then": "stacker|acceptor"}
    assert listed["lose_host_ack_once"]["args"] == {} and listed["take_away_qr"]["args"] == {}
    assert all(c["help"] for c in listed.values())


async def test_an_outside_validator_gets_no_simulator_and_the_panel_leaves_it_alone():
    world = SimulatedWorld(validator="ssp", scanner="serial", ports={"validator": "socket://127.0.0.1:7001",
                                                                     "scanner": "/dev/ttyACM0"})
    try:
        tables = world.start()
        assert tables["validator"]["driver"] == "ssp" and tables["validator"]["port"] == "socket://127.0.0.1:7001"
        assert tables["scanner"] == {"driver": "serial", "port": "/dev/ttyACM0"}
        assert "validator" not in world.sims and "scanner" not in world.sims
        assert tables["printer"]["port"].startswith("socket://127.0.0.1:")  # the rest is simulated
        result = await world.run("insert_note", {"minor": 2000})
        assert result["ok"] is False and "outside device at socket://127.0.0.1:7001" in result["error"]
    finally:
        world.stop()


def test_an_outside_camera_is_a_source_and_an_outside_printer_a_port():
    world = SimulatedWorld(validator="standin", ports={"scanner": "0", "printer": "/dev/usb/lp0"})
    try:
        tables = world.start()
        assert tables["scanner"] == {"driver": "camera", "source": "0"}
        assert tables["printer"]["driver"] == "escpos" and tables["printer"]["port"] == "/dev/usb/lp0"
        assert "scanner" not in world.sims and "printer" not in world.sims   # outside: nothing simulated
        assert set(world.sims) <= {"dispenser"}                                 # the dispenser is still simulated
    finally:
        world.stop()


def test_an_outside_device_needs_a_protocol_not_a_stand_in():
    with pytest.raises(ValueError, match=r"--validator \(id003, ssp.*\), not standin"):
        SimulatedWorld(validator="standin", ports={"validator": "socket://127.0.0.1:7001"})
