"""A COM-mode barcode scanner's side of the wire: it sends each scanned code as
a line of text, over a pty or a loopback TCP socket (a pyserial URL for the
host). It also records what the host sends (trigger commands) for tests.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from drivers.serial_scanner.frames import encode_line
from simulators.serial_endpoint import SerialEndpoint

__all__ = ["SerialScannerSimulator"]


class SerialScannerSimulator:
    """Control surface (thread-safe): scan(text) (or present(text) as for the camera),
    take_away(), send_raw(data), hang_up(), unplug(), replug(), state()."""

    def __init__(self, terminator: str = "crlf", encoding: str = "utf-8") -> None:
        encode_line("", terminator, encoding)  # refuse an unknown terminator now, not at first scan
        self.terminator = terminator
        self.encoding = encoding
        self._outbox: "queue.Queue[bytes]" = queue.Queue()
        self._received = bytearray()
        self._lock = threading.Lock()
        self._link = SerialEndpoint()
        self._url = ""
        self._sent_lines = 0

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

    def take_away(self) -> None:
        """The customer takes the code away: codes scanned but not yet sent (no host was
        connected) are dropped. A hand scanner sends a code once, so nothing stays "held"."""
        while True:
            try:
                self._outbox.get_nowait()
            except queue.Empty:
                return

    def unplug(self) -> None:
        """Pull the cable: the host's connection drops and reconnects are refused until replug()."""
        self._link.unplug()

    def replug(self) -> None:
        """Cable back in, at the same URL."""
        self._link.replug()

    def hang_up(self) -> None:
        """Drop the TCP connection (like pulling the cable of a serial-over-IP adapter)."""
        self._link.hang_up()

    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"url": self._url, "terminator": self.terminator, "sent_lines": self._sent_lines,
                    "pending": self._outbox.qsize(), "received": self._received.hex(),
                    "connections": self._link.connections, "plugged": self._link.plugged}

    # ------------------------------------------------------------------ transport

    def start(self, transport: str = "tcp", *, port: int = 0, link: str | None = None) -> str:
        """Start serving; returns the pyserial URL the host should open (on a pty, the
        symlink `link` if given, which unplug() needs)."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        self._url = self._link.open(transport, port, serve=self._pump, name="scanner-sim", link=link)
        return self._url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self) -> "SerialScannerSimulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _pump(self) -> None:
        link = self._link
        while link.serving():
            # Codes scanned while no host is connected wait for the next one.
            if link.connected:
                try:
                    link.write(self._outbox.get_nowait())
                except queue.Empty:
                    pass
            incoming = link.read(0.01)
            if incoming:
                with self._lock:
                    self._received += incoming
