"""Host side of a JCM ID-003 bill validator over any pyserial URL (9600 8E1).

One poll thread owns the port: it asks for status every poll_interval, turns the
answers into hal events, sends the application's escrow decisions (HOLDing the note
while the application thinks, since the unit returns it by itself after 10 s), and
credits a note only at VEND VALID or at a power-up with the note in the stacker
(recorder first, ACK second, event third). It keeps no money totals; the application
owns the books.
"""

from __future__ import annotations

import logging
import termios
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import serial

from drivers.id003.frames import (
    Command,
    Frame,
    FrameDecoder,
    MessageError,
    Status,
    check_status,
    denomination_bit,
    denomination_mask,
    failure_name,
    parse_currency_assign,
    parse_escrow_code,
    reject_reason_name,
    status_name,
    version_currency,
)
from hal.device import DeviceInfo
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import (
    emit_safely,
    CashboxChanged,
    DeviceStatusChanged,
    Event,
    EventSink,
    FraudDetected,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat, minor_digits
from hal.status import DeviceState, UnitStatus
from hal.validator import BillValidator, CreditRecorder

log = logging.getLogger(__name__)

# A device that misses this many status requests in a row is reported offline.
MISSES_BEFORE_OFFLINE = 3
# A real unit returns a note by itself this long after reporting ESCROW (or after the
# last HOLD): a host that waits longer for its application must HOLD before it.
UNIT_ESCROW_RETURN_S = 10.0

# States in which the mechanism is moving a note; staying in one longer than
# stuck_timeout means it hung (escrow is watched separately, from the decision on).
# HOLDING is watched like ESCROW: it is the host's own choice to wait.
_TRANSIENT = frozenset({Status.ACCEPTING, Status.STACKING, Status.RETURNING,
                        Status.REJECTING, Status.INITIALIZE})
_IN_ESCROW = frozenset({Status.ESCROW, Status.HOLDING})
# Answers that say the device did not take our last frame; they say nothing of its state.
_COMPLAINTS = frozenset({Status.COMMUNICATION_ERROR, Status.INVALID_COMMAND})
# States in which a note is somewhere inside the acceptor.
_MID_NOTE = frozenset({Status.ACCEPTING, Status.ESCROW, Status.STACKING, Status.VEND_VALID,
                       Status.STACKED, Status.REJECTING, Status.RETURNING, Status.HOLDING})
_POWER_UP = frozenset({Status.POWER_UP, Status.POWER_UP_BILL_IN_ACCEPTOR, Status.POWER_UP_BILL_IN_STACKER})


def _hex(code: int) -> str:
    return f"0x{code:02X}"


@dataclass
class _Note:
    """One note's trip through the acceptor, from escrow to stacked or returned."""

    code: int
    value: Fiat | None
    seen_at: float
    own_return_reason: str = ""          # the driver itself refuses it (unknown, not accepted, timeout)
    announced: bool = False              # NoteEscrowed with a value went to the application
    app_decision: str = ""               # "stack" / "return" from the application
    held_at: float = 0.0                 # the last HOLD the device acknowledged
    sent: str = ""                       # the decision the device acknowledged
    sent_at: float = 0.0
    recorded: bool = False               # the recorder made the credit durable
    credited: bool = False               # VEND VALID recorded and acknowledged
    outcome_told: bool = False           # resolve_note() answered "unknown" for it
    stacked_reported: bool = False
    returned_reported: bool = False


class Id003Validator(BillValidator):
    """A JCM ID-003 acceptor on `port` (a pyserial URL)."""

    def __init__(self, port: str, *, name: str = "validator", currency: str | None = None,
                 denominations: Mapping[str, int] | None = None, poll_interval: float = 0.2,
                 reply_timeout: float = 0.3, escrow_timeout: float = 8.0, hold_every: float | None = 3.0,
                 stuck_timeout: float = 10.0, init_timeout: float = 10.0, resolve_timeout: float = 5.0):
        """escrow_timeout: how long the application may take to decide before the driver
        returns the note itself. hold_every: while it decides, HOLD is sent this often
        (None: never), so the unit's own 10 s return never comes first; without HOLD the
        escrow_timeout must stay below those 10 s. resolve_timeout: how long resolve_note()
        waits for the device to show where a stalled note went."""
        self.name = name
        self._check_timings(escrow_timeout, hold_every, resolve_timeout)
        self.port = port
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout
        self.escrow_timeout = escrow_timeout
        self.hold_every = hold_every
        self.resolve_timeout = resolve_timeout
        self.stuck_timeout = stuck_timeout
        self.init_timeout = init_timeout
        self._configured_currency = currency
        self._override = self._parse_override(denominations, currency) if denominations is not None else None
        self.currency = currency or ""
        self._table: dict[int, Fiat] = {}
        self._info = DeviceInfo()
        self._state = DeviceState.OFFLINE
        self._emitted_status: tuple[DeviceState, str] | None = None
        self._cashbox = UnitStatus.OK
        self._sink: EventSink | None = None
        self._recorder: CreditRecorder | None = None
        self._ser: serial.SerialBase | None = None
        self._decoder = FrameDecoder()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._want_enabled = False
        self._accept: frozenset[int] | None = None
        self._note: _Note | None = None
        self._last_status: tuple[int, bytes] | None = None
        self._status_since = 0.0
        self._misses = 0
        self._watchdog_fired_for: tuple[int, bytes, float] | None = None
        self._fraud_reported = False
        self._device_complaint: int | None = None
        self._comm_errors = 0
        # The last note told to stack whose settled event has not come; kept across a
        # reset so that resolve_note() can still answer for it.
        self._unsettled: _Note | None = None
        self._last_stack_settled = False
        self._resolve_deadline: float | None = None
        self._sent_mask: bytes | None = None
        # Counters a technician (and the tests) can read.
        self.bad_frames = 0
        self.last_protocol_error: ProtocolError | None = None

    @property
    def _who(self) -> str:
        """How messages name this unit: "ID-003 validator", plus its name when it has its own."""
        return "ID-003 validator" if self.name == "validator" else f"ID-003 validator {self.name!r}"

    # -- configuration ------------------------------------------------------------

    def _check_timings(self, escrow_timeout: float, hold_every: float | None, resolve_timeout: float) -> None:
        where = f"{self._who}, configuration [devices.validator]: "
        for key, value in (("escrow_timeout", escrow_timeout), ("resolve_timeout", resolve_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{where}{key} must be a positive number of seconds, got {value!r}")
        if hold_every is None:
            if escrow_timeout >= UNIT_ESCROW_RETURN_S:
                raise ConfigurationError(
                    f"{where}escrow_timeout = {escrow_timeout:g} s without HOLD (hold_every unset): the unit returns "
                    f"an escrowed note by itself after {UNIT_ESCROW_RETURN_S:g} s; set escrow_timeout below that or "
                    f"set hold_every (e.g. 3)")
        elif isinstance(hold_every, bool) or not isinstance(hold_every, (int, float)) \
                or not 0 < hold_every < UNIT_ESCROW_RETURN_S:
            raise ConfigurationError(f"{where}hold_every must be a number of seconds between 0 and "
                                     f"{UNIT_ESCROW_RETURN_S:g} (the unit's own escrow return), got {hold_every!r}")

    @staticmethod
    def _parse_override(denominations: Mapping[str, int], currency: str | None) -> dict[int, int]:
        if not currency:
            raise ConfigurationError("validator: 'denominations' is set but 'currency' is not; "
                                     "name the currency the minor units are in (e.g. currency = \"EUR\")")
        table: dict[int, int] = {}
        for key, minor in denominations.items():
            try:
                code = parse_escrow_code(str(key))
            except MessageError as exc:
                raise ConfigurationError(f"validator denominations: {exc}") from None
            if isinstance(minor, bool) or not isinstance(minor, int) or minor <= 0:
                raise ConfigurationError(f"validator denominations: key {key!r} must map to a positive integer "
                                         f"of minor units (e.g. 1000 for 10.00), got {minor!r}")
            table[code] = minor
        return table

    # -- hal.BillValidator ----------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        return self._state

    def info(self) -> DeviceInfo:
        return self._info

    @property
    def denominations(self) -> list[Fiat]:
        return sorted(set(self._table.values()), key=lambda f: f.minor)

    @property
    def escrow_table(self) -> dict[str, Fiat]:
        """Escrow code -> value, as the driver will use it."""
        return {_hex(code): value for code, value in sorted(self._table.items())}

    def set_credit_recorder(self, recorder: CreditRecorder) -> None:
        self._recorder = recorder

    def enable(self, accept: Iterable[Fiat] | None = None) -> None:
        allowed = None
        if accept is not None:
            values = list(accept)
            for value in values:
                if self.currency and value.currency != self.currency:
                    raise ValueError(f"{self._who} takes {self.currency}, cannot accept {value}")
            allowed = frozenset(v.minor for v in values)
        with self._lock:
            self._accept = allowed
            self._want_enabled = True
        self._wake.set()

    def disable(self) -> None:
        with self._lock:
            self._want_enabled = False
        self._wake.set()

    def stack(self) -> None:
        self._decide("stack")

    def return_note(self) -> None:
        self._decide("return")

    def resolve_note(self) -> None:
        """Ask the device where the note last told to stack went (hal contract). The
        poll thread answers with one event: NoteCredited (VEND VALID, or a power-up
        with the bill in the stacker), NoteReturned (power-up with the bill in the
        acceptor, or returned), or NoteOutcomeUnknown when the device cannot tell
        within resolve_timeout. Nothing when that note's settled event already went out."""
        with self._lock:
            self._resolve_deadline = time.monotonic() + self.resolve_timeout
        self._wake.set()

    def _decide(self, decision: str) -> None:
        with self._lock:
            note = self._note
            if note is None or note.sent or note.own_return_reason or note.value is None \
                    or note.returned_reported or note.credited:
                raise DeviceError(f"{self._who} on {self.port}: no note waiting for a decision in escrow "
                                  f"(it may have timed out after {self.escrow_timeout:g} s and been returned)")
            note.app_decision = decision
        self._wake.set()

    # -- open / close -------------------------------------------------------------------

    def open(self, sink: EventSink) -> None:
        if self._thread is not None:
            raise DeviceError(f"{self._who} on {self.port} is already open")
        self._sink = sink
        self._stop.clear()
        self._open_port()
        try:
            first = self._first_contact()
            self._read_identity()
            if first.code in _MID_NOTE:
                self._finish_note_in_flight()
            elif first.code in _POWER_UP:
                self._report_power_up(first.code)
            self._initialize()
            # One cycle now, so that state and events are current when open() returns.
            self._cycle()
        except BaseException:
            self._close_port()
            raise
        self._thread = threading.Thread(target=self._run, name=f"id003 {self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(2.0, 3 * self.reply_timeout + self.poll_interval))
        if self._ser is not None:
            try:
                # Leave the acceptor refusing notes: nobody is listening for them now.
                self._transact(Frame(Command.SET_INHIBIT, b"\x01"),
                               lambda f: f.code in (Command.SET_INHIBIT, Status.INVALID_COMMAND))
            except (serial.SerialException, OSError):
                pass
        self._close_port()

    def _open_port(self) -> None:
        try:
            self._ser = serial.serial_for_url(self.port, baudrate=9600, bytesize=serial.EIGHTBITS,
                                              parity=serial.PARITY_EVEN, stopbits=serial.STOPBITS_ONE,
                                              timeout=min(0.05, self.reply_timeout), write_timeout=1.0)
        except (serial.SerialException, ValueError, OSError, termios.error) as exc:
            self._ser = None
            raise PortError(f"{self._who}: port {self.port!r} did not open ({exc}); check the URL or "
                            f"device path, that the cable is plugged in and no other program holds the port") from exc
        self._decoder.clear()

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass

    def _first_contact(self) -> Frame:
        """The first status answer, or a typed error saying whether the line is silent or speaks garbage."""
        bad_before = self.bad_frames
        for _ in range(MISSES_BEFORE_OFFLINE):
            reply = self._status_request()
            if reply is not None:
                return reply
        if self.bad_frames > bad_before:
            raise ProtocolError(
                f"{self._who} on {self.port} answers with bytes that are not ID-003 frames "
                f"({self.bad_frames - bad_before} bad, last: {self.last_protocol_error}); check that the device "
                f"speaks JCM ID-003 (not SSP or ccNet) and that the line is 9600 baud 8E1")
        raise DeviceTimeout(
            f"{self._who}: no answer on {self.port} to {MISSES_BEFORE_OFFLINE} status requests "
            f"({self.reply_timeout:g} s each); check that the validator is powered, the cable and the port are right, "
            f"and the device is set to ID-003")

    def _read_identity(self) -> None:
        version = self._get_text(Command.GET_VERSION)
        boot = self._get_text(Command.GET_BOOT_VERSION)
        model, _, firmware = version.partition(" ")
        extra = {"protocol": "ID-003", "version": version, "boot_version": boot}
        currency = self._configured_currency or version_currency(version)
        if not currency:
            currency = "XXX"
            self._set_state(DeviceState.STARTING, "validator currency unknown: set the validator's currency in the "
                                                  "configuration (the device version string does not name it)")
        self.currency = currency
        if self._override is not None:
            table = {code: Fiat(minor, currency) for code, minor in self._override.items()}
            extra["denominations_from"] = "configuration"
        else:
            table = self._read_currency_assign(currency, extra)
            extra["denominations_from"] = "device" if table else "none"
        self._table = table
        self._info = DeviceInfo(model=model, firmware=firmware or version, serial="", extra=extra)

    def _ask(self, command: Command, attempts: int = MISSES_BEFORE_OFFLINE) -> Frame | None:
        """A getter's answer (or INVALID COMMAND), retried: a lost reply must not read as "no table"."""
        for _ in range(attempts):
            reply = self._transact(Frame(command), lambda f: f.code in (command, Status.INVALID_COMMAND))
            if reply is not None:
                return reply
        return None

    def _read_currency_assign(self, currency: str, extra: dict[str, str]) -> dict[int, Fiat]:
        reply = self._ask(Command.GET_CURRENCY_ASSIGN)
        if reply is None:
            # Without the table every note would be returned as unknown: refuse to
            # start rather than run a validator that takes nothing.
            raise DeviceTimeout(
                f"{self._who} on {self.port} did not answer the currency-assign request (0x8A) after "
                f"{MISSES_BEFORE_OFFLINE} tries; check the line, or set the denominations in the configuration")
        if reply.code == Status.INVALID_COMMAND:
            self._set_state(DeviceState.STARTING, "validator does not report its denominations (0x8A refused): "
                                                  "set them in the configuration; every note is returned until then")
            return {}
        try:
            entries = parse_currency_assign(reply.data)
        except MessageError as exc:
            raise ProtocolError(f"{self._who} on {self.port}: {exc}") from exc
        table: dict[int, Fiat] = {}
        digits = minor_digits(currency)
        for entry in entries:
            try:
                table[entry.escrow_code] = Fiat(entry.minor_units(digits), currency)
            except MessageError as exc:
                log.warning("%s: %s", self.name, exc)
        if entries:
            extra["country_code"] = _hex(entries[0].country_code)
        return table

    def _get_text(self, command: Command) -> str:
        reply = self._ask(command)
        if reply is None or reply.code != command:
            return ""
        return reply.data.decode("ascii", "replace").strip("\x00 ")

    def _initialize(self) -> None:
        """Reset, wait through INITIALIZE, send the settings; the acceptor stays inhibited
        until the application enables it."""
        deadline = time.monotonic() + self.init_timeout
        while True:
            ack = self._transact(Frame(Command.RESET), lambda f: f.code == Status.ACK)
            if ack is not None:
                break
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"{self._who} on {self.port} did not acknowledge RESET "
                                    f"within {self.init_timeout:g} s")
        self._note = None
        while True:
            if self._stop.wait(min(0.02, self.poll_interval)):
                return
            reply = self._status_request()
            if reply is not None and reply.code in _POWER_UP:
                # The acceptor missed the reset (or power-cycled again): ask once more.
                self._transact(Frame(Command.RESET), lambda f: f.code == Status.ACK)
            elif reply is not None and reply.code != Status.INITIALIZE:
                break
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"{self._who} on {self.port} stayed in INITIALIZE for "
                                    f"{self.init_timeout:g} s after RESET; check the mechanism for a stuck note")
        with self._lock:
            inhibit = b"\x00" if self._want_enabled else b"\x01"
        mask = self._wanted_mask()
        self._sent_mask = None
        for command, data in ((Command.SET_ENABLE, mask), (Command.SET_SECURITY, b"\x00\x00"),
                              (Command.SET_OPTIONAL_FUNCTION, b"\x00\x00"), (Command.SET_INHIBIT, inhibit)):
            echo = self._transact(Frame(command, data), lambda f, c=command: f.code in (c, Status.INVALID_COMMAND))
            if echo is None or echo != Frame(command, data):
                log.warning("%s: setting %s %s not echoed (got %r)", self.name, command.name, data.hex(), echo)
            if command == Command.SET_ENABLE and echo is not None:
                # Echoed, or refused by a unit without the feature: either way, not again.
                self._sent_mask = mask
        self._last_status = None

    # -- wire -----------------------------------------------------------------------------

    def _note_bad(self, error: ProtocolError) -> None:
        self.bad_frames += 1
        self.last_protocol_error = error
        log.debug("%s: bad frame on %s: %s", self.name, self.port, error)

    def _transact(self, frame: Frame, expect: Callable[[Frame], bool] | None) -> Frame | None:
        """Send one frame and wait reply_timeout for the first good frame that `expect`
        accepts. None on silence or a bad reply: the caller re-polls, never acts on it."""
        ser = self._ser
        if ser is None:
            return None
        # Whatever is still in the pipe is stale (a doubled or late reply): never take it
        # as the answer to this request.
        ser.reset_input_buffer()
        self._decoder.clear()
        ser.write(frame.encode())
        if expect is None:
            return None
        deadline = time.monotonic() + self.reply_timeout
        while True:
            chunk = ser.read(1)
            if chunk:
                waiting = ser.in_waiting
                if waiting:
                    chunk += ser.read(waiting)
                spoiled = False
                for item in self._decoder.feed(chunk):
                    if isinstance(item, ProtocolError):
                        self._note_bad(item)
                        spoiled = True
                    elif expect(item):
                        return item
                if spoiled and not self._decoder.pending:
                    return None
            if time.monotonic() >= deadline:
                for item in self._decoder.expire():
                    if isinstance(item, ProtocolError):
                        self._note_bad(item)
                return None

    def _status_request(self) -> Frame | None:
        reply = self._transact(Frame(Command.STATUS_REQUEST), lambda f: f.code != Status.ACK)
        if reply is None:
            return None
        try:
            check_status(reply)
        except MessageError as exc:
            self._note_bad(exc)
            return None
        return reply

    # -- events -----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        emit_safely(self._sink, event, self.name)

    def _set_state(self, state: DeviceState, detail: str, code: str | None = None) -> None:
        self._state = state
        if self._emitted_status == (state, detail):
            return
        self._emitted_status = (state, detail)
        self._emit(DeviceStatusChanged(device=self.name, state=state, detail=detail, code=code))

    def _set_cashbox(self, status: UnitStatus) -> None:
        if status != self._cashbox:
            self._cashbox = status
            self._emit(CashboxChanged(device=self.name, status=status))

    # -- poll loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._cycle()
            except (serial.SerialException, OSError) as exc:
                log.warning("%s: port %s failed: %s", self.name, self.port, exc)
                self._close_port()
                self._miss(f"port {self.port} failed ({exc})")
            except Exception:
                log.exception("%s: poll cycle failed; polling on", self.name)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _cycle(self) -> None:
        if self._ser is None:
            try:
                self._open_port()
            except PortError as exc:
                self._miss(str(exc))
                self._check_resolve(None)
                return
        bad_before = self.bad_frames
        reply = self._status_request()
        if reply is None:
            if self.bad_frames > bad_before:
                self._miss(f"corrupt or truncated replies from the validator on {self.port} "
                           f"(last: {self.last_protocol_error})")
            else:
                self._miss(f"no answer from the validator on {self.port}")
            self._check_resolve(None)
            return
        self._misses = 0
        self._on_status(reply)
        self._check_resolve(reply)

    def _miss(self, why: str) -> None:
        self._misses += 1
        if self._misses >= MISSES_BEFORE_OFFLINE:
            self._set_state(DeviceState.OFFLINE, f"{why}: {MISSES_BEFORE_OFFLINE} or more status requests in a "
                                                 f"row without a valid answer; check the validator's power and cable")

    def _on_status(self, frame: Frame) -> None:
        status = Status(frame.code)
        now = time.monotonic()
        if status in _COMPLAINTS:
            # Not a state: the device says it did not take our last frame. Nothing is
            # read into it; the command is resent on the next cycle.
            self._on_complaint(status)
            return
        self._device_complaint = None
        self._comm_errors = 0
        key = (frame.code, frame.data)
        if key != self._last_status:
            self._last_status = key
            self._status_since = now
        if status != Status.CHEATED:
            self._fraud_reported = False

        if status in (Status.ENABLE, Status.DISABLE):
            self._on_idle(status)
        elif status == Status.STACKER_NEARLY_FULL:
            # A warning from an idle unit that still takes notes: the cashbox wants emptying soon.
            self._online()
            self._set_cashbox(UnitStatus.HIGH)
        elif status == Status.ACCEPTING:
            self._online()
            if self._note is not None and (self._note.credited or self._note.sent == "return"):
                self._note = None
        elif status in _IN_ESCROW:
            self._online()
            self._on_escrow(frame.data[0] if status == Status.ESCROW else None, now)
        elif status == Status.STACKING:
            self._online()
        elif status == Status.VEND_VALID:
            self._online()
            self._on_vend_valid()
        elif status == Status.STACKED:
            self._online()
            note = self._note
            if note is not None and not note.stacked_reported:
                note.stacked_reported = True
                self._emit(NoteStacked(device=self.name, value=note.value))
        elif status == Status.REJECTING:
            self._online()
            self._on_rejecting(frame.data[0])
        elif status == Status.RETURNING:
            self._online()
            note = self._note
            if note is not None and not note.returned_reported:
                note.returned_reported = True
                self._settled(note)
                self._emit(NoteReturned(device=self.name, value=note.value, reason="returned by the acceptor"))
        elif status in _POWER_UP:
            if not self._report_power_up(status):
                return          # a note's credit is not durable yet: no reset over it
            self._initialize()
        elif status == Status.STACKER_FULL:
            self._set_cashbox(UnitStatus.FULL)
            self._set_state(DeviceState.USER_ERROR, "stacker full: empty the cashbox", _hex(status))
        elif status == Status.STACKER_OPEN:
            self._set_cashbox(UnitStatus.MISSING)
            self._set_state(DeviceState.USER_ERROR, "stacker open or cashbox removed: close or replace the cashbox",
                            _hex(status))
        elif status == Status.ACCEPTOR_JAM:
            self._set_state(DeviceState.HARDWARE_ERROR, "acceptor jam: open the acceptor head and remove the note",
                            _hex(status))
        elif status == Status.STACKER_JAM:
            self._set_state(DeviceState.HARDWARE_ERROR, "stacker jam: take out the cashbox and clear the stacker",
                            _hex(status))
        elif status == Status.PAUSE:
            self._set_state(DeviceState.BUSY, "pause: a second note was pushed in while stacking; remove it",
                            _hex(status))
        elif status == Status.CHEATED:
            if not self._fraud_reported:
                self._fraud_reported = True
                self._emit(FraudDetected(device=self.name, detail="the acceptor detected a cheat attempt "
                                                                  "(note on a string or tape, or a fake)"))
            self._set_state(DeviceState.FRAUD_ATTEMPT, "cheated: the acceptor detected a cheat attempt",
                            _hex(status))
        elif status == Status.FAILURE:
            code = frame.data[0]
            self._set_state(DeviceState.HARDWARE_ERROR,
                            f"failure {_hex(code)}: {failure_name(code)}; the validator needs service",
                            f"{_hex(status)}/{_hex(code)}")
        # INITIALIZE needs nothing here: the watchdog catches one that never ends.
        self._watchdog(status, now)
        self._apply_inhibit(status)

    def _on_complaint(self, status: Status) -> None:
        if status == Status.COMMUNICATION_ERROR:
            # A bad-CRC frame gets no reply; the unit says so at the next status request.
            # One is line noise; a run of them is a line that needs a technician.
            self._comm_errors += 1
            if self._comm_errors >= MISSES_BEFORE_OFFLINE:
                self._set_state(DeviceState.OFFLINE,
                                f"communication errors: the validator on {self.port} received {self._comm_errors} "
                                f"corrupted frames from this host in a row; check the cable, shielding and that the "
                                f"line is 9600 baud 8E1", _hex(status))
                return
        if self._device_complaint != status:
            self._device_complaint = status
            self._emit(DeviceStatusChanged(device=self.name, state=self._state, code=_hex(status),
                                           detail=f"validator reported {status_name(status)}; resending"))

    def _online(self) -> None:
        if self._state != DeviceState.ONLINE:
            self._set_state(DeviceState.ONLINE, "ready")

    def _on_idle(self, status: Status) -> None:
        # A nearly-full cashbox stays "high" until it is taken out (MISSING) and put back.
        if self._cashbox in (UnitStatus.FULL, UnitStatus.MISSING):
            self._set_cashbox(UnitStatus.OK)
        self._set_state(DeviceState.ONLINE, "ready")
        note = self._note
        if note is not None and not note.credited and not note.returned_reported and note.sent == "return":
            note.returned_reported = True
            self._emit(NoteReturned(device=self.name, value=note.value, reason="returned on request"))
        if note is not None and (note.credited and note.stacked_reported or note.returned_reported or note.sent != "stack"):
            self._note = None

    def _wanted_mask(self) -> bytes:
        """The 0xC0 data for the accept list: the unit itself refuses the other notes."""
        with self._lock:
            accept = self._accept
        if accept is None:
            return b"\x00\x00"
        return denomination_mask(code for code, value in self._table.items()
                                 if value.minor not in accept and denomination_bit(code) is not None)

    def _apply_inhibit(self, status: Status) -> None:
        # Settings only while idle: a real unit refuses them with a note in the path.
        if status not in (Status.ENABLE, Status.DISABLE):
            return
        mask = self._wanted_mask()
        if mask != self._sent_mask:
            echo = self._transact(Frame(Command.SET_ENABLE, mask),
                                  lambda f: f.code in (Command.SET_ENABLE, Status.INVALID_COMMAND))
            if echo == Frame(Command.SET_ENABLE, mask):
                self._sent_mask = mask
            elif echo is not None and echo.code == Status.INVALID_COMMAND:
                # A unit without per-denomination inhibit: do not ask on every poll. The
                # driver still returns any note outside the accept list at escrow.
                log.warning("%s: the validator refused the denomination mask %s (0xC0); notes outside the "
                            "accept list are returned at escrow instead", self.name, mask.hex(" "))
                self._sent_mask = mask
        with self._lock:
            want = self._want_enabled
        if status == Status.ENABLE and not want:
            self._transact(Frame(Command.SET_INHIBIT, b"\x01"), lambda f: f.code == Command.SET_INHIBIT)
        elif status == Status.DISABLE and want:
            self._transact(Frame(Command.SET_INHIBIT, b"\x00"), lambda f: f.code == Command.SET_INHIBIT)

    def _on_escrow(self, code: int | None, now: float) -> None:
        """ESCROW (with its code) or HOLDING (code None, the note we held): send the
        decision when there is one, else HOLD the note so the unit keeps it."""
        announce: NoteEscrowed | None = None
        with self._lock:
            note = self._note
            if code is None:
                if note is None or note.credited or note.returned_reported:
                    # Held by an earlier run of the host: nobody here can decide on it.
                    note = _Note(code=-1, value=None, seen_at=now,
                                 own_return_reason="held by an earlier run of the host; returned")
                    self._note = note
                elif note.sent:
                    # Our decision was acknowledged yet the unit still holds the note: resend.
                    note.sent = ""
            elif note is None or note.code != code or note.sent or note.returned_reported or note.credited:
                if note is not None and note.sent == "stack" and not note.credited and note.code == code \
                        and not note.returned_reported:
                    # Our STACK was acknowledged yet the note is still in escrow: the ACK
                    # was stale or lost. Send it again below.
                    note.sent = ""
                else:
                    note, announce = self._new_escrow(code, now)
        if announce is not None:
            # Outside the lock: the application may answer stack() from inside its sink.
            self._emit(announce)
        with self._lock:
            if note.returned_reported or note.credited:
                return
            if note.own_return_reason:
                decision = "return"
            elif note.app_decision:
                decision = note.app_decision
            elif now - note.seen_at > self.escrow_timeout:
                note.own_return_reason = f"no stack/return decision within {self.escrow_timeout:g} s"
                decision = "return"
            elif self.hold_every is not None and now - (note.held_at or note.seen_at) >= self.hold_every:
                decision = "hold"
            else:
                return
        if decision == "hold":
            ack = self._transact(Frame(Command.HOLD), lambda f: f.code in (Status.ACK, Status.INVALID_COMMAND))
            if ack is not None and ack.code == Status.ACK:
                note.held_at = time.monotonic()
            return
        command = Command.STACK_1 if decision == "stack" else Command.RETURN
        ack = self._transact(Frame(command), lambda f: f.code in (Status.ACK, Status.INVALID_COMMAND))
        if ack is None or ack.code != Status.ACK:
            return
        # The watchdog measures from the first decision the device acknowledged, so a
        # device that keeps acknowledging STACK without moving is still caught.
        note.sent, note.sent_at = decision, note.sent_at or time.monotonic()
        if decision == "stack":
            self._unsettled = note
            self._last_stack_settled = False
        elif not note.returned_reported:
            note.returned_reported = True
            self._emit(NoteReturned(device=self.name, value=note.value,
                                    reason=note.own_return_reason or "returned on request"))

    def _new_escrow(self, code: int, now: float) -> tuple[_Note, NoteEscrowed | None]:
        value = self._table.get(code)
        note = _Note(code=code, value=value, seen_at=now)
        self._note = note
        if value is None:
            note.own_return_reason = "unknown denomination"
            return note, NoteEscrowed(device=self.name, value=None, code=_hex(code))
        if self._accept is not None and value.minor not in self._accept:
            note.own_return_reason = f"{value} is not accepted now"
            return note, None
        note.announced = True
        return note, NoteEscrowed(device=self.name, value=value, code=_hex(code))

    def _settled(self, note: _Note) -> None:
        """`note` reached its end (credited or returned): resolve_note() has nothing to ask."""
        if self._unsettled is note:
            self._unsettled = None
            self._last_stack_settled = True

    def _on_vend_valid(self) -> None:
        note = self._note
        if note is None:
            # Started mid-note (the host restarted after STACK): ID-003 does not repeat
            # the escrow code, so the value is unknown here; the application's recorder
            # takes it from its journal, where the stack decision was written.
            note = _Note(code=-1, value=None, seen_at=time.monotonic(), sent="stack")
            self._note = note
        code = _hex(note.code) if note.code >= 0 else ""
        event = NoteCredited(device=self.name, value=note.value, code=code)  # type: ignore[arg-type]
        recorder = self._recorder
        if recorder is None:
            self._set_state(self._state, "vend valid held: no credit recorder is set, so the credit cannot be "
                                         "made durable and is not acknowledged")
            return
        if not note.recorded:
            # A VEND VALID repeated because our ACK was lost is the same note: it was
            # recorded once already, and is acknowledged again without a second record.
            try:
                recorder(event)
            except Exception as exc:
                # No ACK: the acceptor keeps repeating VEND VALID until the credit is durable.
                log.error("%s: credit recorder failed, VEND VALID not acknowledged: %s", self.name, exc)
                self._set_state(self._state, f"vend valid held: the credit could not be recorded ({exc})")
                return
            note.recorded = True
        self._transact(Frame(Command.ACK), None)
        if not note.credited:
            note.credited = True
            self._settled(note)
            self._emit(event)

    def _on_rejecting(self, reason: int) -> None:
        note = self._note
        if note is not None and note.returned_reported:
            return
        if note is not None and note.announced and not note.credited:
            # A note the application was told of went back (the unit's own return after
            # escrow, or a stack that failed): the application must undo its decision.
            note.returned_reported = True
            self._settled(note)
            self._emit(NoteReturned(device=self.name, value=note.value,
                                    reason=f"the validator gave it back by itself: {reject_reason_name(reason)}"))
            return
        if note is None or note.credited:
            note = _Note(code=-1, value=None, seen_at=time.monotonic())
            self._note = note
        note.returned_reported = True
        self._emit(NoteRejected(device=self.name, reason=reject_reason_name(reason), code=_hex(reason)))

    def _report_power_up(self, status: int) -> bool:
        """Report a power-up and settle the note it names. False when that note's credit
        could not be made durable: the caller must not reset over it (the unit keeps
        reporting 0x42 until the next try)."""
        note = self._note if self._note is not None else self._unsettled
        credited_now = False
        if status == Status.POWER_UP_BILL_IN_STACKER and note is not None and note.sent == "stack" \
                and not note.credited and not note.outcome_told:
            # It stalled mid-stack and reset: the note is in the stacker and the reset
            # stacks it. That is this customer's credit, at the value we decided on.
            if not self._credit_from_stacker(note):
                return False
            credited_now = True
        last = "no note was in flight"
        if note is not None:
            value = str(note.value) if note.value is not None else "unknown value"
            settled = ("credited at this power-up (no vend valid came)" if credited_now
                       else f"vend valid {'acknowledged' if note.credited else 'NOT acknowledged'}")
            last = f"last note {_hex(note.code) if note.code >= 0 else '?'} ({value}), {settled}"
        if status == Status.POWER_UP_BILL_IN_ACCEPTOR:
            detail = f"powered up with a bill in the acceptor: the reset returns it to the customer; {last}"
        elif status == Status.POWER_UP_BILL_IN_STACKER:
            detail = (f"powered up with a bill in the stacker: the reset stacks it without a vend valid; {last}; "
                      f"reconcile with the journal")
        else:
            detail = f"validator powered up (reset or power loss); re-initialising; {last}"
        self._emitted_status = None
        self._set_state(DeviceState.STARTING, detail, _hex(status))
        if status == Status.POWER_UP_BILL_IN_ACCEPTOR and (note is None or not (
                note.returned_reported or note.credited or note.outcome_told)):
            if note is not None:
                note.returned_reported = True
                self._settled(note)
            self._emit(NoteReturned(device=self.name, value=note.value if note else None,
                                    reason="power-up with a bill in the acceptor"))
        elif status == Status.POWER_UP_BILL_IN_STACKER and note is not None and note.credited \
                and not note.stacked_reported:
            note.stacked_reported = True
            self._emit(NoteStacked(device=self.name, value=note.value))
        self._note = None
        return True

    def _credit_from_stacker(self, note: _Note) -> bool:
        event = NoteCredited(device=self.name, value=note.value,
                             code=_hex(note.code) if note.code >= 0 else "")  # type: ignore[arg-type]
        recorder = self._recorder
        if recorder is None:
            self._set_state(self._state, "bill in the stacker after a power-up not settled: no credit recorder "
                                         "is set, so the credit cannot be made durable")
            return False
        if not note.recorded:
            try:
                recorder(event)
            except Exception as exc:
                log.error("%s: credit recorder failed for the bill in the stacker; not resetting: %s", self.name, exc)
                self._set_state(self._state, f"bill in the stacker held: the credit could not be recorded ({exc})")
                return False
            note.recorded = True
        note.credited = True
        self._settled(note)
        self._emit(event)
        return True

    # -- resolve_note -------------------------------------------------------------------------

    def _check_resolve(self, reply: Frame | None) -> None:
        """Answer a pending resolve_note() from what the device just said, or at its
        deadline. VEND VALID, 0x41/0x42, RETURNING and REJECTING already settled the note
        through the normal path; this only says "unknown" when the device cannot tell."""
        with self._lock:
            deadline = self._resolve_deadline
        if deadline is None:
            return
        note = self._unsettled
        status = reply.code if reply is not None else None
        said = status_name(status) if status is not None else "no answer"
        current = self._note
        if note is None and current is not None and current.app_decision == "stack" \
                and not (current.sent or current.credited or current.returned_reported):
            # The device has not taken our STACK yet: the note is still in escrow and its
            # own events (credit, or the unit's return) will answer. Saying "unknown" now
            # would give it two outcomes.
            with self._lock:
                self._resolve_deadline = None
            log.info("%s: resolve_note: the note is still in escrow, STACK not yet taken", self.name)
            return
        if note is None:
            if self._last_stack_settled:
                # Its settled event already went to the application, which has it queued.
                with self._lock:
                    self._resolve_deadline = None
                log.info("%s: resolve_note: the last note told to stack is already settled", self.name)
                return
            if status == Status.VEND_VALID:
                return          # the normal path credits it on this cycle or the next
            self._answer_unknown(None, f"this driver has no record of a note told to stack and the validator "
                                       f"reports {said}; count the cashbox")
            return
        idle = status in (Status.ENABLE, Status.DISABLE, Status.STACKER_NEARLY_FULL, Status.POWER_UP)
        if idle:
            self._answer_unknown(note, f"the validator reports {said} and never reported VEND VALID for it")
        elif time.monotonic() >= deadline:
            self._answer_unknown(note, f"the validator still reports {said} after {self.resolve_timeout:g} s")

    def _answer_unknown(self, note: _Note | None, detail: str) -> None:
        with self._lock:
            self._resolve_deadline = None
        value = None
        code = None
        if note is not None:
            note.outcome_told = True
            value = note.value
            code = _hex(note.code) if note.code >= 0 else None
            self._settled(note)
        self._emit(NoteOutcomeUnknown(device=self.name, value=value, code=code,
                                      detail=f"{self._who}: cannot tell where the note went: {detail}"))

    def _finish_note_in_flight(self) -> None:
        """At open the acceptor is mid-note (the host restarted): settle that note
        before the reset, crediting a pending VEND VALID and returning an escrow no
        one decided on."""
        deadline = time.monotonic() + self.init_timeout
        status: int | None = None
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                # Never reset over a note we could not settle: a reset would stack an
                # uncredited note or lose track of one.
                raise DeviceError(
                    f"{self._who} on {self.port} still holds a note "
                    f"({status_name(status) if status is not None else 'no answer'}) after "
                    f"{self.init_timeout:g} s at start-up; check the credit journal and the acceptor, then retry")
            reply = self._status_request()
            if reply is None:
                continue
            status = reply.code
            if status == Status.ESCROW:
                code = reply.data[0]
                if self._note is None or self._note.code != code:
                    self._note = _Note(code=code, value=self._table.get(code), seen_at=time.monotonic(),
                                       own_return_reason="returned at start-up: the kiosk was not ready to decide")
                self._on_escrow(code, time.monotonic())
            elif status in _MID_NOTE:
                self._on_status(reply)
            else:
                return
            self._stop.wait(min(0.05, self.poll_interval))

    # -- watchdog ----------------------------------------------------------------------------

    def _watchdog(self, status: Status, now: float) -> None:
        stuck_for = now - self._status_since
        note = self._note
        if status in _IN_ESCROW:
            # Waiting for the application (and HOLDing) is not being stuck; a decision
            # the device acknowledged and never carried out is.
            if note is None or not note.sent:
                return
            stuck_for = now - note.sent_at
        elif status not in _TRANSIENT:
            return
        if stuck_for <= self.stuck_timeout:
            return
        fired = (self._last_status or (0, b""))
        if self._watchdog_fired_for == (fired[0], fired[1], self._status_since):
            return
        self._watchdog_fired_for = (fired[0], fired[1], self._status_since)
        self._emitted_status = None
        self._set_state(DeviceState.HARDWARE_ERROR,
                        f"validator stuck in {status_name(status)} for {stuck_for:.1f} s "
                        f"(limit {self.stuck_timeout:g} s): reset sent", _hex(status))
        self._report_lost_note(status)
        self._initialize()

    def _report_lost_note(self, status: Status) -> None:
        note = self._note
        if note is None:
            return
        if status in (Status.ACCEPTING, Status.ESCROW, Status.HOLDING, Status.RETURNING) \
                and not note.returned_reported and not note.credited:
            note.returned_reported = True
            self._settled(note)
            self._emit(NoteReturned(device=self.name, value=note.value, reason="returned by the watchdog reset"))
