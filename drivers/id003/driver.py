"""Host side of a JCM ID-003 bill validator over any pyserial URL (9600 8E1).

What is ID-003's own lives here: status request polling, the codes and their meaning,
the settings sequence, inhibit and the denomination mask, HOLD timing against the unit's
10 s escrow return, VEND VALID as the settled event (and a power-up with the note in the
stacker), and how resolve_note() is answered. The poll thread, escrow decision, credit
step and watchdog are drivers.polled_validator's. It keeps no money totals.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping

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
from drivers.polled_validator import MISSES_BEFORE_OFFLINE, PolledNote, PolledValidator, hex_code as _hex
from hal.device import DeviceInfo
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, ProtocolError
from hal.events import (
    DeviceStatusChanged,
    Event,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.money import Fiat, minor_digits
from hal.status import DeviceState, UnitStatus

__all__ = ["Id003Validator", "MISSES_BEFORE_OFFLINE", "UNIT_ESCROW_RETURN_S"]

log = logging.getLogger(__name__)

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
# Fault states: what the device is, what a technician does about it, what it says of the cashbox.
_FAULTS = {
    Status.STACKER_FULL: (DeviceState.USER_ERROR, "stacker full: empty the cashbox", UnitStatus.FULL),
    Status.STACKER_OPEN: (DeviceState.USER_ERROR, "stacker open or cashbox removed: close or replace the cashbox",
                          UnitStatus.MISSING),
    Status.ACCEPTOR_JAM: (DeviceState.HARDWARE_ERROR, "acceptor jam: open the acceptor head and remove the note",
                          None),
    Status.STACKER_JAM: (DeviceState.HARDWARE_ERROR, "stacker jam: take out the cashbox and clear the stacker",
                         None),
    Status.PAUSE: (DeviceState.BUSY, "pause: a second note was pushed in while stacking; remove it", None),
}



@dataclass
class _Note(PolledNote):
    """A note's trip, with what ID-003 needs besides: STACKED is its own report after VEND VALID."""

    outcome_told: bool = False           # resolve_note() answered "unknown" for it
    stacked_reported: bool = False


