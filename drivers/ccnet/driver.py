"""Host side of a CashCode ccNet bill validator over any pyserial URL (9600 8N1, address 0x03).

What is ccNet's own lives here: POLL and the ACK of each answer, the states and their
meaning, the bill table and identification, the enable/escrow masks, BILL STACKED (0x81)
as the settled event (acknowledged only once the credit is durable: the unit repeats an
unacknowledged STACKED, so a failed recorder or a crash before the ACK loses nothing), and
how resolve_note() is answered (a reset makes the unit finish the note and say which). The
poll thread, escrow decision, credit step and watchdog are drivers.polled_validator's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping

import serial

from drivers.ccnet.frames import (
    ACK,
    ADDRESS_VALIDATOR,
    ILLEGAL_COMMAND,
    NAK,
    Command,
    Frame,
    FrameDecoder,
    MessageError,
    PollAnswer,
    State,
    BILL_TYPES,
    enable_bill_types_data,
    failure_name,
    parse_bill_table,
    parse_identification,
    parse_poll,
    reject_reason_name,
    state_name,
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

__all__ = ["CcnetValidator", "MISSES_BEFORE_OFFLINE", "parse_bill_type"]

log = logging.getLogger(__name__)

# CashCode bill tables name a country or a currency in their three letters; the common
# country codes are mapped to their currency when the configuration does not name one.
_COUNTRY_CURRENCY = {"USA": "USD", "RUS": "RUB", "UKR": "UAH", "KAZ": "KZT", "BLR": "BYN", "GBR": "GBP",
                     "CAN": "CAD", "MEX": "MXN", "AUS": "AUD", "CHE": "CHF", "POL": "PLN", "TUR": "TRY"}

_IDLE = frozenset({State.IDLING, State.UNIT_DISABLED})
_POWER_UP = frozenset({State.POWER_UP, State.POWER_UP_BILL_IN_VALIDATOR, State.POWER_UP_BILL_IN_STACKER})
# States in which a note is somewhere inside the unit.
_MID_NOTE = frozenset({State.ACCEPTING, State.ESCROW, State.HOLDING, State.STACKING, State.STACKED,
                       State.RETURNING, State.RETURNED, State.REJECTING, State.PAUSE})
# States the mechanism passes through; staying in one longer than stuck_timeout means it hung.
_TRANSIENT = frozenset({State.ACCEPTING, State.STACKING, State.RETURNING, State.INITIALIZE})
# States in which the document allows IDENTIFICATION and GET BILL TABLE.
_SETUP_STATES = frozenset({State.POWER_UP, State.POWER_UP_BILL_IN_VALIDATOR, State.POWER_UP_BILL_IN_STACKER,
                           State.INITIALIZE, State.UNIT_DISABLED, State.CASSETTE_FULL, State.CASSETTE_OUT,
                           State.VALIDATOR_JAMMED, State.CASSETTE_JAMMED, State.CHEATED, State.PAUSE,
                           State.FAILURE})
# Fault states: what the device is, what a technician does about it, what it says of the cashbox.
_FAULTS = {
    State.DEVICE_BUSY: (DeviceState.BUSY, "validator busy", None),
    State.CASSETTE_FULL: (DeviceState.USER_ERROR, "drop cassette full: empty the cashbox", UnitStatus.FULL),
    State.CASSETTE_OUT: (DeviceState.USER_ERROR, "drop cassette out of position: put the cashbox back",
                         UnitStatus.MISSING),
    State.VALIDATOR_JAMMED: (DeviceState.HARDWARE_ERROR, "validator jammed: open the validator head and remove "
                                                         "the note", None),
    State.CASSETTE_JAMMED: (DeviceState.HARDWARE_ERROR, "drop cassette jammed: take out the cashbox and clear it",
                            None),
    State.PAUSE: (DeviceState.BUSY, "pause: a second note was pushed in while stacking; remove it", None),
}
# States in which the unit cannot say where a note is until someone opens it.
_CANNOT_TELL = frozenset({State.VALIDATOR_JAMMED, State.CASSETTE_JAMMED, State.FAILURE, State.CASSETTE_OUT})


def parse_bill_type(key: object) -> int:
    """A configured bill type: 0..23, written as 3, "3" or "0x03"."""
    try:
        value = key if isinstance(key, int) and not isinstance(key, bool) else int(str(key).strip(), 0)
    except ValueError:
        raise ConfigurationError(f"ccNet bill type {key!r} is not a number; expected 0..{BILL_TYPES - 1} "
                                 f"(e.g. \"3\" or \"0x03\")") from None
    if not 0 <= value < BILL_TYPES:
        raise ConfigurationError(f"ccNet bill type {key!r} is out of range; expected 0..{BILL_TYPES - 1}")
    return value



@dataclass
class _Note(PolledNote):
    """A note's trip (`code` is its bill type), with what ccNet's resolve_note() needs besides."""

    resolving: bool = False              # the application asked resolve_note() for it
    resolve_since: float = 0.0
    resolve_reset_sent: bool = False


class CcnetValidator(PolledValidator):
    """A CashCode ccNet bill validator on `port` (a pyserial URL)."""

    PROTOCOL = "ccNet"
    THREAD_TAG = "ccnet"
    REQUESTS = "polls"
    ANSWERS = "answers"
    TRANSIENT = _TRANSIENT
    IN_ESCROW = frozenset({State.ESCROW, State.HOLDING})
    FAULTS = _FAULTS
    NOTE_TYPE = _Note

    def __init__(self, port: str, *, name: str = "validator", currency: str | None = None,
                 denominations: Mapping[str, int] | None = None, address: int = ADDRESS_VALIDATOR,
                 baudrate: int = 9600, poll_interval: float = 0.2, reply_timeout: float = 0.3,
                 escrow_timeout: float = 20.0, hold_interval: float = 5.0, stuck_timeout: float = 10.0,
                 init_timeout: float = 10.0, resolve_timeout: float = 5.0):
        if not 1 <= address <= 0x0F:
            raise ConfigurationError(f"ccNet address must be 1..15 (0x03 for a bill validator), got {address!r}")
        super().__init__(port, name=name, currency=currency, denominations=denominations, decoder=FrameDecoder(),
                         poll_interval=poll_interval, reply_timeout=reply_timeout, escrow_timeout=escrow_timeout,
                         hold_every=hold_interval, stuck_timeout=stuck_timeout, init_timeout=init_timeout,
                         resolve_timeout=resolve_timeout)
        self.address = address
        self.baudrate = baudrate
        self._identity_read = False
        self._sent_mask: frozenset[int] | None = None
        self._last_settled: Event | None = None     # the last stacked-or-returned answer for a stacked note
        self._resolve_requested = False
        self._rejection_reported = False
        self._unknown_reported: int | None = None

    def _parse_note_key(self, key: object) -> int:
        return parse_bill_type(key)

    def resolve_note(self) -> None:
        with self._lock:
            self._resolve_requested = True
        self._wake.set()


    # -- open / close ---------------------------------------------------------------------------

    def _start_up(self) -> None:
        first = self._first_contact()
        if first.state in _MID_NOTE:
            self._finish_note_in_flight()
        elif first.state in _SETUP_STATES:
            self._read_identity()
        if first.state in _POWER_UP:
            self._report_power_up(first.state)
        self._initialize()

    def _refuse_notes(self) -> None:
        self._command(Command.ENABLE_BILL_TYPES, enable_bill_types_data(frozenset(), frozenset()))

    def _serial_settings(self) -> dict:
        return {"baudrate": self.baudrate, "parity": serial.PARITY_NONE, "stopbits": serial.STOPBITS_ONE}

    def _line_hint(self) -> str:
        return (f"check that the device speaks CashCode ccNet (not ID-003 or SSP), at address {self.address}, "
                f"9600 baud 8N1")

    def _read_identity(self) -> None:
        """IDENTIFICATION and GET BILL TABLE (the unit allows them only while disabled,
        initialising or in a failure state)."""
        ident = self._ask(Command.IDENTIFICATION)
        part, serial_number, asset = "", "", b""
        if ident is not None and len(ident.payload) > 1:
            try:
                parsed = parse_identification(ident.payload)
                part, serial_number, asset = parsed.part_number, parsed.serial, parsed.asset
            except MessageError as exc:
                self._note_bad(exc)
        extra = {"protocol": "ccNet", "address": _hex(self.address)}
        if asset:
            extra["asset"] = asset.hex()
        if self._override is not None:
            self.currency = self._configured_currency or ""
            self._table = {t: Fiat(minor, self.currency) for t, minor in self._override.items()}
            extra["denominations_from"] = "configuration"
        else:
            self._table = self._read_bill_table(extra)
            extra["denominations_from"] = "device" if self._table else "none"
        self._info = DeviceInfo(model=part, firmware="", serial=serial_number, extra=extra)
        self._identity_read = True

    def _read_bill_table(self, extra: dict[str, str]) -> dict[int, Fiat]:
        reply = self._ask(Command.GET_BILL_TABLE)
        if reply is None:
            # Without the table every note would be refused: refuse to start rather than
            # run a validator that takes nothing.
            raise DeviceTimeout(
                f"{self._who} on {self.port} did not answer GET BILL TABLE (0x41) after {MISSES_BEFORE_OFFLINE} "
                f"tries; check the line, or set the denominations in the configuration")
        if reply.payload == bytes((ILLEGAL_COMMAND,)):
            self._set_state(DeviceState.STARTING, "validator refused GET BILL TABLE (0x41): set the denominations "
                                                  "in the configuration; no note is taken until then")
            return {}
        try:
            entries = parse_bill_table(reply.payload)
        except MessageError as exc:
            raise ProtocolError(f"{self._who} on {self.port}: {exc}") from exc
        currency = self._configured_currency
        if not currency:
            codes = {entry.country for entry in entries}
            if len(codes) == 1:
                code = codes.pop()
                currency = _COUNTRY_CURRENCY.get(code, code)
            if not (currency and len(currency) == 3 and currency.isascii() and currency.isupper()):
                self._set_state(DeviceState.STARTING, f"validator currency unknown (bill table names "
                                                      f"{sorted({e.country for e in entries})}): set the "
                                                      f"validator's currency in the configuration")
                return {}
        self.currency = currency
        extra["bill_table_country"] = ",".join(sorted({e.country for e in entries}))
        table: dict[int, Fiat] = {}
        digits = minor_digits(currency)
        for entry in entries:
            if self._configured_currency and entry.country not in (currency, "") \
                    and _COUNTRY_CURRENCY.get(entry.country) != currency:
                log.warning("%s: bill type %d is %s, not %s: not taken", self.name, entry.bill_type,
                            entry.country, currency)
                continue
            try:
                table[entry.bill_type] = Fiat(entry.minor_units(digits), currency)
            except MessageError as exc:
                log.warning("%s: %s", self.name, exc)
        return table

    def _initialize(self) -> None:
        """RESET, wait through INITIALIZE, read the identity if still unknown, send the bill
        enables; a note the unit finishes on reset (credit recovery) is handled as it reports."""
        deadline = time.monotonic() + self.init_timeout
        while self._command(Command.RESET) != ACK:
            if self._stop.is_set():
                return
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"{self._who} on {self.port} did not acknowledge RESET "
                                    f"within {self.init_timeout:g} s")
        self._sent_mask = None
        self._last_answer = None
        while True:
            if self._stop.wait(min(0.02, self.poll_interval)):
                return
            answer = self._poll()
            if answer is not None and answer.state in _POWER_UP:
                # The unit missed the reset (or power-cycled again): ask once more.
                self._command(Command.RESET)
            elif answer is not None and answer.state == State.INITIALIZE:
                if not self._identity_read:
                    self._read_identity()
            elif answer is not None:
                break
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"{self._who} on {self.port} stayed in INITIALIZE for "
                                    f"{self.init_timeout:g} s after RESET; check the mechanism for a stuck note")
        if not self._identity_read and answer.state in _SETUP_STATES:
            self._read_identity()
        self._on_state(answer)

    def _finish_note_in_flight(self) -> None:
        """At open the unit is mid-note (the host restarted): settle that note before the
        reset, crediting a STACKED it still repeats and returning an escrow no one decided on."""
        deadline = time.monotonic() + self.init_timeout
        answer: PollAnswer | None = None
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                # Never reset over a note we could not settle: a reset could stack an
                # uncredited note or lose track of one.
                raise DeviceError(
                    f"{self._who} on {self.port} still holds a note ({answer or 'no answer'}) after "
                    f"{self.init_timeout:g} s at start-up; check the credit journal and the unit, then retry")
            answer = self._poll()
            if answer is not None:
                if answer.state in (State.ESCROW, State.HOLDING):
                    note = self._note
                    if note is None:
                        bill_type = answer.extra if answer.extra is not None else -1
                        self._note = _Note(code=bill_type, value=self._table.get(bill_type),
                                           seen_at=time.monotonic(),
                                           own_return_reason="returned at start-up: the kiosk was not ready to decide")
                    self._decide_pending(self._note, time.monotonic())  # type: ignore[arg-type]
                elif answer.state in _MID_NOTE:
                    self._on_state(answer)
                else:
                    return
            self._stop.wait(min(0.05, self.poll_interval))


    # -- wire ----------------------------------------------------------------------------------

    def _is_ours(self, frame: Frame) -> bool:
        return frame.address == self.address

    def _write(self, frame: Frame) -> None:
        ser = self._ser
        if ser is not None:
            ser.write(frame.encode())

    def _poll(self) -> PollAnswer | None:
        """POLL and acknowledge the answer, except STACKED: that is acknowledged only
        once the credit is durable (the unit repeats it until then)."""
        reply = self._transact(Frame.command(Command.POLL, address=self.address), lambda f: True)
        if reply is None:
            return None
        try:
            answer = parse_poll(reply.payload)
        except MessageError as exc:
            self._note_bad(exc)
            return None
        if answer.state != State.STACKED:
            self._ack()
        return answer

    def _ack(self) -> None:
        self._write(Frame(bytes((ACK,)), self.address))

    def _command(self, command: Command, data: bytes = b"") -> int | None:
        """A command the unit answers with one byte: ACK, NAK (it got our frame garbled) or ILLEGAL COMMAND."""
        reply = self._transact(Frame.command(command, data, self.address), lambda f: len(f.payload) == 1)
        return None if reply is None else reply.code

    def _ask(self, command: Command, attempts: int = MISSES_BEFORE_OFFLINE) -> Frame | None:
        """A data request's answer (acknowledged), or ILLEGAL COMMAND, retried: a lost reply
        must not read as "no table"."""
        for _ in range(attempts):
            reply = self._transact(Frame.command(command, address=self.address),
                                   lambda f: f.payload != bytes((NAK,)))
            if reply is None:
                continue
            if len(reply.payload) > 1:
                self._ack()
            return reply
        return None


    _request = _poll

    def _on_answer(self, answer: PollAnswer) -> None:
        self._on_state(answer)

    # -- poll loop --------------------------------------------------------------------------------

    def _before_request(self) -> None:
        self._take_resolve_request()

    def _went_offline(self) -> None:
        note = self._note
        if note is not None and note.resolving:
            self._answer_unknown(note, "the validator does not answer, so it cannot say where the note is")

    def _on_state(self, answer: PollAnswer) -> None:
        now = time.monotonic()
        state = answer.state
        self._track_answer((answer.code, answer.extra), state == State.CHEATED, now)
        if state != State.REJECTING:
            self._rejection_reported = False
        if state is None:
            if self._unknown_reported != answer.code:
                self._unknown_reported = answer.code
                self._emit(DeviceStatusChanged(device=self.name, state=self._state, code=_hex(answer.code),
                                               detail=f"validator reported {answer}, which this driver does not "
                                                      f"know; polling on"))
            return
        self._unknown_reported = None

        if state in _IDLE:
            self._on_idle(state)
        elif state == State.ACCEPTING:
            self._online()
            note = self._note
            if note is not None and (note.credited or note.returned_reported):
                self._note = None
        elif state == State.ESCROW:
            self._online()
            self._on_escrow(answer.extra if answer.extra is not None else 0, now)
        elif state == State.HOLDING:
            self._online()
            if self._note is not None:
                self._decide_pending(self._note, now, resend=bool(self._note.sent))
        elif state in (State.STACKING, State.RETURNING):
            self._online()
        elif state == State.STACKED:
            self._online()
            self._on_stacked(answer.extra if answer.extra is not None else 0)
        elif state == State.RETURNED:
            self._online()
            self._on_returned(answer.extra if answer.extra is not None else 0)
        elif state == State.REJECTING:
            self._online()
            if not self._rejection_reported:
                self._rejection_reported = True
                reason = answer.extra if answer.extra is not None else 0
                self._emit(NoteRejected(device=self.name, reason=reject_reason_name(reason), code=_hex(reason)))
        elif state in _POWER_UP:
            self._report_power_up(state)
            self._initialize()
            return
        elif state == State.INITIALIZE:
            pass                                 # the watchdog catches one that never ends
        elif state in _FAULTS:
            self._report_fault(state)
        elif state == State.CHEATED:
            self._report_cheat(state, "validator")
        elif state == State.FAILURE:
            code = answer.extra if answer.extra is not None else 0
            self._report_failure(state, code, failure_name(code))
        self._resolve_step(state, now)
        self._watchdog(state, now)
        self._apply_enable(state)

    def _on_idle(self, state: State) -> None:
        self._set_cashbox(UnitStatus.OK)
        self._set_state(DeviceState.ONLINE, "ready")
        note = self._note
        if note is None:
            return
        if note.sent == "return" and not note.returned_reported and not note.credited:
            note.returned_reported = True
            self._emit(NoteReturned(device=self.name, value=note.value,
                                    reason=note.own_return_reason or "returned on request"))
        # A note told to stack and never reported stacked stays, for resolve_note() to answer.
        if note.credited or note.returned_reported or note.sent != "stack":
            self._note = None

    def _apply_enable(self, state: State) -> None:
        if state not in _IDLE:
            return
        with self._lock:
            want, accept = self._want_enabled, self._accept
        mask = frozenset(t for t, value in self._table.items()
                         if want and (accept is None or value.minor in accept))
        if mask == self._sent_mask and bool(mask) == (state == State.IDLING):
            return
        if self._command(Command.ENABLE_BILL_TYPES, enable_bill_types_data(mask, mask)) == ACK:
            self._sent_mask = mask

    def _on_escrow(self, bill_type: int, now: float) -> None:
        announce: NoteEscrowed | None = None
        with self._lock:
            note = self._note
            if note is None or note.code != bill_type or note.credited or note.returned_reported:
                note, announce = self._new_escrow(bill_type, now)
        if announce is not None:
            # Outside the lock: the application may answer stack() from inside its sink.
            self._emit(announce)
        # A decision the unit acknowledged while the note is still in escrow was stale or
        # lost: send it again (a unit already moving answers ILLEGAL COMMAND, which is harmless).
        self._decide_pending(note, now, resend=bool(note.sent))

    def _send_hold(self) -> bool:
        return self._command(Command.HOLD) == ACK

    def _send_decision(self, decision: str) -> bool:
        # NAK, ILLEGAL COMMAND (a unit already moving) or silence all read as "not taken".
        return self._command(Command.STACK if decision == "stack" else Command.RETURN) == ACK

    def _on_stacked(self, bill_type: int) -> None:
        note = self._note
        # The unit repeats STACKED when our ACK was lost: that is the same note, which the
        # credit step acknowledges again without a second record or report.
        repeat = note is not None and note.credited and note.code == bill_type
        if not repeat and (note is None or note.credited or note.returned_reported):
            # A STACKED with no note of ours in flight: the host restarted after STACK, or the
            # unit finished a note on reset. ccNet names the bill type, so the value is known
            # once the bill table is; the recorder matches it to its journal.
            note = _Note(code=bill_type, value=None, seen_at=time.monotonic(), sent="stack")
            self._note = note
        # The unit says what it stacked; that is what is credited.
        value = self._table.get(bill_type, note.value if note.code == bill_type else None)
        note.code, note.value = bill_type, value
        event = NoteCredited(device=self.name, value=value, code=_hex(bill_type))
        first = not note.credited
        if self._credit(note, event, self._ack,
                        no_recorder="bill stacked held: no credit recorder is set, so the credit cannot be made "
                                    "durable and is not acknowledged",
                        failed="bill stacked held: the credit could not be recorded",
                        logged="credit recorder failed, STACKED not acknowledged") and first:
            self._emit(NoteStacked(device=self.name, value=value))

    def _on_credited(self, note: PolledNote, event: Event) -> None:
        note.resolving = False  # type: ignore[attr-defined]
        self._last_settled = event

    def _on_returned(self, bill_type: int) -> None:
        note = self._note
        if note is not None and note.returned_reported and note.code == bill_type:
            return                               # the unit repeats RETURNED: our ACK was lost
        if note is None or note.credited or note.returned_reported:
            note = _Note(code=bill_type, value=self._table.get(bill_type), seen_at=time.monotonic())
            self._note = note
        if note.own_return_reason:
            reason = note.own_return_reason
        elif note.sent == "return":
            reason = "returned on request"
        else:
            reason = "returned by the validator (not stacked in time, or it could not stack the note)"
        self._settle_returned(note, reason)

    def _settle_returned(self, note: _Note, reason: str) -> None:
        note.returned_reported = True
        event = NoteReturned(device=self.name, value=note.value, reason=reason)
        if note.sent == "stack" or note.app_decision == "stack":
            self._last_settled = event
        note.resolving = False
        self._emit(event)

    def _report_power_up(self, state: State) -> None:
        note = self._note
        last = "no note was in flight"
        if note is not None:
            value = str(note.value) if note.value is not None else "unknown value"
            last = (f"last note type {note.code} ({value}), "
                    f"{'credited' if note.credited else 'NOT credited'}")
        if state == State.POWER_UP_BILL_IN_VALIDATOR:
            detail = f"powered up with a bill in the validator: the reset gives it back; {last}"
        elif state == State.POWER_UP_BILL_IN_STACKER:
            detail = f"powered up with a bill in the stacker: the reset stacks it and reports it; {last}"
        else:
            detail = f"validator powered up (reset or power loss); re-initialising; {last}"
        self._emitted_status = None
        self._set_state(DeviceState.STARTING, detail, _hex(state))
        if state == State.POWER_UP_BILL_IN_VALIDATOR:
            if note is None or note.credited or note.returned_reported:
                note = _Note(code=-1, value=None, seen_at=time.monotonic())
                self._note = note
            self._settle_returned(note, "power-up with the bill in the validator: given back to the customer")
        if note is not None and (note.credited or note.returned_reported or note.sent != "stack"):
            self._note = None

    # -- resolve_note --------------------------------------------------------------------------------

    def _take_resolve_request(self) -> None:
        with self._lock:
            asked, self._resolve_requested = self._resolve_requested, False
        if not asked:
            return
        note = self._note
        if note is not None and note.sent == "stack" and not note.credited and not note.returned_reported:
            if not note.resolving:
                note.resolving, note.resolve_since = True, time.monotonic()
            return
        # Nothing is pending: answer with what became of the last note told to stack.
        last = self._last_settled
        if isinstance(last, NoteCredited):
            recorder = self._recorder
            try:
                if recorder is None:
                    raise DeviceError("no credit recorder is set")
                recorder(last)                   # idempotent: the journal sees a repeat
            except Exception as exc:
                self._emit(NoteOutcomeUnknown(device=self.name, value=last.value, code=last.code,
                                              detail=f"the note was stacked but its credit could not be "
                                                     f"recorded again ({exc})"))
                return
            self._emit(NoteCredited(device=self.name, value=last.value, code=last.code))
        elif isinstance(last, NoteReturned):
            self._emit(NoteReturned(device=self.name, value=last.value, reason=last.reason))
        else:
            self._emit(NoteOutcomeUnknown(device=self.name, detail="no note told to stack is known to this "
                                                                   "driver (it may have restarted)"))

    def _resolve_step(self, state: State, now: float) -> None:
        """One poll's worth of asking the unit about a note the application wants resolved."""
        note = self._note
        if note is None or not note.resolving:
            return
        if note.credited or note.returned_reported:
            note.resolving = False               # answered by the settled event itself
            return
        if state in _IDLE:
            self._answer_unknown(note, "the validator is idle and never reported the note stacked or returned")
        elif state in _CANNOT_TELL:
            self._answer_unknown(note, f"the validator reports {state_name(state)}; where the note is can only "
                                       f"be seen by opening it")
        elif state in (State.ESCROW, State.HOLDING):
            return                               # the STACK is being sent again
        elif now - note.resolve_since > self.resolve_timeout and not note.resolve_reset_sent:
            # Still not settled: a reset makes the unit finish a note past the point of no
            # return and report it STACKED (credit recovery), or give it back.
            note.resolve_reset_sent = True
            self._emitted_status = None
            self._set_state(DeviceState.HARDWARE_ERROR,
                            f"note told to stack not settled within {self.resolve_timeout:g} s of the "
                            f"application asking ({state_name(state)}): reset sent", _hex(state))
            self._initialize()

    def _answer_unknown(self, note: _Note, detail: str) -> None:
        note.resolving = False
        if self._note is note:
            self._note = None
        self._emit(NoteOutcomeUnknown(device=self.name, value=note.value,
                                      code=_hex(note.code) if note.code >= 0 else None, detail=detail))

    # -- watchdog ------------------------------------------------------------------------------------

    def _state_name(self, code: int) -> str:
        return state_name(code)

    def _watchdog_settles(self, state: int, note: PolledNote) -> None:
        # A reset gives back a note in the head and reports STACKED for one past the point
        # of no return; a note told to stack stays tracked until the unit says which.
        if note.sent != "stack" and not note.credited and not note.returned_reported \
                and state in (State.ACCEPTING, State.ESCROW, State.HOLDING, State.RETURNING):
            self._settle_returned(note, "returned by the watchdog reset")
