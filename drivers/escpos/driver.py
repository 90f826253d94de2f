"""EscposPrinter: hal.ReceiptPrinter for ESC/POS printers on a pyserial URL or usb://VID:PID.

Moves the bytes that frames.py makes and reads paper and online state with
DLE EOT. python-escpos stays behind this class: its status calls fail open
(an empty read counts as paper present), so status is read here instead.
A port that fails (cable pulled, printer power-cycled) is closed, reported
offline and reopened with backoff by the driver's own thread.
"""

from __future__ import annotations

import logging
import string
import termios
import threading
from typing import Literal, Protocol

import serial

from drivers.escpos import frames
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError
from hal.events import DeviceStatusChanged, EventSink, PrinterStatusChanged, emit_safely
from hal.printer import PrinterStatus, Receipt, ReceiptPrinter
from hal.status import DeviceState, PaperState

log = logging.getLogger(__name__)

LinkKind = Literal["auto", "two-way", "one-way"]
_WRITE_CHUNK = 1024
_LINKS = ("auto", "two-way", "one-way")


class PaperOutError(DeviceError):
    """The printer says its paper is out; nothing was printed."""


class PrinterOfflineError(DeviceError):
    """The printer says it is offline (cover open, error), or stopped answering."""


class _Link(Protocol):
    def write(self, data: bytes) -> None: ...
    def read_byte(self) -> bytes: ...
    def discard_input(self) -> None: ...
    def close(self) -> None: ...