class Id003Validator(PolledValidator):
    """A JCM ID-003 acceptor on `port` (a pyserial URL)."""

    PROTOCOL = "ID-003"
    THREAD_TAG = "id003"
    REQUESTS = "status requests"
    ANSWERS = "replies"
    TRANSIENT = _TRANSIENT
    IN_ESCROW = _IN_ESCROW
    FAULTS = _FAULTS
    NOTE_TYPE = _Note

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
        super().__init__(port, name=name, currency=currency, denominations=denominations, decoder=FrameDecoder(),
                         poll_interval=poll_interval, reply_timeout=reply_timeout, escrow_timeout=escrow_timeout,
                         hold_every=hold_every, stuck_timeout=stuck_timeout, init_timeout=init_timeout,
                         resolve_timeout=resolve_timeout)
        self._device_complaint: int | None = None
        self._comm_errors = 0
        # The last note told to stack whose settled event has not come; kept across a
        # reset so that resolve_note() can still answer for it.
        self._unsettled: _Note | None = None
        self._last_stack_settled = False
        self._resolve_deadline: float | None = None
        self._sent_mask: bytes | None = None

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


    def _parse_note_key(self, key: object) -> int:
        try:
            return parse_escrow_code(str(key))
        except MessageError as exc:
            raise ConfigurationError(str(exc)) from None

    # -- hal.BillValidator ----------------------------------------------------------

    def resolve_note(self) -> None:
        """Ask the device where the note last told to stack went (hal contract). The
        poll thread answers with one event: NoteCredited (VEND VALID, or a power-up
        with the bill in the stacker), NoteReturned (power-up with the bill in the
        acceptor, or returned), or NoteOutcomeUnknown when the device cannot tell
        within resolve_timeout. Nothing when that note's settled event already went out."""
        with self._lock:
            self._resolve_deadline = time.monotonic() + self.resolve_timeout
        self._wake.set()


    # -- open / close -------------------------------------------------------------------

    def _start_up(self) -> None:
        first = self._first_contact()
        self._read_identity()
        if first.code in _MID_NOTE:
            self._finish_note_in_flight()
        elif first.code in _POWER_UP:
            self._report_power_up(first.code)
        self._initialize()

    def _refuse_notes(self) -> None:
        self._transact(Frame(Command.SET_INHIBIT, b"\x01"),
                       lambda f: f.code in (Command.SET_INHIBIT, Status.INVALID_COMMAND))

    def _serial_settings(self) -> dict:
        return {"baudrate": 9600, "parity": serial.PARITY_EVEN, "stopbits": serial.STOPBITS_ONE}

    def _line_hint(self) -> str:
        return "check that the device speaks JCM ID-003 (not SSP or ccNet) and that the line is 9600 baud 8E1"

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
        self._last_answer = None

    # -- wire -----------------------------------------------------------------------------

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

    _request = _status_request

    # -- poll loop ------------------------------------------------------------------------------

    def _after_silence(self) -> None:
        self._check_resolve(None)

    def _on_answer(self, reply: Frame) -> None:
        self._on_status(reply)
        self._check_resolve(reply)

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
        self._track_answer((frame.code, frame.data), status == Status.CHEATED, now)

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
        elif status in _FAULTS:
            self._report_fault(status)
        elif status == Status.CHEATED:
            self._report_cheat(status, "acceptor")
        elif status == Status.FAILURE:
            self._report_failure(status, frame.data[0], failure_name(frame.data[0]))
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
        self._decide_pending(note, now)

    def _send_hold(self) -> bool:
        ack = self._transact(Frame(Command.HOLD), lambda f: f.code in (Status.ACK, Status.INVALID_COMMAND))
        return ack is not None and ack.code == Status.ACK

    def _send_decision(self, decision: str) -> bool:
        command = Command.STACK_1 if decision == "stack" else Command.RETURN
        ack = self._transact(Frame(command), lambda f: f.code in (Status.ACK, Status.INVALID_COMMAND))
        return ack is not None and ack.code == Status.ACK

    def _decision_taken(self, note: PolledNote, decision: str) -> None:
        if decision == "stack":
            self._unsettled = note  # type: ignore[assignment]
            self._last_stack_settled = False
        elif not note.returned_reported:
            # The application hears of the return as soon as the unit takes RETURN.
            note.returned_reported = True
            self._emit(NoteReturned(device=self.name, value=note.value,
                                    reason=note.own_return_reason or "returned on request"))

    def _settled(self, note: PolledNote) -> None:
        """`note` reached its end (credited or returned): resolve_note() has nothing to ask."""
        if self._unsettled is note:
            self._unsettled = None
            self._last_stack_settled = True

    def _on_credited(self, note: PolledNote, event: Event) -> None:
        self._settled(note)

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
        # A VEND VALID repeated because our ACK was lost is the same note: recorded once,
        # acknowledged again (the credit step keeps to that).
        self._credit(note, event, lambda: self._transact(Frame(Command.ACK), None),
                     no_recorder="vend valid held: no credit recorder is set, so the credit cannot be made "
                                 "durable and is not acknowledged",
                     failed="vend valid held: the credit could not be recorded",
                     logged="credit recorder failed, VEND VALID not acknowledged")

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
        # No ACK: a power-up code is not an event the unit waits on; the reset that follows stacks it.
        return self._credit(note, event, None,
                            no_recorder="bill in the stacker after a power-up not settled: no credit recorder "
                                        "is set, so the credit cannot be made durable",
                            failed="bill in the stacker held: the credit could not be recorded",
                            logged="credit recorder failed for the bill in the stacker; not resetting")

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

    def _state_name(self, code: int) -> str:
        return status_name(code)

    def _watchdog_settles(self, status: int, note: PolledNote) -> None:
        if status in (Status.ACCEPTING, Status.ESCROW, Status.HOLDING, Status.RETURNING) \
                and not note.returned_reported and not note.credited:
            note.returned_reported = True
            self._settled(note)
            self._emit(NoteReturned(device=self.name, value=note.value, reason="returned by the watchdog reset"))
