"""Host side of a Puloon LCDM-2000 or LCDM-4000 cash dispenser over any pyserial URL
(9600 8N1; parity configurable, the 4000's is disputed).

One exchange at a time: command, ACK, response, ACK (and the 4000's closing EOT). A
dispense is never sent twice: a missing ACK is answered by reading on for the response,
a missing response by LAST STATUS on the 4000 and by an "unknown" outcome on the 2000.
The driver reports what exited and what was rejected, per cassette; it keeps no totals.
There is no poll thread: a dispenser speaks only when asked, so `state` is what the last
exchange said, and status() asks again. A dispense runs on its own short-lived thread.
"""

from __future__ import annotations

import collections
import inspect
import logging
import termios
import threading
import time
from typing import Mapping, Sequence

import serial

from drivers.lcdm.frames import (
    ACK,
    EOT,
    LCDM2000,
    LCDM4000,
    MODELS,
    NAK,
    BccError,
    Cmd2000,
    Cmd4000,
    DeviceCode,
    ErrorKind,
    Frame,
    FrameDecoder,
    LcdmProtocolError,
    MessageError,
    Model,
    OperationResult,
    StatusReport,
    command,
    dispense_2000,
    dispense_4000,
    parse_dispense_2000,
    parse_operation_4000,
    parse_purge_2000,
    parse_rom_2000,
    parse_status_2000,
    parse_status_4000,
    response_length_4000,
)
from hal.device import DeviceInfo
from hal.dispenser import Cassette, CashDispenser, CassetteState, DispenserStatus, LastOperation
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import CassetteStatusChanged, DeviceStatusChanged, DispenseCompleted, EventSink, emit_safely
from hal.money import Fiat
from hal.status import Completion, DeviceState, UnitStatus

log = logging.getLogger(__name__)

MAX_SENDS = 3                 # a frame NAKed (or, read-only, unanswered) this often is given up
FRAME_GAP_S = 0.2             # a frame not complete this long after its last byte is dropped

_USER_KINDS = frozenset({ErrorKind.CASSETTE_MISSING, ErrorKind.CASSETTE_EMPTY, ErrorKind.NO_REJECT_TRAY,
                         ErrorKind.NEAR_END})
_LAST_COMMANDS = {0x20: "none", Cmd4000.PURGE: "purge", Cmd4000.DISPENSE: "dispense", Cmd4000.TEST_DISPENSE: "test"}


class RefusedError(ProtocolError):
    """The device answered NAK to every send of a command: it never took it."""


class _NoAnswer(Exception):
    """The response never came (after `acked`: the device took the command)."""

    def __init__(self, acked: bool):
        super().__init__("no response")
        self.acked = acked