class _SerialLink:
    """Any pyserial URL: a tty, a pty, socket://host:9100 for network printers."""

    def __init__(self, port: str, baudrate: int, timeout: float, write_timeout: float) -> None:
        self._port = port
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout,
                                                 write_timeout=write_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open printer port {port}: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            # In pieces, so write_timeout catches a printer that stopped taking
            # data without cutting short a long receipt on a slow line.
            for start in range(0, len(data), _WRITE_CHUNK):
                self._serial.write(data[start:start + _WRITE_CHUNK])
            self._serial.flush()
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"printer on {self._port} did not take the data in time"
                                " (flow control held, printer busy or off)") from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PortError(f"writing to printer port {self._port} failed: {exc}") from exc

    def read_byte(self) -> bytes:
        try:
            return self._serial.read(1)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PortError(f"reading from printer port {self._port} failed: {exc}") from exc

    def discard_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error: the tty vanished (USB adapter unplugged) under pyserial's tcflush.
            raise PortError(f"printer port {self._port} failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            log.debug("closing printer port %s failed", self._port, exc_info=True)


def parse_usb_url(port: str) -> tuple[int, int]:
    """`usb://04b8:0202` -> (0x04b8, 0x0202)."""
    prefix = "usb://"
    body = port[len(prefix):] if port.lower().startswith(prefix) else None
    parts = body.split(":") if body is not None else []
    try:
        if len(parts) != 2 or not all(1 <= len(p) <= 4 and all(c in string.hexdigits for c in p) for p in parts):
            raise ValueError
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        raise ConfigurationError(
            f"printer port {port!r}: expected usb://VID:PID with hexadecimal ids, e.g. usb://04b8:0202") from None


class _UsbLink:
    """USB printer class devices through python-escpos's Usb transport (needs pyusb)."""

    def __init__(self, port: str, timeout: float) -> None:
        vendor, product = parse_usb_url(port)
        self._port = port
        from escpos.printer import usb as escpos_usb

        if not escpos_usb.is_usable():
            raise PortError(f"printer port {port}: USB printers need the pyusb package"
                            " (Debian: python3-usb), which is not installed; use the serial or network port")
        try:
            self._printer = escpos_usb.Usb(vendor, product, timeout=int(timeout * 1000))
            self._printer.open()
        except Exception as exc:  # pyusb and escpos raise several unrelated types here
            raise PortError(f"cannot open USB printer {port}: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._printer._raw(data)
        except Exception as exc:
            raise PortError(f"writing to USB printer {self._port} failed: {exc}") from exc

    def read_byte(self) -> bytes:
        try:
            return bytes(self._printer._read())[-1:]
        except Exception:
            # A USB read timeout is how a silent printer shows; the caller treats it as no answer.
            return b""

    def discard_input(self) -> None:
        """USB status answers are read per request; there is no stream to drain."""

    def close(self) -> None:
        try:
            self._printer.close()
        except Exception:
            log.debug("closing USB printer %s failed", self._port, exc_info=True)


class EscposPrinter(ReceiptPrinter):
    """A receipt printer speaking ESC/POS.

    `link`: "two-way" expects DLE EOT answers (silence = offline); "one-way" never
    asks (paper always unknown); "auto" asks, and treats silence as offline only
    once the printer has answered on this connection.

    When the port fails (at open or later) the driver reports OFFLINE and a
    thread of its own reopens the port, waiting `retry_initial_s` doubling up
    to `retry_max_s` between tries, until the printer answers again (ONLINE)
    or close() is called. open() still raises when the port does not open,
    and close() ends the retries in every case."""

    def __init__(self, port: str, *, name: str = "printer", width_mm: int = 80, baudrate: int = 19200,
                 status_timeout: float = 0.5, native_qr: bool = False, link: LinkKind = "auto",
                 write_timeout: float = 10.0, poll_interval: float | None = None,
                 retry_initial_s: float = 0.5, retry_max_s: float = 10.0) -> None:
        frames.columns_for(width_mm)
        if link not in _LINKS:
            raise ConfigurationError(f"printer {name}: link must be one of {', '.join(_LINKS)}, got {link!r}")
        if not status_timeout > 0:
            raise ConfigurationError(f"printer {name}: status_timeout must be positive seconds, got {status_timeout!r}")
        if port.lower().startswith("usb://"):
            parse_usb_url(port)  # a malformed URL is a configuration error now, not at open
        if poll_interval is not None and poll_interval <= 0:
            raise ConfigurationError(f"printer {name}: poll_interval must be positive seconds, got {poll_interval!r}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ConfigurationError(f"printer {name}: retry_initial_s and retry_max_s must be positive seconds with"
                                     f" retry_initial_s <= retry_max_s, got {retry_initial_s!r} and {retry_max_s!r}")
        self.name = name
        self.port = port
        self.width_mm = width_mm
        self.link = link
        self._baudrate = baudrate
        self._status_timeout = status_timeout
        self._write_timeout = write_timeout
        self._native_qr = native_qr
        self._poll_interval = poll_interval
        self._lock = threading.RLock()
        self._transport: _Link | None = None
        self._sink: EventSink | None = None
        self._answered = False
        self._last = PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN, f"port {port} not open")
        self._reported: tuple[DeviceState, PaperState] | None = None
        self._reported_state: DeviceState | None = None
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._reconnector: threading.Thread | None = None
        self.reconnects = 0          # ports reopened after a failure, for the service view and tests

    # --- hal.Device -------------------------------------------------------

    def open(self, sink: EventSink) -> None:
        with self._lock:
            if self._transport is not None:
                return
            self._sink = sink
            self._reported = None
            self._reported_state = None
            self._stop.clear()
            try:
                self._transport = self._open_link()
            except PortError as exc:
                # Keep trying in the background: a printer switched on after the kiosk comes online by itself.
                self._publish(PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN, str(exc)))
                self._start_reconnecting()
                raise
            self._answered = False
            self.status()
        if self._poll_interval is not None:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll, name=f"{self.name}-status", daemon=True)
            self._poller.start()

    def close(self) -> None:
        self._stop.set()
        poller, self._poller = self._poller, None
        reconnector, self._reconnector = self._reconnector, None
        for thread in (poller, reconnector):
            if thread is not None and thread is not threading.current_thread():
                thread.join()
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            self._last = PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN, f"port {self.port} closed")

    @property
    def state(self) -> DeviceState:
        return self._last.state

    # --- hal.ReceiptPrinter ----------------------------------------------

    def status(self) -> PrinterStatus:
        with self._lock:
            status, _ = self._read_status()
            return status

    def print_receipt(self, receipt: Receipt) -> None:
        payload = frames.encode_receipt(receipt, self.width_mm, native_qr=self._native_qr)
        with self._lock:
            transport = self._require_open()
            if self.link != "one-way":
                status, silent = self._read_status()
                where = f"printer {self.name} on {self.port}"
                if status.paper is PaperState.OUT:
                    raise PaperOutError(f"{where}: paper out, receipt not printed; load a new roll")
                if silent and status.state is DeviceState.OFFLINE:
                    raise DeviceTimeout(f"{where} does not answer DLE EOT status requests;"
                                        " check power, cable and the port URL (or configure link='one-way')")
                if status.state is DeviceState.OFFLINE:
                    raise PrinterOfflineError(f"{where}: {status.detail}; receipt not printed")
                if status.state is DeviceState.HARDWARE_ERROR:
                    raise DeviceError(f"{where}: {status.detail}; receipt not printed")
            try:
                transport.write(payload)
            except PortError as exc:
                self._link_lost(exc)
                raise
            if self.link != "one-way":
                # The roll may have ended during this receipt: let the kiosk know now.
                self._read_status()

    # --- internals --------------------------------------------------------

    def _require_open(self) -> _Link:
        if self._transport is None:
            # Say why: after a lost link the last status holds the port's error and the retry plan.
            why = "" if self._sink is None else f" ({self._last.detail})"
            raise PortError(f"printer {self.name} on {self.port} is not open{why}")
        return self._transport

    def _ask(self, transport: _Link, request: bytes) -> bytes | None:
        # A late answer to an earlier request must not be read as this one's.
        transport.discard_input()
        transport.write(request)
        return transport.read_byte() or None

    def _read_status(self) -> tuple[PrinterStatus, bool]:
        """Ask the printer; returns the status and whether it stayed silent."""
        if self._transport is None:
            return PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN, f"port {self.port} not open"), True
        silent = True
        if self.link == "one-way":
            status = PrinterStatus(DeviceState.ONLINE, PaperState.UNKNOWN,
                                   "one-way link: the printer cannot report paper or errors")
        else:
            try:
                printer = self._ask(self._transport, frames.REQUEST_PRINTER_STATUS)
                paper = self._ask(self._transport, frames.REQUEST_PAPER_STATUS)
            except PortError as exc:
                # The port itself failed: this connection is dead; reopen it in the background.
                status = PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN,
                                       f"{exc}; reopening the port")
                self._link_lost(exc)
            except DeviceError as exc:
                status = PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN, str(exc))
            else:
                silent = printer is None and paper is None
                self._answered = self._answered or not silent
                learned_two_way = self.link == "two-way" or self._answered
                status = frames.interpret_status(
                    printer, paper, where=f"printer {self.name} on {self.port}",
                    silent_state=DeviceState.OFFLINE if learned_two_way else DeviceState.ONLINE)
                if silent and not learned_two_way:
                    status = PrinterStatus(status.state, status.paper,
                                           status.detail + " (one-way link, or printer switched off)")
        self._publish(status)
        return status, silent

    def _publish(self, status: PrinterStatus) -> None:
        self._last = status
        if self._sink is None:
            return
        key = (status.state, status.paper)
        if key != self._reported:
            self._reported = key
            emit_safely(self._sink, PrinterStatusChanged(device=self.name, state=status.state, paper=status.paper),
                        f"printer {self.name}")
        # After the paper event, so the kiosk keeps this event's words as the printer's detail.
        if status.state is not self._reported_state:
            self._reported_state = status.state
            emit_safely(self._sink, DeviceStatusChanged(device=self.name, state=status.state, detail=status.detail),
                        f"printer {self.name}")

    def _open_link(self) -> _Link:
        if self.port.lower().startswith("usb://"):
            return _UsbLink(self.port, self._status_timeout)
        return _SerialLink(self.port, self._baudrate, self._status_timeout, self._write_timeout)

    def _link_lost(self, exc: Exception) -> None:
        """Called under the lock when the port failed: close it and reopen it in the background."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        log.warning("printer %s: port %s failed (%s); reopening it in the background", self.name, self.port, exc)
        self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        if self._stop.is_set():
            return
        if self._reconnector is not None and self._reconnector.is_alive():
            return
        self._reconnector = threading.Thread(target=self._reconnect, name=f"{self.name}-reconnect", daemon=True)
        self._reconnector.start()

    def _reconnect(self) -> None:
        """Reopen the port with bounded backoff until the printer answers, or close() is called."""
        backoff = self._retry_initial_s
        while not self._stop.wait(backoff):
            backoff = min(backoff * 2, self._retry_max_s)
            try:
                transport = self._open_link()
            except PortError as exc:
                with self._lock:
                    self._publish(PrinterStatus(DeviceState.OFFLINE, PaperState.UNKNOWN,
                                                f"{exc}; retrying in {backoff:g} s"))
                continue
            with self._lock:
                if self._stop.is_set() or self._transport is not None:
                    transport.close()
                    return
                self._transport = transport
                self._answered = False
                status, silent = self._read_status()
                if self._transport is None:
                    continue            # the new connection failed at once: keep trying
                self.reconnects += 1
                log.info("printer %s: port %s reopened; printer %s", self.name, self.port, status.state.value)
                return

    def _poll(self) -> None:
        assert self._poll_interval is not None
        while not self._stop.wait(self._poll_interval):
            try:
                self.status()
            except Exception:
                # The poller must outlive one bad read; the next one reports the state.
                log.exception("printer %s: status poll failed", self.name)
