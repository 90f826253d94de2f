"""A COM-mode barcode scanner's side of the wire: it sends each scanned code as
a line of text, over a pty or a loopback TCP socket (a pyserial URL for the
host). It also records what the host sends (trigger commands) for tests.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import threading
import tty
from typing import Any

from drivers.serial_scanner.frames import encode_line

__all__ = ["SerialScannerSimulator"]


class SerialScannerSimulator:
    """Control surface (thread-safe): scan(text) (or present(text) as for the camera),
    send_raw(data), hang_up(), state()."""

    def __init__(self, terminator: str = "crlf", encoding: str = "utf-8") -> None:
        encode_line("", terminator, encoding)  # refuse an unknown terminator now, not at first scan
        self.terminator = terminator
        self.encoding = encoding
        self._outbox: "queue.Queue[bytes]" = queue.Queue()
        self._received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._url = ""
        self._sent_lines = 0
        self._connections = 0

    @property
    def url(self) -> str:
        return self._url

    # ------------------------------------------------------------------ control surface

    def scan(self, text: str) -> None:
        """The scanner reads a code and sends it, terminated."""
        self._outbox.put(encode_line(text, self.terminator, self.encoding))
        with self._lock:
            self._sent_lines += 1

    def present(self, payload: str, distortion: str = "none") -> None:
        """Same control as the camera simulator's, so simulate mode can swap
        scanners: a hand scanner just reads the code; `distortion` does not apply."""
        self.scan(payload)

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are: noise on the line, a wrong suffix, half a code."""
        self._outbox.put(bytes(data))

    def hang_up(self) -> None:
        """Drop the TCP connection (like pulling the cable of a serial-over-IP adapter)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"url": self._url, "terminator": self.terminator, "sent_lines": self._sent_lines,
                    "pending": self._outbox.qsize(), "received": self._received.hex(),
                    "connections": self._connections}

    # ------------------------------------------------------------------ transport

    def start(self, transport: str = "tcp", *, port: int = 0) -> str:
        """Start serving; returns the pyserial URL the host should open."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        if transport == "tcp":
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", port))
            self._listener.listen(1)
            self._url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
            target = self._serve_tcp
        elif transport == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            self._url = os.ttyname(self._slave)
            target = self._serve_pty
        else:
            raise ValueError(f"transport must be 'tcp' or 'pty', got {transport!r}")
        self._stop.clear()
        self._thread = threading.Thread(target=target, name=f"scanner-sim {self._url}", daemon=True)
        self._thread.start()
        return self._url

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for sock in (self._conn, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self._conn = self._listener = None
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def __enter__(self) -> "SerialScannerSimulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve_tcp(self) -> None:
        assert self._listener is not None
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            # Set the connection before counting it: a caller that saw the count can hang it up.
            self._conn = conn
            with self._lock:
                self._connections += 1
            try:
                self._pump(conn.fileno(), lambda: conn.recv(4096), conn.sendall, eof_ends=True)
            except OSError:
                pass
            finally:
                self._conn = None
                conn.close()

    def _serve_pty(self) -> None:
        master = self._master
        assert master is not None
        with self._lock:
            self._connections += 1
        try:
            self._pump(master, lambda: os.read(master, 4096), lambda data: os.write(master, data), eof_ends=False)
        except OSError:
            pass

    def _pump(self, fd: int, read, write, *, eof_ends: bool) -> None:
        while not self._stop.is_set():
            try:
                data = self._outbox.get_nowait()
            except queue.Empty:
                data = None
            if data:
                write(data)
            ready, _, _ = select.select([fd], [], [], 0.01)
            if not ready:
                continue
            try:
                incoming = read()
            except OSError:
                incoming = b""
            if incoming:
                with self._lock:
                    self._received += incoming
            elif eof_ends:
                return
            else:
                # pty: nobody has the slave open right now; wait for the host to reopen it.
                self._stop.wait(0.01)
