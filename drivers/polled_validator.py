"""Host-side machinery every polled bill validator shares (JCM ID-003, CashCode ccNet).

One poll thread owns the port; this class holds what does not depend on the protocol:
enable/disable, the escrow decision (stack, return, HOLD while the application decides),
the credit step at the settled event (recorder first, ACK second, event third, once per
note), the poll loop with its reconnect and offline count, the stuck-state watchdog and
status reporting. A protocol package subclasses it with its frames, command bytes, state
mapping and how its device answers resolve_note(); it keeps no money totals either.
"""

from __future__ import annotations

import logging
import termios
import threading
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Mapping

import serial

from hal.device import DeviceInfo
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import (
    CashboxChanged,
    DeviceStatusChanged,
    Event,
    EventSink,
    FraudDetected,
    NoteCredited,
    NoteEscrowed,
    emit_safely,
)
from hal.money import Fiat
from hal.status import DeviceState, UnitStatus
from hal.validator import BillValidator, CreditRecorder

log = logging.getLogger(__name__)

# A device that misses this many requests in a row is reported offline.
MISSES_BEFORE_OFFLINE = 3


def hex_code(code: int) -> str:
    return f"0x{code:02X}"


@dataclass
class PolledNote:
    """One note's trip through the unit, from escrow to stacked or returned. `code` is the
    protocol's name for the note (ID-003 escrow code, ccNet bill type; -1 when unknown)."""

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
    credited: bool = False               # settled event recorded (and acknowledged where it needs one)
    returned_reported: bool = False


