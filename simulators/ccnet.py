"""A CashCode ccNet bill validator (address 0x03), device side, byte for byte (codec from
drivers.ccnet.frames), reachable as a pyserial URL (a pty slave path or socket://127.0.0.1:PORT).

Behaves as the ccNet document says: every answer with data waits for the controller's ACK,
and an event the controller did not acknowledge (stacked, returned, rejecting) is reported
again; a note left in escrow goes back after 10 s unless the controller sends HOLD; a reset
during power-up with a bill in the stacker ends in STACKED (credit recovery). Controls for
tests, the demo and the control panel: insert a note or a counterfeit, jam, cashbox out or
full, power-cycle, spoil the next reply, stall a stack, lose the host's next ACK.
Run standalone with `python -m simulators.ccnet --tcp 7003`.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping

from drivers.ccnet.frames import (
    ACK,
    ACK_FRAME,
    ADDRESS_VALIDATOR,
    BillType,
    Command,
    CrcError,
    Frame,
    FrameDecoder,
    ILLEGAL_FRAME,
    NAK,
    NAK_FRAME,
    State,
    bill_mask,
    bill_type_for_minor,
    encode_bill_table,
    encode_identification,
    parse_bill_mask,
)
from hal.money import minor_digits
from simulators import polled_validator
from simulators.polled_validator import FAULT_KINDS, STALL_ENDS, PolledValidatorSimulator

__all__ = ["DEFAULT_NOTES", "FAULT_KINDS", "STALL_THEN", "CcnetSimulator", "main"]

DEFAULT_NOTES = {2: 500, 3: 1000, 4: 2000, 5: 5000, 6: 10000, 7: 20000}
STALL_THEN = STALL_ENDS

# Phases whose event must be acknowledged by the controller before the unit moves on.
_NEEDS_ACK = frozenset({"stacked", "returned", "rejecting", "cheated"})
# Phases in which IDENTIFICATION and GET BILL TABLE are allowed (the document's list).
_SETUP_PHASES = frozenset({"power_up", "initialize", "idle_disabled", "failure"})


class CcnetSimulator(PolledValidatorSimulator):
    """One simulated validator. `step_s` is how long each mechanical step takes;
    `escrow_hold_s` how long a note waits in escrow (or after HOLD) before it goes back."""

    TAG = "ccnet"
    DECODER = FrameDecoder
    DEFAULT_FAILURE = 0x50

    def __init__(self, currency: str = "EUR", notes: Mapping[int, int] | None = None, *,
                 step_s: float = 0.03, escrow_hold_s: float = 10.0, stall_s: float | None = None,
                 part_number: str = "SM-SIM-3300", serial: str = "CCSIM0000001") -> None:
        super().__init__(currency, DEFAULT_NOTES if notes is None else notes, step_s=step_s)
        self.escrow_hold_s = escrow_hold_s
        # How long a stalled stack hangs before the unit powers up again (stall_stacking).
        self.stall_s = 20 * step_s if stall_s is None else stall_s
        self.part_number = part_number
        self.serial = serial
        self.address = ADDRESS_VALIDATOR
        self.resets_received = 0
        # When the last STACKED answer left (the benchmark measures from here).
        self.last_stacked_sent_at = 0.0
        self._power_on()

    # -- device state -----------------------------------------------------------------

    def _power_on(self, power_code: int = State.POWER_UP, power_note: tuple[int, int | None] | None = None) -> None:
        self._phase = "power_up"
        self._power_code = int(power_code)
        # (bill type, value) of the note the unit holds since power came back, if any.
        self._power_note = power_note
        # What the unit does when initialisation ends: ("stacked"|"returned", bill type, value).
        self._after_init: tuple[str, int, int | None] | None = None
        self._phase_since = time.monotonic()
        self._reported = False
        self._acked = False
        self._awaiting_ack = False
        self._enabled: frozenset[int] = frozenset()
        self._escrow: frozenset[int] = frozenset()
        self._security = bytes(3)
        self._clear_note()
        self._reject_reason = 0
        self._failure_code = 0
        self._jam: str | None = None
        self._stall_then: str | None = None
        self._stalled = False
        self._paused_from: str | None = None
        self._hold_until = 0.0

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._phase_since = time.monotonic()
        self._reported = False
        self._acked = False

    def _idle_phase(self) -> str:
        return "idle_enabled" if self._enabled else "idle_disabled"

    def _answer(self) -> bytes:
        """The POLL answer for the unit's present state."""
        if self._jam == "acceptor":
            return bytes((State.VALIDATOR_JAMMED,))
        if self._jam == "stacker":
            return bytes((State.CASSETTE_JAMMED,))
        phase = self._phase
        if phase == "power_up":
            return bytes((self._power_code,))
        if phase in ("idle_enabled", "idle_disabled"):
            if self._stacker_open:
                return bytes((State.CASSETTE_OUT,))
            if self._stacker_full:
                return bytes((State.CASSETTE_FULL,))
            return bytes((State.IDLING if phase == "idle_enabled" else State.UNIT_DISABLED,))
        simple = {"initialize": State.INITIALIZE, "accepting": State.ACCEPTING, "stacking": State.STACKING,
                  "returning": State.RETURNING, "holding": State.HOLDING, "cheated": State.CHEATED,
                  "pause": State.PAUSE}
        if phase in simple:
            return bytes((simple[phase],))
        with_type = {"escrow": State.ESCROW, "stacked": State.STACKED, "returned": State.RETURNED}
        if phase in with_type:
            return bytes((with_type[phase], self._code or 0))
        if phase == "rejecting":
            return bytes((State.REJECTING, self._reject_reason))
        if phase == "failure":
            return bytes((State.FAILURE, self._failure_code))
        raise AssertionError(f"simulator phase {phase!r} has no state")

    def _tick(self) -> None:
        """Advance the mechanism by wall time: each step takes step_s."""
        if self._jam or self._stalled or self._phase in ("power_up", "failure", "pause"):
            return
        now = time.monotonic()
        elapsed = now - self._phase_since
        phase = self._phase
        if phase == "stacking" and self._stall_then is not None:
            if elapsed >= self.stall_s:
                # The hung unit loses power and comes back with the note where `then` says.
                code = State.POWER_UP_BILL_IN_STACKER if self._stall_then == "stacker" \
                    else State.POWER_UP_BILL_IN_VALIDATOR
                held = (self._code or 0, self._note)
                self._power_on(code, held)
            return
        if phase in ("escrow", "holding"):
            if now >= self._hold_until:
                self._enter("returning")
            return
        if elapsed < self.step_s:
            return
        if phase in _NEEDS_ACK and not self._acked:
            return
        if phase == "initialize":
            after, self._after_init = self._after_init, None
            self._power_code = State.POWER_UP
            self._power_note = None
            if after is not None and after[0] == "stacked":
                self._code, self._note = after[1], after[2]
                self._enter("stacked")
            else:
                if after is not None:
                    self._returned.append(after[2])
                self._enter(self._idle_phase())
        elif phase == "accepting":
            if self._counterfeit:
                self._enter("cheated")
            elif self._code is None:
                self._reject_reason = 0x65          # identification error: not a note it knows
                self._enter("rejecting")
            elif self._code not in self._enabled:
                self._reject_reason = 0x68          # inhibited denomination
                self._enter("rejecting")
            elif self._code in self._escrow:
                self._hold_until = now + self.escrow_hold_s
                self._enter("escrow")
            else:
                self._start_stacking()
        elif phase == "stacking":
            self._stacked.append(self._note)
            self._enter("stacked")
        elif phase == "returning":
            self._returned.append(self._note)
            self._enter("returned")
        elif phase in ("stacked", "returned"):
            self._clear_note()
            self._enter(self._idle_phase())
        elif phase == "rejecting":
            self._rejected.append(self._note)
            self._clear_note()
            self._enter(self._idle_phase())
        elif phase == "cheated" and elapsed >= 2 * self.step_s:
            self._clear_note()
            self._enter(self._idle_phase())

    def _start_stacking(self) -> None:
        self._stall_then, self._stall_next = self._stall_next, None
        self._enter("stacking")

    def _bill_table(self) -> bytes:
        digits = minor_digits(self.currency)
        entries: list[BillType] = [bill_type_for_minor(t, self.currency, minor, digits)
                                   for t, minor in sorted(self.notes.items())]
        return encode_bill_table(entries)

    def _setup_allowed(self) -> bool:
        return self._phase in _SETUP_PHASES or self._jam is not None or self._phase_is_fault()

    def _phase_is_fault(self) -> bool:
        return self._phase.startswith("idle") and (self._stacker_open or self._stacker_full)

    def _handle(self, frame: Frame) -> Frame | None:
        """The unit's answer to one good controller frame (None: ccNet has no answer)."""
        if frame.address != self.address:
            return None                          # another peripheral's frame on the bus
        code, data = frame.code, frame.data
        if code == ACK and not data:
            if self._awaiting_ack:
                self._awaiting_ack = False
                if self._lose_ack_next and self._phase == "stacked":
                    # The controller's ACK never arrives: STACKED is reported again.
                    self._lose_ack_next = False
                    self.acks_lost += 1
                    return None
                self.acks_received += 1
                if self._reported:
                    self._acked = True
            return None
        if code == NAK and not data:
            self._awaiting_ack = False           # the controller asks again at its next POLL
            return None
        if code == Command.POLL and not data:
            answer = self._answer()
            self._reported = True
            self._awaiting_ack = True
            if answer[0] == State.STACKED:
                self.last_stacked_sent_at = time.perf_counter()
            return Frame(answer)
        self._awaiting_ack = False
        if code == Command.RESET and not data:
            self.resets_received += 1
            self._reset()
            return ACK_FRAME
        if code in (Command.STACK, Command.RETURN, Command.HOLD) and not data:
            if self._phase not in ("escrow", "holding") or self._jam:
                return ILLEGAL_FRAME
            if code == Command.STACK:
                self._start_stacking()
            elif code == Command.RETURN:
                self._enter("returning")
            else:
                self._hold_until = time.monotonic() + self.escrow_hold_s
                self._enter("holding")
            return ACK_FRAME
        if code == Command.ENABLE_BILL_TYPES and len(data) == 6:
            self._enabled = parse_bill_mask(data[:3])
            self._escrow = parse_bill_mask(data[3:])
            if self._phase in ("idle_enabled", "idle_disabled"):
                self._phase = self._idle_phase()
            return ACK_FRAME
        if code == Command.SET_SECURITY and len(data) == 3:
            self._security = bytes(data)
            return ACK_FRAME
        if code == Command.GET_STATUS and not data:
            return Frame(bill_mask(self._enabled) + self._security)
        if code == Command.IDENTIFICATION and not data:
            if not self._setup_allowed():
                return ILLEGAL_FRAME
            return Frame(encode_identification(self.part_number, self.serial, b"\x00\x00\x00\x00\x00\x01\x02"))
        if code == Command.GET_BILL_TABLE and not data:
            if not self._setup_allowed():
                return ILLEGAL_FRAME
            return Frame(self._bill_table())
        return ILLEGAL_FRAME

    def _reset(self) -> None:
        """RESET: abort, give back a note in the head, finish one past the point of no return
        (reported as STACKED once initialisation ends: the document's credit recovery)."""
        phase = self._phase
        after: tuple[str, int, int | None] | None = None
        if phase == "power_up" and self._power_note is not None:
            kind = "stacked" if self._power_code == State.POWER_UP_BILL_IN_STACKER else "returned"
            after = (kind, self._power_note[0], self._power_note[1])
            if kind == "stacked":
                self._stacked.append(self._power_note[1])
        elif self._note is not None or self._code is not None:
            held = (self._code or 0, self._note)
            if phase == "stacking" and self._stall_then == "acceptor":
                after = ("returned", *held)
            elif phase == "stacking":
                self._stacked.append(self._note)
                after = ("stacked", *held)
            elif phase == "stacked" and not self._acked:
                after = ("stacked", *held)      # already in the cashbox; report it again
            elif phase in ("accepting", "escrow", "holding", "returning", "rejecting", "pause"):
                after = ("returned", *held)
        self._power_on()
        self._after_init = after
        self._enter("initialize")

    # -- control surface (thread-safe) -----------------------------------------------------

    def _takes_notes(self) -> bool:
        return self._phase == "idle_enabled"

    def power_cycle(self, note_in: str = "none") -> None:
        """Power off and on. A note in the acceptor goes back at the controller's reset, one
        in the stacker is stacked and reported as STACKED once initialisation ends."""
        codes = {"none": State.POWER_UP, "acceptor": State.POWER_UP_BILL_IN_VALIDATOR,
                 "stacker": State.POWER_UP_BILL_IN_STACKER}
        if note_in not in codes:
            raise ValueError(f"note_in must be one of {sorted(codes)}, got {note_in!r}")
        with self._lock:
            held = (self._code or 0, self._note) if note_in != "none" else None
            self._power_on(codes[note_in], held)

    def state(self) -> dict:
        with self._lock:
            answer = self._answer()
            return {
                "state": self._phase, "status": f"0x{answer[0]:02X}", "inhibited": not self._enabled,
                "enabled_types": sorted(self._enabled), "note": self._note,
                "stacked": list(self._stacked), "cashbox": len(self._stacked),
                "returned": list(self._returned), "rejected": list(self._rejected),
                "jam": self._jam, "stacker_full": self._stacker_full, "stacker_open": self._stacker_open,
                "stalled": self._stalled or (self._stall_then is not None and self._phase == "stacking"),
                # False while an event the controller must acknowledge (STACKED...) is unacknowledged.
                "event_acked": self._acked or self._phase not in _NEEDS_ACK,
                "connected": self._link.connected, "acks_received": self.acks_received,
                "acks_lost": self.acks_lost, "resets_received": self.resets_received,
                "faults_pending": len(self._faults),
            }

    # -- line ------------------------------------------------------------------------------

    def _on_bad_frame(self, error: Exception) -> Frame | None:
        # The document: a peripheral that finds a bad CRC answers NAK.
        return NAK_FRAME if isinstance(error, CrcError) else None


def _console(sim: CcnetSimulator) -> None:
    polled_validator.console(sim, "refused (disabled or busy)")


def main(argv: list[str] | None = None) -> int:
    return polled_validator.main(argv, prog="python -m simulators.ccnet", description="CashCode ccNet bill "
                                 "validator simulator", label="ccNet", make=lambda currency: CcnetSimulator(currency=currency),
                                 run_console=_console)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
