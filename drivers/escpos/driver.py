"""EscposPrinter: hal.ReceiptPrinter for ESC/POS printers on a pyserial URL or usb://VID:PID.

Moves the bytes that frames.py makes and reads paper and online state with
DLE EOT. python-escpos stays behind this class: its status calls fail open
(an empty read counts as paper present), so status is read here instead.
"""

from __future__ import annotations

import logging
import string
import threading
from typing import Literal, Protocol

import serial

from drivers.escpos import frames
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError
from hal.events import EventSink, PrinterStatusChanged
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
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"writing to printer port {self._port} failed: {exc}") from exc

    def read_byte(self) -> bytes:
        try:
            return self._serial.read(1)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"reading from printer port {self._port} failed: {exc}") from exc

    def discard_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
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
    once the printer has answered on this connection."""

    def __init__(self, port: str, *, name: str = "printer", width_mm: int = 80, baudrate: int = 19200,
                 status_timeout: float = 0.5, native_qr: bool = False, link: LinkKind = "auto",
                 write_timeout: float = 10.0, poll_interval: float | None = None) -> None:
        frames.columns_for(width_mm)
        if link not in _LINKS:
            raise ConfigurationError(f"printer {name}: link must be one of {', '.join(_LINKS)}, got {link!r}")
        if not status_timeout > 0:
            raise ConfigurationError(f"printer {name}: status_timeout must be positive seconds, got {status_timeout!r}")
        if port.lower().startswith("usb://"):
            parse_usb_url(port)  # a malformed URL is a configuration error now, not at open
        if poll_interval is not None and poll_interval <= 0:
            raise ConfigurationError(f"printer {name}: poll_interval must be positive seconds, got {poll_interval!r}")
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
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # --- hal.Device -------------------------------------------------------

    def open(self, sink: EventSink) -> None:
        with self._lock:
            if self._transport is not None:
                return
            if self.port.lower().startswith("usb://"):
                self._transport = _UsbLink(self.port, self._status_timeout)
            else:
                self._transport = _SerialLink(self.port, self._baudrate, self._status_timeout,
                                              self._write_timeout)
            self._sink = sink
            self._answered = False
            self._reported = None
            self.status()
        if self._poll_interval is not None:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll, name=f"{self.name}-status", daemon=True)
            self._poller.start()

    def close(self) -> None:
        self._stop.set()
        poller, self._poller = self._poller, None
        if poller is not None and poller is not threading.current_thread():
            poller.join()
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
            transport.write(payload)
            if self.link != "one-way":
                # The roll may have ended during this receipt: let the kiosk know now.
                self._read_status()

    # --- internals --------------------------------------------------------

    def _require_open(self) -> _Link:
        if self._transport is None:
            raise PortError(f"printer {self.name} on {self.port} is not open")
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
        key = (status.state, status.paper)
        if key == self._reported or self._sink is None:
            return
        self._reported = key
        self._sink(PrinterStatusChanged(device=self.name, state=status.state, paper=status.paper))

    def _poll(self) -> None:
        assert self._poll_interval is not None
        while not self._stop.wait(self._poll_interval):
            try:
                self.status()
            except Exception:
                # The poller must outlive one bad read; the next one reports the state.
                log.exception("printer %s: status poll failed", self.name)
