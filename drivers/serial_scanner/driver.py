"""A dedicated barcode scanner in COM mode, over a pyserial URL: a reader
thread turns its lines into CodeScanned events while scanning is armed. A
port that goes away is reported offline and reopened with backoff.
"""

from __future__ import annotations

import logging
import termios
import threading
import time
from typing import Any, Callable

import serial

from hal.device import DeviceInfo
from hal.errors import ConfigurationError, PortError
from hal.events import CodeScanned, DeviceStatusChanged, Event, EventSink, emit_safely
from hal.scanner import CodeScanner
from hal.status import DeviceState
from drivers.serial_scanner.frames import DEFAULT_MAX_LENGTH, TERMINATORS, LineAssembler, ScannerFrameError

log = logging.getLogger(__name__)


def _command_bytes(name: str, value: str | bytes | None) -> bytes | None:
    """Vendor trigger commands come from configuration as hex ("16540d")."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ConfigurationError(
            f"serial scanner {name} must be hex bytes such as \"16540d\", got {value!r}"
        ) from None


class SerialScanner(CodeScanner):
    """A scanner that sends each code as a line of text.

    While scanning is not armed the port is still drained, so a code read
    before the kiosk asked for one never surfaces later as a stale scan.
    """

    def __init__(
        self,
        port: str,
        *,
        name: str = "scanner",
        baudrate: int = 9600,
        terminator: str = "any",
        max_length: int = DEFAULT_MAX_LENGTH,
        encoding: str = "utf-8",
        dedupe_seconds: float = 1.0,
        arm_command: str | bytes | None = None,
        disarm_command: str | bytes | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        serial_options: dict[str, Any] | None = None,
    ) -> None:
        if not port:
            raise ConfigurationError("serial scanner port is empty: give a pyserial URL such as /dev/ttyACM0")
        if terminator not in TERMINATORS:
            raise ConfigurationError(
                f"serial scanner terminator must be one of {', '.join(TERMINATORS)}, got {terminator!r}"
            )
        if dedupe_seconds < 0:
            raise ConfigurationError(f"serial scanner dedupe_seconds must be >= 0, got {dedupe_seconds}")
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.dedupe_seconds = dedupe_seconds
        try:
            self._assembler = LineAssembler(terminator, max_length, encoding)
        except (ValueError, LookupError) as exc:
            raise ConfigurationError(f"serial scanner {name}: {exc}") from exc
        self._arm = _command_bytes("arm_command", arm_command)
        self._disarm = _command_bytes("disarm_command", disarm_command)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._serial_options = dict(serial_options or {})
        self._sink: EventSink | None = None
        self._serial: serial.SerialBase | None = None
        self._serial_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._armed = threading.Event()
        self._state = DeviceState.OFFLINE
        self._detail = "not opened"
        self._last: tuple[str, float] | None = None
        self._stats = {"lines": 0, "codes": 0, "ignored_unarmed": 0, "bad_lines": 0, "suppressed": 0,
                       "port_drops": 0}

    # ------------------------------------------------------------------ hal.Device

    def open(self, sink: EventSink) -> None:
        """Open the port and start the reader thread. Raises PortError if the port cannot
        open; the thread then keeps reopening it with backoff and reports ONLINE when it
        does (a scanner plugged in after the kiosk started), until close()."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._sink = sink
        self._set_state(DeviceState.STARTING, f"opening {self.port}")
        failure: PortError | None = None
        try:
            self._serial = self._open_port()
        except PortError as exc:
            failure = exc
            self._set_state(DeviceState.OFFLINE, f"{exc}; retrying in {self._retry_initial_s:g} s")
        else:
            self._set_state(DeviceState.ONLINE, f"{self.port} at {self.baudrate} baud")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=f"serial-scanner-{self.name}",
                                        daemon=True)
        self._thread.start()
        if failure is not None:
            raise failure

    def close(self) -> None:
        self._armed.clear()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._close_port()
        if self._state is not DeviceState.OFFLINE:
            self._set_state(DeviceState.OFFLINE, "closed")

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def detail(self) -> str:
        return self._detail

    def info(self) -> DeviceInfo:
        return DeviceInfo(model="serial barcode scanner",
                          extra={"port": self.port, "baudrate": str(self.baudrate),
                                 "terminator": self._assembler.terminator})

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    # ------------------------------------------------------------------ hal.CodeScanner

    def start_scanning(self) -> None:
        self._last = None
        self._armed.set()
        self._write(self._arm)

    def stop_scanning(self) -> None:
        self._armed.clear()
        self._write(self._disarm)

    @property
    def scanning(self) -> bool:
        return self._armed.is_set()

    # ------------------------------------------------------------------ port

    def _open_port(self) -> serial.SerialBase:
        try:
            return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.1, **self._serial_options)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"serial scanner port {self.port!r} did not open: {exc}") from exc

    def _close_port(self) -> None:
        with self._serial_lock:
            port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _write(self, command: bytes | None) -> None:
        if not command:
            return
        with self._serial_lock:
            port = self._serial
            if port is None:
                return
            try:
                port.write(command)
            except (serial.SerialException, OSError) as exc:
                log.warning("serial scanner %s: sending a command to %s failed: %s", self.name, self.port, exc)

    def _run(self, stop: threading.Event) -> None:
        backoff = self._retry_initial_s
        if self._serial is None:
            stop.wait(backoff)          # open() just failed and said so; wait before the next try
            backoff = min(backoff * 2, self._retry_max_s)
        while not stop.is_set():
            port = self._serial
            if port is None:
                try:
                    port = self._open_port()
                except PortError as exc:
                    self._set_state(DeviceState.OFFLINE, f"{exc}; retrying in {backoff:g} s")
                    stop.wait(backoff)
                    backoff = min(backoff * 2, self._retry_max_s)
                    continue
                with self._serial_lock:
                    self._serial = port
                self._assembler.reset()
                backoff = self._retry_initial_s
                self._set_state(DeviceState.ONLINE, f"{self.port} reopened")
                if self._armed.is_set():
                    self._write(self._arm)
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError, termios.error) as exc:
                # pyserial's socket:// and tty backends raise different things when the peer vanishes.
                if stop.is_set():
                    break
                self._stats["port_drops"] += 1
                self._close_port()
                self._set_state(DeviceState.OFFLINE, f"serial scanner port {self.port!r} failed: {exc}")
                stop.wait(backoff)
                continue
            if data:
                self._handle(self._assembler.feed(data))
        self._close_port()

    def _handle(self, items: list[str | ScannerFrameError]) -> None:
        for item in items:
            if isinstance(item, ScannerFrameError):
                self._stats["bad_lines"] += 1
                log.warning("serial scanner %s on %s: %s", self.name, self.port, item)
                continue
            self._stats["lines"] += 1
            if not self._armed.is_set():
                self._stats["ignored_unarmed"] += 1
                continue
            text = item.strip()
            if not text:
                continue
            now = self._clock()
            last, self._last = self._last, (text, now)
            if last is not None and last[0] == text and now - last[1] < self.dedupe_seconds:
                self._stats["suppressed"] += 1
                continue
            self._stats["codes"] += 1
            self._emit(CodeScanned(device=self.name, text=text, decoder="serial"))

    # ------------------------------------------------------------------ events

    def _set_state(self, state: DeviceState, detail: str) -> None:
        changed = state is not self._state
        self._state, self._detail = state, detail
        if changed:
            log.info("serial scanner %s: %s (%s)", self.name, state.value, detail)
            self._emit(DeviceStatusChanged(device=self.name, state=state, detail=detail))

    def _emit(self, event: Event) -> None:
        emit_safely(self._sink, event, f"serial scanner {self.name}")
