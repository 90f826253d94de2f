"""sd_notify over a real AF_UNIX datagram socket, as systemd listens: READY=1 when the
kiosk serves, WATCHDOG=1 from a task on the event loop (so a blocked loop stops the
pings and systemd restarts the kiosk), STOPPING=1 on the way out, and nothing at all
without $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from atm.systemd_notify import Watchdog, notify, watchdog_interval


@pytest.fixture
def systemd_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def _received(sock) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode("ascii"))
        except BlockingIOError:
            return out


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        await asyncio.sleep(0.01)


def _env(sock, usec: int = 100_000) -> dict[str, str]:
    return {"NOTIFY_SOCKET": sock.getsockname(), "WATCHDOG_USEC": str(usec)}


async def test_ready_then_periodic_watchdog_pings_then_stopping(systemd_socket):
    watchdog = Watchdog(_env(systemd_socket))
    assert watchdog.interval == pytest.approx(0.05)
    got: list[str] = []
    watchdog.ready()
    await _until(lambda: got.extend(_received(systemd_socket)) or got.count("WATCHDOG=1") >= 3,
                 "three WATCHDOG=1 pings")
    assert got[0] == "READY=1"
    await watchdog.stopping()
    got.extend(_received(systemd_socket))
    assert got[-1] == "STOPPING=1"


async def test_a_blocked_event_loop_sends_no_pings_and_they_resume_after(systemd_socket):
    """Mutation caught: pinging from a thread (or a timer outside the loop) keeps
    systemd happy while the kiosk's loop is stuck."""
    watchdog = Watchdog(_env(systemd_socket, usec=40_000))   # a ping every 20 ms
    watchdog.ready()
    got: list[str] = []
    await _until(lambda: got.extend(_received(systemd_socket)) or "WATCHDOG=1" in got, "a first ping")
    _received(systemd_socket)
    time.sleep(0.5)  # the loop is stuck in a callback: 25 ping intervals pass
    assert _received(systemd_socket) == []
    got.clear()
    await _until(lambda: got.extend(_received(systemd_socket)) or "WATCHDOG=1" in got, "pings again")
    await watchdog.stopping()


def test_without_notify_socket_nothing_is_sent_and_no_watchdog_runs(systemd_socket):
    assert notify("READY=1", {}) is False
    assert watchdog_interval({"WATCHDOG_USEC": "100000"}) is None
    assert _received(systemd_socket) == []


def test_the_watchdog_is_for_this_process_only_and_needs_a_period(systemd_socket):
    env = _env(systemd_socket)
    assert watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid())}) == pytest.approx(0.05)
    assert watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({**env, "WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({**env, "WATCHDOG_USEC": "soon"}) is None


def test_an_abstract_socket_name_is_reached(tmp_path):
    name = f"atm-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(64) == b"READY=1"


def test_a_socket_that_is_gone_is_logged_not_raised(tmp_path, caplog):
    assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False
    assert "NOTIFY_SOCKET" in caplog.text


@pytest.mark.slow
async def test_atm_run_tells_systemd_it_is_ready_feeds_the_watchdog_and_says_it_stops(systemd_socket, tmp_path):
    from kiosk_process import KioskProcess
    env = _env(systemd_socket, usec=200_000)
    got: list[str] = []
    with KioskProcess(tmp_path / "state", env=env) as kiosk:
        await _until(lambda: got.extend(_received(systemd_socket)) or got.count("WATCHDOG=1") >= 2,
                     "READY=1 and two pings", timeout=30)
        assert got[0] == "READY=1"
        assert kiosk.screen()["screen"]  # ready means the screen answers
    assert kiosk.proc.returncode == 0
    got.extend(_received(systemd_socket))
    assert got[-1] == "STOPPING=1"


def test_the_kiosk_unit_waits_for_ready_and_restarts_on_a_missed_watchdog():
    import configparser
    from pathlib import Path
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(Path(__file__).resolve().parents[2] / "systemd" / "atm-kiosk.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "always"
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # the notification socket