class _Unknown(Exception):
    """What a dispense command did cannot be told."""

    def __init__(self, detail: str, code: DeviceCode | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code


class LcdmDispenser(CashDispenser):
    """A Puloon LCDM dispenser on `port` (a pyserial URL).

    `denominations` (minor units of `currency`, in cassette order, or cassette id -> minor)
    names the cassettes the kiosk pays from; without it the unit is driven by cassette id
    only (the bench tool). `parity` is "none", "even", or "auto" (none, then even if the
    unit never answers at open: the 4000's parity is disputed); default "auto" on the
    4000 and "none" on the 2000."""

    def __init__(self, port: str, *, model: str = "lcdm4000", name: str = "dispenser", currency: str = "EUR",
                 denominations: Sequence[int] | Mapping[str, int] | None = None, parity: str | None = None,
                 ack_timeout: float = 0.55, response_timeout: float = 60.0, per_note_s: float = 1.0,
                 eot_timeout: float = 0.3, settle_s: float = 0.6):
        if model not in MODELS:
            raise ConfigurationError(f"dispenser model {model!r}: expected one of {', '.join(MODELS)}")
        self.model: Model = MODELS[model]
        self.port = port
        self.name = name
        self.currency = currency
        parity = parity or ("auto" if self.model is LCDM4000 else "none")
        if parity not in ("none", "even", "auto"):
            raise ConfigurationError(f"dispenser parity {parity!r}: expected none, even or auto")
        self.parity = parity
        self.ack_timeout = ack_timeout
        self.response_timeout = response_timeout
        self.per_note_s = per_note_s
        self.eot_timeout = eot_timeout
        self.settle_s = settle_s
        self._cassettes = self._parse_denominations(denominations)
        self._ser: serial.SerialBase | None = None
        self._decoder = self._new_decoder()
        self._items: collections.deque = collections.deque()
        self._io = threading.RLock()
        self._sink: EventSink | None = None
        self._state = DeviceState.OFFLINE
        self._info = DeviceInfo(model=self.model.title)
        self._unit_status: dict[str, UnitStatus] = {}
        self._baseline: OperationResult | None = None
        self._unconfirmed_until = 0.0
        self._sent = (0, False)              # sends of the current command, and whether ACKed
        self._job: threading.Thread | None = None
        self._last_event: DispenseCompleted | None = None
        self.line_parity = "none"           # the parity the port was opened with last
        # What went over the wire, for a technician and the tests.
        self.commands_sent: list[int] = []
        self.bad_frames = 0

    @property
    def _who(self) -> str:
        return f"{self.model.title} on {self.port}"

    def _parse_denominations(self, denominations) -> list[Cassette]:
        if denominations is None:
            return []
        items = (list(denominations.items()) if isinstance(denominations, Mapping)
                 else list(zip(self.model.cassettes, denominations)))
        if isinstance(denominations, Sequence) and len(denominations) > len(self.model.cassettes):
            raise ConfigurationError(f"dispenser denominations: {self.model.title} has "
                                     f"{len(self.model.cassettes)} cassettes, got {len(denominations)} values")
        out = []
        for cid, minor in items:
            if str(cid) not in self.model.cassettes:
                raise ConfigurationError(f"dispenser denominations: cassette {cid!r} is not one of "
                                         f"{', '.join(self.model.cassettes)} on the {self.model.title}")
            if isinstance(minor, bool) or not isinstance(minor, int) or minor <= 0:
                raise ConfigurationError(f"dispenser denominations: cassette {cid!r} must be a positive number "
                                         f"of minor units (2000 for 20.00), got {minor!r}")
            out.append(Cassette(str(cid), Fiat(minor, self.currency)))
        return out

    def _new_decoder(self) -> FrameDecoder:
        length = response_length_4000 if self.model is LCDM4000 else None
        return FrameDecoder(start=0x01, device_id=self.model.device_id, length_for=length)

    # -- hal.Device -------------------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        return self._state

    def info(self) -> DeviceInfo:
        return self._info

    @property
    def cassettes(self) -> list[Cassette]:
        return list(self._cassettes)

    @property
    def cassette_ids(self) -> tuple[str, ...]:
        return self.model.cassettes

    def open(self, sink: EventSink) -> None:
        if self._ser is not None:
            raise DeviceError(f"{self._who} is already open")
        self._sink = sink
        tries = ["none", "even"] if self.parity == "auto" else [self.parity]
        for n, parity in enumerate(tries):
            self._open_port(parity)
            try:
                report = self._status_report()
                break
            except (DeviceTimeout, RefusedError) as exc:
                # Silence, or every frame NAKed: on a line with the wrong parity both happen.
                self._close_port()
                if n + 1 == len(tries):
                    self._set_state(DeviceState.OFFLINE, "no answer")
                    raise DeviceTimeout(f"{self._who}: no good answer to STATUS (parity {' or '.join(tries)}): "
                                        f"{exc}; check power, the cable, the model and the line settings") from None
                log.warning("%s: no good answer with parity %s; trying %s", self._who, parity, tries[n + 1])
            except BaseException:
                self._close_port()
                raise
        try:
            with self._io:
                if self.model is LCDM2000:
                    rom = self.rom_version()
                    self._info = DeviceInfo(model=self.model.title, firmware=rom or "")
                else:
                    self._baseline = self._last_status_exchange()
        except BaseException:
            self._close_port()
            raise
        self._apply_status(report)

    def close(self) -> None:
        job = self._job
        if job is not None and job is not threading.current_thread():
            # A dispense in progress is finished (or given up) before the port goes away.
            job.join(timeout=self.dispense_time_bound(self.model.max_per_command) + 5)
        with self._io:
            self._close_port()
        self._sink = None
        self._state = DeviceState.OFFLINE

    def _open_port(self, parity: str) -> None:
        try:
            self._ser = serial.serial_for_url(
                self.port, baudrate=9600, bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_EVEN if parity == "even" else serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE, timeout=0.02, write_timeout=1.0)
        except (serial.SerialException, ValueError, OSError, termios.error) as exc:
            self._ser = None
            raise PortError(f"{self.model.title}: port {self.port!r} did not open ({exc}); check the URL or "
                            f"device path, the cable, and that no other program holds the port") from exc
        self.line_parity = parity
        self._decoder = self._new_decoder()
        self._items.clear()

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass

    # -- the line --------------------------------------------------------------------

    def _write(self, raw: bytes) -> None:
        if self._ser is None:
            raise PortError(f"{self._who}: the port is not open")
        try:
            self._ser.write(raw)
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"{self._who}: writing failed ({exc}); check the cable") from exc

    def _next(self, deadline: float) -> Frame | int | LcdmProtocolError | None:
        """The next frame or control byte from the device, or None at the deadline."""
        ser = self._ser
        if ser is None:
            raise PortError(f"{self._who}: the port is not open")
        last_byte = time.monotonic()
        while not self._items:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise PortError(f"{self._who}: reading failed ({exc}); check the cable") from exc
            now = time.monotonic()
            if data:
                last_byte = now
                self._items.extend(self._decoder.feed(data))
                continue
            if self._decoder.mid_frame and now - last_byte > FRAME_GAP_S:
                # Quiet in the middle of a frame: a short [CMD ERR] frame, or a broken one.
                salvaged = self._decoder.salvage()
                if salvaged is not None:
                    return salvaged
                self.bad_frames += 1
            if now >= deadline:
                return None
        return self._items.popleft()

    def _settle(self) -> None:
        """Before a new command: take what is still on the line. A response repeated because
        our ACK was lost is acknowledged again, so it cannot be taken for the next answer."""
        while True:
            deadline = max(time.monotonic(), self._unconfirmed_until)
            item = self._next(deadline)
            if item is None:
                break
            if isinstance(item, Frame):
                self._write(bytes((ACK,)))
                if self.model is LCDM2000:
                    # No EOT to confirm it: a third send may still come.
                    self._unconfirmed_until = time.monotonic() + self.settle_s
        self._unconfirmed_until = 0.0

    def _exchange(self, cmd: int, data: bytes = b"", *, money: bool, timeout: float | None = None) -> tuple[Frame, bool]:
        """Send one command and return (its response, whether the ACK came). A read-only
        command is sent again on silence or NAK; a money command only on NAK (not taken).
        Raises _NoAnswer when the response never came, DeviceTimeout when a read-only
        command got nothing at all, ProtocolError when every send was refused."""
        raw = command(self.model.device_id, cmd, data)
        self._settle()
        acked = False
        sends = 0
        # Kept on the object so that a port failure after the frame went out is known as such.
        self._sent = (0, False)
        while True:
            self._write(raw)
            sends += 1
            self._sent = (sends, acked)
            self.commands_sent.append(cmd)
            item = self._await_ack(cmd, time.monotonic() + self.ack_timeout)
            if item == ACK:
                acked = True
                self._sent = (sends, acked)
                break
            if isinstance(item, Frame):
                return self._accept(item, money), False     # the ACK was lost; the response was not
            if item == NAK:
                if sends < MAX_SENDS:
                    continue                         # NAK: not taken, so sending it again is safe
                raise RefusedError(f"{self._who}: command 0x{cmd:02X} refused (NAK) {sends} times; "
                                    f"check the line settings (parity) and the cable")
            # Silence. A read-only command may go again; a dispense may already be running.
            if money:
                break
            if sends < MAX_SENDS:
                continue
            raise DeviceTimeout(f"{self._who}: no ACK to command 0x{cmd:02X} after {sends} sends")
        deadline = time.monotonic() + (self.response_timeout if timeout is None else timeout)
        while True:
            item = self._next(deadline)
            if item is None:
                raise _NoAnswer(acked)
            if isinstance(item, Frame):
                if item.cmd == cmd:
                    return self._accept(item, money), acked
                continue                             # a stale repeat of another command's answer
            if isinstance(item, LcdmProtocolError):
                self.bad_frames += 1
                log.warning("%s: bad response frame (%s); asking again", self._who, item)
                self._write(bytes((NAK,)))
                continue
            if item == ACK:
                acked = True
                self._sent = (sends, acked)

    def _await_ack(self, cmd: int, deadline: float) -> Frame | int | None:
        while True:
            item = self._next(deadline)
            if item is None or item in (ACK, NAK):
                return item
            if isinstance(item, Frame) and item.cmd == cmd:
                return item
            if isinstance(item, BccError):
                # The response came before (without) the ACK and was damaged: ask again.
                self.bad_frames += 1
                self._write(bytes((NAK,)))

    def _accept(self, frame: Frame, money: bool) -> Frame:
        """ACK a good response; the 4000 closes with EOT. Without that EOT our ACK may be
        lost and the answer come again: watch the line before the next command. The 2000
        sends no EOT, so after a dispense (the next may be the same command) always watch."""
        self._write(bytes((ACK,)))
        if self.model is LCDM4000:
            item = self._next(time.monotonic() + self.eot_timeout)
            if item == EOT:
                return frame
            if item is not None:
                self._items.appendleft(item)
        elif not money:
            return frame
        self._unconfirmed_until = time.monotonic() + self.settle_s
        return frame

    def _read_only(self, cmd: int, data: bytes = b"", timeout: float | None = None) -> Frame:
        """A command that moves no note: asking again after a lost answer is harmless."""
        for _ in range(MAX_SENDS):
            try:
                frame, _ = self._exchange(cmd, data, money=False, timeout=timeout)
                return frame
            except _NoAnswer:
                log.warning("%s: command 0x%02X acknowledged but not answered; asking again", self._who, cmd)
        raise DeviceTimeout(f"{self._who}: command 0x{cmd:02X} was acknowledged but never answered "
                            f"({MAX_SENDS} tries)")

    # -- read-only commands --------------------------------------------------------------

    def _status_report(self) -> StatusReport:
        with self._io:
            if self.model is LCDM2000:
                return parse_status_2000(self._read_only(Cmd2000.STATUS, timeout=2.0))
            return parse_status_4000(self._read_only(Cmd4000.STATUS, timeout=2.0))

    def status(self) -> DispenserStatus:
        report = self._status_report()
        self._apply_status(report)
        state, detail = self._state_of(report)
        return DispenserStatus(
            state=state,
            cassettes=tuple(CassetteState(cid, s.present, s.near_end)
                            for cid, s in zip(self.model.cassettes, report.cassettes)),
            detail=detail, code=None if report.error.ok else f"0x{report.error.value:02X}",
            reject_tray_present=report.reject_tray_present, path_blocked=report.path_blocked)

    def rom_version(self) -> str | None:
        """The 2000's ROM string (e.g. T20T5624); None on the 4000, which has no such command."""
        if self.model is not LCDM2000:
            return None
        with self._io:
            return parse_rom_2000(self._read_only(Cmd2000.ROM_VERSION, timeout=2.0)).text

    def _last_status_exchange(self, timeout: float | None = None) -> OperationResult:
        frame = self._read_only(Cmd4000.LAST_STATUS, timeout=2.0 if timeout is None else timeout)
        return parse_operation_4000(frame)

    def last_status(self) -> OperationResult:
        """LCDM-4000 LAST STATUS as the codec reads it."""
        if self.model is not LCDM4000:
            raise DeviceError(f"{self._who}: the {self.model.title} has no LAST STATUS command")
        with self._io:
            result = self._last_status_exchange()
            self._baseline = result
            return result

    def last_operation(self) -> LastOperation | None:
        if self.model is not LCDM4000:
            return None
        result = self.last_status()
        return LastOperation(
            command=_LAST_COMMANDS.get(result.cmd, f"0x{result.cmd:02X}"),
            exited=dict(zip(self.model.cassettes, result.exited())),
            rejected=dict(zip(self.model.cassettes, result.rejected())),
            error=None if result.error.ok else result.error.kind.value, code=f"0x{result.error.value:02X}")

    def purge(self) -> Mapping[str, int]:
        with self._io:
            if self.model is LCDM2000:
                result = parse_purge_2000(self._read_only(Cmd2000.PURGE, timeout=self.response_timeout))
            else:
                result = parse_operation_4000(self._read_only(Cmd4000.PURGE, timeout=self.response_timeout))
                self._baseline = result
        if not result.error.ok:
            self._report_error(result.error)
            raise DeviceError(f"{self._who}: purge failed: {result.error}")
        self._apply_status(self._status_report())
        return dict(zip(self.model.cassettes, result.rejected()))

    def reset(self, wait_s: float = 3.5) -> int:
        """LCDM-4000 software reset. Sources disagree on its answers (none, or two identical
        [44 ERR] frames around the motor reset), so every one that comes within `wait_s` is
        acknowledged; returns how many came. Does not clear a jam (purge does)."""
        if self.model is not LCDM4000:
            raise DeviceError(f"{self._who}: the {self.model.title} has no RESET command (0x44 is its PURGE)")
        with self._io:
            try:
                self._exchange(Cmd4000.RESET, money=False, timeout=wait_s)
            except _NoAnswer:
                return 0
            answers = 1
            deadline = time.monotonic() + wait_s
            while True:
                item = self._next(deadline)
                if item is None:
                    return answers
                if isinstance(item, Frame) and item.cmd == Cmd4000.RESET:
                    self._accept(item, False)
                    answers += 1

    # -- state and events ------------------------------------------------------------------

    def _emit(self, event) -> None:
        emit_safely(self._sink, event, f"lcdm {self.name}")

    def _set_state(self, state: DeviceState, detail: str = "", code: str | None = None) -> None:
        if state != self._state:
            self._state = state
            self._emit(DeviceStatusChanged(device=self.name, state=state, detail=detail, code=code))

    def _state_of(self, report: StatusReport) -> tuple[DeviceState, str]:
        if report.path_blocked or report.error.kind is ErrorKind.JAM:
            return DeviceState.HARDWARE_ERROR, "a note is stuck in the transport: purge, then check the path"
        if report.reject_tray_present is False:
            return DeviceState.USER_ERROR, "reject tray missing: put it back"
        if not report.error.ok:
            return DeviceState.HARDWARE_ERROR, str(report.error)
        return DeviceState.ONLINE, ""

    def _apply_status(self, report: StatusReport) -> None:
        state, detail = self._state_of(report)
        self._set_state(state, detail, None if report.error.ok else f"0x{report.error.value:02X}")
        for cid, sensor in zip(self.model.cassettes, report.cassettes):
            status = UnitStatus.MISSING if not sensor.present else UnitStatus.LOW if sensor.near_end else UnitStatus.OK
            if status is UnitStatus.LOW and self._unit_status.get(cid) is UnitStatus.EMPTY:
                continue                      # an empty cassette is near end too; it stays empty
            self._unit(cid, status, "not in its slot" if status is UnitStatus.MISSING
                       else "near end" if status is UnitStatus.LOW else "")

    def _unit(self, cid: str, status: UnitStatus, detail: str = "") -> None:
        if self._unit_status.get(cid, UnitStatus.OK) != status:
            self._unit_status[cid] = status
            self._emit(CassetteStatusChanged(device=self.name, cassette=cid, status=status, detail=detail))

    def _report_error(self, code: DeviceCode, cassette: str | None = None) -> None:
        kind = code.kind
        if code.cassette is not None and cassette is None and code.cassette < len(self.model.cassettes):
            cassette = self.model.cassettes[code.cassette]
        if kind is ErrorKind.CASSETTE_EMPTY and cassette is not None:
            self._unit(cassette, UnitStatus.EMPTY, str(code))
        elif kind is ErrorKind.CASSETTE_MISSING and cassette is not None:
            self._unit(cassette, UnitStatus.MISSING, str(code))
        state = DeviceState.USER_ERROR if kind in _USER_KINDS else DeviceState.HARDWARE_ERROR
        self._set_state(state, str(code), f"0x{code.value:02X}")

    # -- dispensing ---------------------------------------------------------------------------

    def dispense_time_bound(self, notes: int) -> float:
        """How long an answer to a dispense of `notes` may take (spec: 60 s, plus ~1 s a note)."""
        return self.response_timeout + self.per_note_s * notes

    def _check_plan(self, plan: Mapping[str, int]) -> dict[str, int]:
        unknown = [cid for cid in plan if cid not in self.model.cassettes]
        if unknown:
            raise ValueError(f"{self._who}: no cassette {unknown[0]!r}; cassettes are {', '.join(self.model.cassettes)}")
        for cid, n in plan.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"{self._who}: cassette {cid!r} count {n!r} must be a whole number >= 0")
        wanted = {cid: int(plan.get(cid, 0)) for cid in self.model.cassettes}
        if not sum(wanted.values()):
            raise ValueError(f"{self._who}: a dispense of no notes")
        return wanted

    def dispense(self, request_id: str, plan: Mapping[str, int]) -> None:
        wanted = self._check_plan(plan)
        self._start_job(request_id, wanted, test=False)

    def test_dispense(self, request_id: str, cassette: str) -> None:
        wanted = self._check_plan({cassette: 1})
        self._start_job(request_id, wanted, test=True)

    def _start_job(self, request_id: str, wanted: dict[str, int], *, test: bool) -> None:
        if self._ser is None:
            raise DeviceError(f"{self._who} is not open")
        if self._job is not None and self._job.is_alive():
            raise DeviceError(f"{self._who} is busy with another dispense")
        self._job = threading.Thread(target=self._run_job, args=(request_id, wanted, test),
                                     name=f"lcdm {self.name} dispense", daemon=True)
        self._job.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for a dispense in progress to end; True when none is running."""
        job = self._job
        if job is not None:
            job.join(timeout)
            return not job.is_alive()
        return True

    def last_result(self, request_id: str) -> DispenseCompleted | None:
        event = self._last_event
        return event if event is not None and event.request_id == request_id else None

    def _run_job(self, request_id: str, wanted: dict[str, int], test: bool) -> None:
        with self._io:
            event = self._pay(request_id, wanted, test)
        self._last_event = event
        self._emit(event)

    def _chunks(self, wanted: Mapping[str, int]) -> list[dict[str, int]]:
        """Split a plan into commands the model takes, in pick order."""
        left = dict(wanted)
        out = []
        while any(left.values()):
            chunk, total = {}, 0
            for cid in self.model.cassettes:
                n = min(left[cid], self.model.max_per_cassette, self.model.max_per_command - total)
                chunk[cid] = n
                total += n
                left[cid] -= n
            out.append(chunk)
        return out

    def _pay(self, request_id: str, wanted: dict[str, int], test: bool) -> DispenseCompleted:
        ids = self.model.cassettes
        exited = {cid: 0 for cid in ids}
        rejected = {cid: 0 for cid in ids}
        uncertain: dict[str, int] = {}
        error: str | None = None
        detail = "test dispense: notes to the reject tray" if test else ""
        completion = Completion.SUCCESS
        outcome = ""
        for chunk in self._chunks(wanted):
            try:
                result = self._one_command(chunk, test)
            except _Unknown as exc:
                uncertain = {cid: n for cid, n in chunk.items() if n}
                completion, outcome, error = Completion.TIMEOUT, "unknown", "noAnswer"
                detail = exc.detail
                if exc.code is not None and not exc.code.ok:
                    error = exc.code.kind.value
                self._set_state(DeviceState.HARDWARE_ERROR, exc.detail)
                break
            except DeviceError as exc:
                # Nothing reached the device (the port failed before the frame went out).
                completion, error, detail = Completion.HARDWARE_ERROR, "portError", str(exc)
                self._set_state(DeviceState.OFFLINE, str(exc))
                break
            stuck = 0
            for cid, counts in zip(ids, result.counts or ()):
                exited[cid] += counts.exited
                rejected[cid] += counts.rejected
                if counts.picked is not None:
                    # LCDM-2000: a note picked but neither out nor rejected is stuck in the
                    # transport, and its PURGE answer reports no counts: book it now as
                    # going to the reject tray, or the cassette count would drift.
                    extra = max(0, counts.picked - counts.exited - counts.rejected)
                    rejected[cid] += extra
                    stuck += extra
            short = any(exited_n < asked for exited_n, asked in
                        zip((c.exited for c in result.counts or ()), (chunk[cid] for cid in ids))) and not test
            if not result.error.ok:
                error = result.error.kind.value
                detail = str(result.error) + (f"; {stuck} note(s) stuck in the transport go to the reject tray "
                                              f"at purge" if stuck else "")
                completion = Completion.USER_ERROR if result.error.kind in _USER_KINDS else Completion.HARDWARE_ERROR
                # Sensors first, then the error code: the code says more than STATUS can
                # (the 4000's STATUS does not show the reject tray, nor an empty cassette).
                self._refresh_after_error()
                self._report_error(result.error, self._cassette_of(result, chunk))
                break
            if short:
                error, completion = ErrorKind.COUNTING.value, Completion.HARDWARE_ERROR
                detail = "the device ended the dispense without an error but fewer notes exited than asked"
                break
        if not outcome:
            target = {cid: 0 for cid in ids} if test else wanted
            if any(exited[cid] > target[cid] for cid in ids):
                error, completion = "overDispense", Completion.HARDWARE_ERROR
                detail = "more notes exited than were asked for"
            outcome = "complete" if all(exited[cid] >= target[cid] for cid in ids) and (
                not test or error is None) else "partial"
        if error is None:
            self._set_state(DeviceState.ONLINE)
        return DispenseCompleted(
            device=self.name, request_id=request_id, completion=completion, exited=exited, rejected=rejected,
            detail=detail, requested={cid: 0 for cid in ids} if test else dict(wanted), outcome=outcome,
            uncertain=uncertain, error=error)

    def _cassette_of(self, result: OperationResult, chunk: Mapping[str, int]) -> str | None:
        """The cassette an error is about, when the code does not say: the last one picked from."""
        asked = [cid for cid in self.model.cassettes if chunk.get(cid)]
        if result.error.cassette is not None:
            return self.model.cassettes[result.error.cassette]
        return asked[-1] if len(asked) == 1 else None

    def _refresh_after_error(self) -> None:
        try:
            self._apply_status(self._status_report())
        except DeviceError as exc:
            log.warning("%s: status after a failed dispense did not come: %s", self._who, exc)

    def _one_command(self, chunk: Mapping[str, int], test: bool) -> OperationResult:
        """One dispense (or test dispense) command, never sent twice. Raises _Unknown."""
        notes = sum(chunk.values())
        if self.model is LCDM2000:
            upper, lower = chunk["upper"], chunk["lower"]
            if test:
                cmd, data = (Cmd2000.UPPER_TEST if upper else Cmd2000.LOWER_TEST), b""
            else:
                cmd, data = dispense_2000(upper, lower)
        else:
            cmd = Cmd4000.TEST_DISPENSE if test else Cmd4000.DISPENSE
            data = dispense_4000([chunk[cid] for cid in self.model.cassettes])
            if self._baseline is None:
                # Without it, a lost command could not be told from a lost answer.
                try:
                    self._baseline = self._last_status_exchange()
                except (DeviceError, LcdmProtocolError) as exc:
                    raise _Unknown(f"LAST STATUS before the dispense failed ({exc}); nothing was sent") from None
        try:
            frame, _acked = self._exchange(cmd, data, money=True, timeout=self.dispense_time_bound(notes))
        except _NoAnswer as exc:
            return self._recover(cmd, exc.acked)
        except RefusedError as exc:
            raise DeviceError(str(exc)) from None         # refused every time: never taken
        except PortError as exc:
            sends, acked = self._sent
            if not sends:
                raise                                     # it never went out
            # The line died after the dispense went out: as good as a lost answer.
            log.warning("%s: port failed during a dispense (%s)", self._who, exc)
            return self._recover(cmd, acked)
        except ProtocolError as exc:
            raise _Unknown(f"the dispense answer was unreadable ({exc})") from None
        try:
            if self.model is LCDM2000:
                result = parse_dispense_2000(frame)
            else:
                result = parse_operation_4000(frame)
                self._baseline = result
        except MessageError as exc:
            self._baseline = None
            raise _Unknown(f"the dispense answer did not parse ({exc}); count the cassettes") from None
        if result.counts is None and self.model is LCDM4000:
            # It answered, so it took the command: its LAST STATUS has the counts.
            return self._recover(cmd, acked=True)
        if result.counts is None:
            raise _Unknown(f"the device answered {result.error} without counts; count the cassettes",
                           result.error)
        return result

    def _recover(self, cmd: int, acked: bool) -> OperationResult:
        """The dispense answer never came. Never send it again: ask the 4000 what it did."""
        if self.model is LCDM2000:
            self._refresh_after_error()
            raise _Unknown("no answer to the dispense and the LCDM-2000 keeps no record: the outcome is "
                           "unknown; count the cassettes and the reject tray to reconcile")
        baseline, self._baseline = self._baseline, None
        try:
            last = self._last_status_exchange(timeout=self.dispense_time_bound(self.model.max_per_command))
        except (DeviceError, LcdmProtocolError) as exc:
            raise _Unknown(f"no answer to the dispense, and LAST STATUS failed too ({exc}): outcome unknown")
        self._baseline = last
        if last.cmd != cmd:
            raise _Unknown(f"no answer to the dispense; LAST STATUS reports command 0x{last.cmd:02X}, "
                           f"not this dispense: outcome unknown")
        if not acked and last == baseline:
            raise _Unknown("neither ACK nor answer to the dispense, and LAST STATUS still shows the "
                           "operation before it: the command may never have arrived; outcome unknown")
        log.warning("%s: dispense answer lost; LAST STATUS reports %s", self._who, last)
        return last



def _fixed_model(model: str) -> type[LcdmDispenser]:
    """A class for one model, for configuration (driver = "lcdm2000" / "lcdm4000"). Its
    signature is the base one without `model`, so the composition root sees the real keys."""

    def __init__(self, port: str, **options) -> None:
        LcdmDispenser.__init__(self, port, model=model, **options)

    cls = type(f"Lcdm{model[4:]}Dispenser", (LcdmDispenser,), {"__init__": __init__, "__doc__": f"The {MODELS[model].title}."})
    base = inspect.signature(LcdmDispenser)
    cls.__signature__ = base.replace(parameters=[p for p in base.parameters.values() if p.name != "model"])
    return cls


Lcdm2000Dispenser = _fixed_model("lcdm2000")
Lcdm4000Dispenser = _fixed_model("lcdm4000")