class PolledValidator(BillValidator):
    """A polled bill validator on `port` (a pyserial URL); subclasses speak the protocol."""

    # What the subclass speaks, for messages and the poll thread's name.
    PROTOCOL: ClassVar[str] = ""
    THREAD_TAG: ClassVar[str] = ""
    # How messages name one request of the poll loop ("status requests", "polls") and its answers.
    REQUESTS: ClassVar[str] = "requests"
    ANSWERS: ClassVar[str] = "answers"
    # States the mechanism passes through (staying longer than stuck_timeout means it hung),
    # and the two escrow states, watched from the decision the device acknowledged.
    TRANSIENT: ClassVar[frozenset[int]] = frozenset()
    IN_ESCROW: ClassVar[frozenset[int]] = frozenset()
    # Fault states and what they mean: code -> (device state, what to do, cashbox status or None).
    FAULTS: ClassVar[Mapping[int, tuple[DeviceState, str, UnitStatus | None]]] = {}
    NOTE_TYPE: ClassVar[type[PolledNote]] = PolledNote

    def __init__(self, port: str, *, name: str, currency: str | None, denominations: Mapping[str, int] | None,
                 decoder: object, poll_interval: float, reply_timeout: float, escrow_timeout: float,
                 hold_every: float | None, stuck_timeout: float, init_timeout: float, resolve_timeout: float):
        self.port = port
        self.name = name
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout
        self.escrow_timeout = escrow_timeout
        self.hold_every = hold_every
        self.stuck_timeout = stuck_timeout
        self.init_timeout = init_timeout
        self.resolve_timeout = resolve_timeout
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
        self._decoder = decoder
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._want_enabled = False
        self._accept: frozenset[int] | None = None
        self._note: PolledNote | None = None
        # The last answer (code and data) and since when the unit has given it: the watchdog's clock.
        self._last_answer: tuple[int, object] | None = None
        self._answer_since = 0.0
        self._misses = 0
        self._watchdog_fired_for: tuple[tuple[int, object] | None, float] | None = None
        self._fraud_reported = False
        # Counters a technician (and the tests) can read.
        self.bad_frames = 0
        self.last_protocol_error: ProtocolError | None = None

    @property
    def _who(self) -> str:
        """How messages name this unit: "<protocol> validator", plus its name when it has its own."""
        return f"{self.PROTOCOL} validator" if self.name == "validator" else \
            f"{self.PROTOCOL} validator {self.name!r}"

    # -- what a protocol supplies ------------------------------------------------------------

    @abstractmethod
    def _parse_note_key(self, key: object) -> int:
        """A configured denomination key as the protocol's note code; ConfigurationError if not one."""
        raise NotImplementedError

    @abstractmethod
    def _serial_settings(self) -> dict:
        """pyserial settings of the line (baudrate, parity, stop bits)."""
        raise NotImplementedError

    @abstractmethod
    def _line_hint(self) -> str:
        """What to check when the line answers with bytes of another protocol."""
        raise NotImplementedError

    def _is_ours(self, frame) -> bool:
        """Whether a good frame is meant for this host (a bus protocol filters by address)."""
        return True

    @abstractmethod
    def _request(self):
        """One poll of the loop: the parsed answer, or None on silence or a bad reply."""
        raise NotImplementedError

    @abstractmethod
    def _start_up(self) -> None:
        """From first contact to an initialised unit, settling any note left mid-way."""
        raise NotImplementedError

    @abstractmethod
    def _refuse_notes(self) -> None:
        """At close: leave the unit refusing notes (nobody listens for them now)."""
        raise NotImplementedError

    @abstractmethod
    def _initialize(self) -> None:
        """Reset the unit, wait through its initialisation and send the settings; the poll
        loop and the watchdog call it too."""
        raise NotImplementedError

    def _before_request(self) -> None:
        """Each cycle, with the port open, before the poll."""

    @abstractmethod
    def _on_answer(self, answer) -> None:
        """Act on one good answer of the poll loop."""
        raise NotImplementedError

    def _after_silence(self) -> None:
        """A cycle ended without a good answer (or without a port)."""

    def _went_offline(self) -> None:
        """The unit was just counted offline (again)."""

    @abstractmethod
    def _send_hold(self) -> bool:
        """Send HOLD for the note in escrow; True when the device acknowledged it."""
        raise NotImplementedError

    @abstractmethod
    def _send_decision(self, decision: str) -> bool:
        """Send STACK or RETURN; True when the device acknowledged it."""
        raise NotImplementedError

    def _decision_taken(self, note: PolledNote, decision: str) -> None:
        """The device acknowledged `decision` for `note`."""

    def _on_credited(self, note: PolledNote, event: Event) -> None:
        """`note` was just credited with `event` (before the application hears of it)."""

    @abstractmethod
    def _state_name(self, code: int) -> str:
        """The protocol's name of a state code, for messages."""
        raise NotImplementedError

    def _watchdog_settles(self, state: int, note: PolledNote) -> None:
        """The watchdog resets the unit in `state`: settle what the reset does to `note`."""

    # -- configuration ----------------------------------------------------------------------

    def _parse_override(self, denominations: Mapping[str, int], currency: str | None) -> dict[int, int]:
        if not currency:
            raise ConfigurationError("validator: 'denominations' is set but 'currency' is not; "
                                     "name the currency the minor units are in (e.g. currency = \"EUR\")")
        table: dict[int, int] = {}
        for key, minor in denominations.items():
            try:
                code = self._parse_note_key(key)
            except ConfigurationError as exc:
                raise ConfigurationError(f"validator denominations: {exc}") from None
            if isinstance(minor, bool) or not isinstance(minor, int) or minor <= 0:
                raise ConfigurationError(f"validator denominations: key {key!r} must map to a positive integer "
                                         f"of minor units (e.g. 1000 for 10.00), got {minor!r}")
            table[code] = minor
        return table

    # -- hal.BillValidator ----------------------------------------------------------------

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
        """The protocol's note code -> value, as the driver will use it."""
        return {hex_code(code): value for code, value in sorted(self._table.items())}

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

    def _decide(self, decision: str) -> None:
        with self._lock:
            note = self._note
            if note is None or note.sent or note.own_return_reason or note.value is None \
                    or note.returned_reported or note.credited:
                raise DeviceError(f"{self._who} on {self.port}: no note waiting for a decision in escrow "
                                  f"(it may have timed out after {self.escrow_timeout:g} s and been returned)")
            note.app_decision = decision
        self._wake.set()

    # -- open / close -------------------------------------------------------------------------

    def open(self, sink: EventSink) -> None:
        if self._thread is not None:
            raise DeviceError(f"{self._who} on {self.port} is already open")
        self._sink = sink
        self._stop.clear()
        self._open_port()
        try:
            self._start_up()
            # One cycle now, so that state and events are current when open() returns.
            self._cycle()
        except BaseException:
            self._close_port()
            raise
        self._thread = threading.Thread(target=self._run, name=f"{self.THREAD_TAG} {self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(2.0, 3 * self.reply_timeout + self.poll_interval))
        if self._ser is not None:
            try:
                self._refuse_notes()
            except (serial.SerialException, OSError):
                pass
        self._close_port()

    def _open_port(self) -> None:
        try:
            self._ser = serial.serial_for_url(self.port, bytesize=serial.EIGHTBITS, **self._serial_settings(),
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

    def _first_contact(self):
        """The first answer, or a typed error saying whether the line is silent or speaks garbage."""
        bad_before = self.bad_frames
        for _ in range(MISSES_BEFORE_OFFLINE):
            answer = self._request()
            if answer is not None:
                return answer
        if self.bad_frames > bad_before:
            raise ProtocolError(
                f"{self._who} on {self.port} answers with bytes that are not {self.PROTOCOL} frames "
                f"({self.bad_frames - bad_before} bad, last: {self.last_protocol_error}); {self._line_hint()}")
        raise DeviceTimeout(
            f"{self._who}: no answer on {self.port} to {MISSES_BEFORE_OFFLINE} {self.REQUESTS} "
            f"({self.reply_timeout:g} s each); check that the validator is powered, the cable and the port are "
            f"right, and the device is set to {self.PROTOCOL}")

    # -- wire ---------------------------------------------------------------------------------

    def _note_bad(self, error: ProtocolError) -> None:
        self.bad_frames += 1
        self.last_protocol_error = error
        log.debug("%s: bad frame on %s: %s", self.name, self.port, error)

    def _transact(self, frame, expect: Callable[[object], bool] | None):
        """Send one frame and wait reply_timeout for the first good frame of ours that
        `expect` accepts (expect None: send only). None on silence or a bad reply: the
        caller asks again, never acts on it."""
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
                    elif self._is_ours(item) and expect(item):
                        return item
                if spoiled and not self._decoder.pending:
                    return None
            if time.monotonic() >= deadline:
                for item in self._decoder.expire():
                    if isinstance(item, ProtocolError):
                        self._note_bad(item)
                return None

    # -- events -------------------------------------------------------------------------------

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

    def _online(self) -> None:
        if self._state != DeviceState.ONLINE:
            self._set_state(DeviceState.ONLINE, "ready")

    def _track_answer(self, key: tuple[int, object], cheated: bool, now: float) -> None:
        """Note a good answer: since when the unit says the same thing, and whether a cheat
        report is still current."""
        if key != self._last_answer:
            self._last_answer = key
            self._answer_since = now
        if not cheated:
            self._fraud_reported = False

    def _report_cheat(self, code: int, unit: str) -> None:
        """CHEATED: one FraudDetected per episode, the device state for as long as it lasts."""
        if not self._fraud_reported:
            self._fraud_reported = True
            self._emit(FraudDetected(device=self.name, detail=f"the {unit} detected a cheat attempt "
                                                              f"(note on a string or tape, or a fake)"))
        self._set_state(DeviceState.FRAUD_ATTEMPT, f"cheated: the {unit} detected a cheat attempt", hex_code(code))

    def _report_failure(self, state: int, code: int, name: str) -> None:
        self._set_state(DeviceState.HARDWARE_ERROR, f"failure {hex_code(code)}: {name}; the validator needs service",
                        f"{hex_code(state)}/{hex_code(code)}")

    def _report_fault(self, code: int) -> None:
        """A fault state from the protocol's FAULTS table: the cashbox first, then the device state."""
        state, detail, cashbox = self.FAULTS[code]
        if cashbox is not None:
            self._set_cashbox(cashbox)
        self._set_state(state, detail, hex_code(code))

    # -- poll loop ---------------------------------------------------------------------------

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
            # The port went away (a USB adapter unplugged): open it again each cycle.
            try:
                self._open_port()
            except PortError as exc:
                self._miss(str(exc))
                self._after_silence()
                return
        self._before_request()
        bad_before = self.bad_frames
        answer = self._request()
        if answer is None:
            if self.bad_frames > bad_before:
                self._miss(f"corrupt or truncated {self.ANSWERS} from the validator on {self.port} "
                           f"(last: {self.last_protocol_error})")
            else:
                self._miss(f"no answer from the validator on {self.port}")
            self._after_silence()
            return
        self._misses = 0
        self._on_answer(answer)

    def _miss(self, why: str) -> None:
        self._misses += 1
        if self._misses >= MISSES_BEFORE_OFFLINE:
            self._set_state(DeviceState.OFFLINE, f"{why}: {MISSES_BEFORE_OFFLINE} or more {self.REQUESTS} in a "
                                                 f"row without a valid answer; check the validator's power and cable")
            self._went_offline()

    # -- escrow -------------------------------------------------------------------------------

    def _new_escrow(self, code: int, now: float) -> tuple[PolledNote, NoteEscrowed | None]:
        """A new note in escrow: announce it with its value, or refuse it (unknown, or not
        in the accept list) and tell the application only of an unknown one."""
        value = self._table.get(code)
        note = self.NOTE_TYPE(code=code, value=value, seen_at=now)
        self._note = note
        if value is None:
            note.own_return_reason = "unknown denomination"
            return note, NoteEscrowed(device=self.name, value=None, code=hex_code(code))
        if self._accept is not None and value.minor not in self._accept:
            note.own_return_reason = f"{value} is not accepted now"
            return note, None
        note.announced = True
        return note, NoteEscrowed(device=self.name, value=value, code=hex_code(code))

    def _decide_pending(self, note: PolledNote, now: float, resend: bool = False) -> None:
        """Send the decision for the note in escrow, or HOLD it while the application decides
        (a unit gives an escrowed note back by itself after 10 s; HOLD restarts that clock).
        resend: the device acknowledged a decision yet still holds the note; send it again."""
        if (note.sent and not resend) or note.credited or note.returned_reported:
            return
        with self._lock:
            if resend:
                decision = note.sent
            elif note.own_return_reason:
                decision = "return"
            elif note.app_decision:
                decision = note.app_decision
            elif now - note.seen_at > self.escrow_timeout:
                note.own_return_reason = f"no stack/return decision within {self.escrow_timeout:g} s"
                decision = "return"
            elif self.hold_every is not None and now - max(note.held_at, note.seen_at) >= self.hold_every:
                decision = "hold"
            else:
                return
        if decision == "hold":
            if self._send_hold():
                note.held_at = time.monotonic()
            return
        if not self._send_decision(decision):
            return                               # refused or silence: the next poll says where the note is
        # The watchdog measures from the first decision the device acknowledged, so a
        # device that keeps acknowledging STACK without moving is still caught.
        note.sent, note.sent_at = decision, note.sent_at or time.monotonic()
        self._decision_taken(note, decision)

    # -- credit -------------------------------------------------------------------------------

    def _credit(self, note: PolledNote, event: NoteCredited, ack: Callable[[], None] | None, *,
                no_recorder: str, failed: str, logged: str) -> bool:
        """The settled event for `note`: the recorder makes the credit durable first, then
        the device gets its ACK (`ack`; None where the event needs none), then the
        application gets `event`. A settled event the device repeats because our ACK was
        lost is the same note: acknowledged again, never recorded or reported twice. False
        when the credit could not be made durable (no ACK: the device keeps repeating it);
        the messages say so in the protocol's words."""
        recorder = self._recorder
        if recorder is None:
            self._set_state(self._state, no_recorder)
            return False
        if not note.recorded:
            try:
                recorder(event)
            except Exception as exc:
                log.error("%s: %s: %s", self.name, logged, exc)
                self._set_state(self._state, f"{failed} ({exc})")
                return False
            note.recorded = True
        if ack is not None:
            ack()
        if not note.credited:
            note.credited = True
            self._on_credited(note, event)
            self._emit(event)
        return True

    # -- watchdog -----------------------------------------------------------------------------

    def _watchdog(self, state: int, now: float) -> None:
        stuck_for = now - self._answer_since
        note = self._note
        if state in self.IN_ESCROW:
            # Waiting for the application (and HOLDing) is not being stuck; a decision
            # the device acknowledged and never carried out is.
            if note is None or not note.sent:
                return
            stuck_for = now - note.sent_at
        elif state not in self.TRANSIENT:
            return
        if stuck_for <= self.stuck_timeout:
            return
        fired = (self._last_answer, self._answer_since)
        if self._watchdog_fired_for == fired:
            return
        self._watchdog_fired_for = fired
        self._emitted_status = None
        self._set_state(DeviceState.HARDWARE_ERROR,
                        f"validator stuck in {self._state_name(state)} for {stuck_for:.1f} s "
                        f"(limit {self.stuck_timeout:g} s): reset sent", hex_code(state))
        if note is not None:
            self._watchdog_settles(state, note)
        self._initialize()
