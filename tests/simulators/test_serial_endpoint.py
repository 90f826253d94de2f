"""The simulators' shared device end: bytes cross a loopback TCP link or a pty both ways,
hosts come and go, and close() gives back the port and the pty."""

from __future__ import annotations

import os
import socket
import termios
import threading
import time
from typing import Callable, Iterator

import pytest
import serial

from simulators.serial_endpoint import SerialEndpoint

WAIT_S = 5.0


@pytest.fixture
def endpoint() -> Iterator[SerialEndpoint]:
    ep = SerialEndpoint()
    yield ep
    ep.close()


def tcp_port(url: str) -> int:
    assert url.startswith("socket://127.0.0.1:"), url
    return int(url.rsplit(":", 1)[1])


def connect(url: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", tcp_port(url)), timeout=WAIT_S)


def read_until(ep: SerialEndpoint, done: Callable[[bytes], bool]) -> bytes:
    """Drive the endpoint as a protocol loop would, until `done` holds or the deadline passes."""
    got = b""
    deadline = time.monotonic() + WAIT_S
    while not done(got) and time.monotonic() < deadline:
        got += ep.read(0.02)
    return got


def wait_until(condition: Callable[[], bool], step: Callable[[], object] | None = None) -> bool:
    """Poll `condition` with a deadline; `step` is what moves things on (by default a short wait)."""
    step = step or (lambda: threading.Event().wait(0.01))
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        step()
    return True


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_tcp_bytes_cross_both_ways_once_a_host_connects(endpoint):
    url = endpoint.open("tcp")
    assert not endpoint.connected
    with connect(url) as host:
        assert wait_until(lambda: endpoint.connected, lambda: endpoint.read(0.02))
        host.sendall(b"\x02ping")
        assert read_until(endpoint, lambda got: len(got) >= 5) == b"\x02ping"
        endpoint.write(b"pong\x03")
        assert recv_exactly(host, 5) == b"pong\x03"
    assert endpoint.connections == 1


def test_tcp_endpoint_serves_the_next_host_after_a_disconnect(endpoint):
    url = endpoint.open("tcp")
    with connect(url) as first:
        first.sendall(b"one")
        assert read_until(endpoint, lambda got: got == b"one") == b"one"
    assert wait_until(lambda: not endpoint.connected, lambda: endpoint.read(0.02))
    with connect(url) as second:
        second.sendall(b"two")
        assert read_until(endpoint, lambda got: got == b"two") == b"two"
        endpoint.write(b"back")
        assert recv_exactly(second, 4) == b"back"
    assert endpoint.connections == 2


def test_a_second_host_waits_while_the_first_is_served():
    ep = SerialEndpoint()
    url = ep.open("tcp")
    try:
        with connect(url) as first, connect(url) as second:
            assert wait_until(lambda: ep.connected, lambda: ep.read(0.02))
            second.sendall(b"late")
            first.sendall(b"early")
            assert read_until(ep, lambda got: len(got) >= 5) == b"early"
            assert ep.connections == 1
    finally:
        ep.close()


def test_with_takeover_a_new_host_replaces_the_one_being_served():
    ep = SerialEndpoint(takeover=True)
    url = ep.open("tcp")
    try:
        with connect(url) as first:
            assert wait_until(lambda: ep.connections == 1, lambda: ep.read(0.02))
            with connect(url) as second:
                assert wait_until(lambda: ep.connections == 2, lambda: ep.read(0.02))
                assert first.recv(16) == b""  # the old host was cut off
                second.sendall(b"new")
                assert read_until(ep, lambda got: got == b"new") == b"new"
    finally:
        ep.close()


def test_hang_up_gives_the_host_eof_and_the_line_stays_open_for_the_next(endpoint):
    url = endpoint.open("tcp")
    with connect(url) as host:
        assert wait_until(lambda: endpoint.connected, lambda: endpoint.read(0.02))
        endpoint.hang_up()
        assert host.recv(16) == b""
    assert wait_until(lambda: not endpoint.connected, lambda: endpoint.read(0.02))
    with connect(url) as again:
        again.sendall(b"x")
        assert read_until(endpoint, lambda got: got == b"x") == b"x"


def test_write_with_no_host_connected_is_dropped_quietly(endpoint):
    endpoint.open("tcp")
    endpoint.write(b"nobody listens")
    assert not endpoint.connected
    assert endpoint.read(0.01) == b""


def test_pty_bytes_cross_both_ways_through_pyserial(endpoint):
    url = endpoint.open("pty")
    assert endpoint.connected
    port = serial.serial_for_url(url, baudrate=9600, timeout=WAIT_S)
    try:
        port.write(b"\x00\x0d\x0a\x11raw")
        assert read_until(endpoint, lambda got: len(got) >= 7) == b"\x00\x0d\x0a\x11raw"
        endpoint.write(b"\x13\x0a\x00back")
        assert port.read(7) == b"\x13\x0a\x00back"
    finally:
        port.close()


def test_restore_pty_settings_puts_back_the_line_as_it_was_opened(endpoint):
    url = endpoint.open("pty")
    probe = os.open(url, os.O_RDWR | os.O_NOCTTY)
    try:
        as_opened = termios.tcgetattr(probe)
    finally:
        os.close(probe)
    port = serial.serial_for_url(url, baudrate=19200, parity=serial.PARITY_EVEN, timeout=WAIT_S)
    try:
        assert termios.tcgetattr(port.fd) != as_opened  # the host configured the line
        endpoint.restore_pty_settings()
        assert termios.tcgetattr(port.fd) == as_opened
    finally:
        port.close()


def test_close_frees_the_tcp_port_and_stops_the_serve_loop():
    ep = SerialEndpoint()
    turns = threading.Event()

    def serve() -> None:
        while ep.serving():
            ep.read(0.01)
            turns.set()

    url = ep.open("tcp", serve=serve)
    assert turns.wait(WAIT_S)
    ep.close()
    assert not ep.serving()
    assert ep.url is None
    with pytest.raises(ConnectionRefusedError):
        connect(url).close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", tcp_port(url)))  # raises EADDRINUSE if close() leaked it


def test_close_frees_the_pty_and_the_endpoint_opens_again():
    ep = SerialEndpoint()
    path = ep.open("pty")
    assert os.path.exists(path)
    ep.close()
    assert not ep.connected
    assert wait_until(lambda: not os.path.exists(path))
    with pytest.raises(RuntimeError, match="not open"):
        ep.read(0.01)
    url = ep.open("tcp")
    try:
        assert url.startswith("socket://127.0.0.1:")
    finally:
        ep.close()


def test_open_twice_or_with_an_unknown_transport_is_refused(endpoint):
    with pytest.raises(ValueError, match="'tcp' or 'pty', got 'usb'"):
        endpoint.open("usb")
    url = endpoint.open("tcp")
    with pytest.raises(RuntimeError, match="already open at " + url):
        endpoint.open("tcp")


def test_unplug_drops_the_host_and_refuses_new_ones_until_replug_at_the_same_url(endpoint):
    url = endpoint.open("tcp")
    with connect(url) as host:
        assert wait_until(lambda: endpoint.connected, lambda: endpoint.read(0.02))
        endpoint.unplug()
        assert host.recv(16) == b""
    assert not endpoint.plugged and not endpoint.connected
    assert endpoint.read(0.02) == b""           # a protocol loop keeps running while unplugged
    with pytest.raises(ConnectionRefusedError):
        connect(url).close()
    endpoint.replug()
    assert endpoint.plugged and endpoint.url == url
    with connect(url) as again:
        again.sendall(b"back")
        assert read_until(endpoint, lambda got: got == b"back") == b"back"


def test_unplug_on_a_pty_without_a_link_is_refused(endpoint):
    endpoint.open("pty")
    with pytest.raises(RuntimeError, match="link"):
        endpoint.unplug()


def test_unplugged_pty_fails_the_host_and_comes_back_under_the_same_link(endpoint, tmp_path):
    link = tmp_path / "ttyUSB-printer"
    url = endpoint.open("pty", link=link)
    assert url == str(link) and link.is_symlink()
    host = serial.serial_for_url(url, timeout=0.2)
    try:
        host.write(b"a")
        assert read_until(endpoint, lambda got: got == b"a") == b"a"
        endpoint.unplug()
        assert not link.exists() and not endpoint.plugged
        assert endpoint.read(0.02) == b""
        with pytest.raises(serial.SerialException):
            host.write(b"lost")
            host.read(1)
    finally:
        host.close()
    with pytest.raises(serial.SerialException):
        serial.serial_for_url(url, timeout=0.2)
    endpoint.replug()
    assert endpoint.plugged and link.is_symlink()
    with serial.serial_for_url(url, timeout=0.2) as again:
        again.write(b"back")
        assert read_until(endpoint, lambda got: got == b"back") == b"back"
        endpoint.write(b"ok")
        assert again.read(2) == b"ok"


def test_close_removes_the_pty_link(endpoint, tmp_path):
    link = tmp_path / "ttyACM-scanner"
    endpoint.open("pty", link=link)
    endpoint.close()
    assert not link.exists() and not link.is_symlink()
