"""A JCM ID-003 bill validator, device side, byte for byte (codec from drivers.id003.frames).

Reachable as a pyserial URL (a pty slave path, or socket://127.0.0.1:PORT), with a
thread-safe control surface for tests, the demo and the lead's control panel: insert
a note or a counterfeit, jam, fill or open the stacker, power-cycle, stall a stack,
lose the host's ACK, and fault the next reply. It behaves as JCM's firmware does where
a host can get it wrong: escrow returned by itself after 10 s (3 s unpolled) unless
HELD, silence on a bad CRC then 0x4A, settings refused mid-note, JCM's inhibit bit map.
Run standalone with `python -m simulators.id003 --tcp 7001`.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Mapping

from drivers.id003.frames import (
    Command,
    CrcError,
    CurrencyEntry,
    Frame,
    MessageError,
    FrameDecoder,
    SETTING_COMMANDS,
    Status,
    encode_currency_assign,
    entry_for_minor,
    mask_inhibits,
)
from hal.money import minor_digits
from simulators import polled_validator
from simulators.polled_validator import FAULT_KINDS, STALL_ENDS, PolledValidatorSimulator

__all__ = ["DEFAULT_NOTES", "FAULT_KINDS", "STALL_ENDS", "Id003Simulator", "main"]

DEFAULT_NOTES = {0x61: 500, 0x62: 1000, 0x63: 2000, 0x64: 5000, 0x65: 10000, 0x66: 20000}

# Phases whose status must reach the host at least once before the device moves on,
# the way a real acceptor holds an event until it has been polled.
_MUST_REPORT = frozenset({"stacked", "rejecting", "cheated"})
# A real unit returns a note by itself this long after it first reported ESCROW (or
# after HOLD), and sooner when the host never polls the escrow at all.
ESCROW_RETURN_S = 10.0
UNPOLLED_ESCROW_RETURN_S = 3.0
# Setting commands (0xC0..0xC7) are refused outside these phases: never mid-note.
_SETTINGS_ALLOWED = frozenset({"initialize", "idle"})


class Id003Simulator(PolledValidatorSimulator):
    """One simulated acceptor. `step_s` is how long each mechanical step takes."""

    TAG = "id003"
    DECODER = FrameDecoder
    DEFAULT_FAILURE = 0xA2

    def __init__(self, currency: str = "EUR", notes: Mapping[int, int] | None = None, *,
                 step_s: float = 0.03, country_code: int = 0x00, unassigned: tuple[int, ...] = (),
                 escrow_return_s: float = ESCROW_RETURN_S,
                 unpolled_escrow_return_s: float = UNPOLLED_ESCROW_RETURN_S, stall_s: float = 2.0):
        super().__init__(currency, DEFAULT_NOTES if notes is None else notes, step_s=step_s)
        # Escrow codes the device knows but leaves out of its currency-assign answer,
        # to exercise a host that meets an escrow code it cannot value.
        self.unassigned = set(unassigned)
        # The unit's own timings, shortened in tests so that they run fast.
        self.escrow_return_s = escrow_return_s
        self.unpolled_escrow_return_s = unpolled_escrow_return_s
        self.stall_s = stall_s
        self.country_code = country_code
        # The shape of a real unit's answer: model, region tag with its set number, firmware.
        self.version = f"U({currency}5)-700-SS ID003-05V027-00 05DEC24"
        self.boot_version = "BOOT V1.00"
        self.holds_received = 0
        self.vend_valid_reports = 0
        self._comm_error_pending = False
        self.settings_refused = 0
        # Host frames to spoil on the line (by command code, None = any), as a bad CRC.
        self._garble: collections.deque[int | None] = collections.deque()
        self._nearly_full = False
        # Tests that measure latency read this: when the last VEND VALID frame left.
        self.last_vend_valid_sent_at = 0.0
        self._power_on()

    # -- device state -----------------------------------------------------------

    def _power_on(self, power_code: int = Status.POWER_UP, power_note: int | None = None) -> None:
        self._phase = "power_up"
        self._power_code = int(power_code)
        self._power_note = power_note
        self._phase_since = time.monotonic()
        self._reported = False
        self._inhibited = True
        self._clear_note()
        self._reject_reason = 0
        self._failure_code = 0
        self._jam: str | None = None
        self._stalled = False
        self._stall_then: str | None = None
        self._comm_error_pending = False     # a power cycle forgets a garbled frame
        self._escrow_deadline = 0.0
        self._escrow_polled = False
        self._auto_return = False
        self._near_full_shown = False
        self._paused_from: str | None = None
        self._settings: dict[int, bytes] = {
            Command.SET_ENABLE: b"\x00\x00", Command.SET_SECURITY: b"\x00\x00",
            Command.SET_COMMUNICATION_MODE: b"\x00", Command.SET_INHIBIT: b"\x01",
            Command.SET_DIRECTION: b"\x00", Command.SET_OPTIONAL_FUNCTION: b"\x00\x00",
            Command.SET_BARCODE_FUNCTION: b"\x00\x00", Command.SET_BARCODE_INHIBIT: b"\xff",
        }

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._phase_since = time.monotonic()
        self._reported = False
        if phase == "escrow":
            self._escrow_polled = False
            self._escrow_deadline = self._phase_since + self.unpolled_escrow_return_s
        elif phase == "idle":
            self._near_full_shown = False

    def _status_frame(self) -> Frame:
        phase = self._phase
        if self._jam == "acceptor":
            return Frame(Status.ACCEPTOR_JAM)
        if self._jam == "stacker":
            return Frame(Status.STACKER_JAM)
        if phase == "power_up":
            return Frame(self._power_code)
        if phase == "idle":
            if self._stacker_open:
                return Frame(Status.STACKER_OPEN)
            if self._stacker_full:
                return Frame(Status.STACKER_FULL)
            if self._nearly_full and not self._near_full_shown:
                return Frame(Status.STACKER_NEARLY_FULL)
            return Frame(Status.DISABLE if self._inhibited else Status.ENABLE)
        simple = {
            "initialize": Status.INITIALIZE, "accepting": Status.ACCEPTING, "holding": Status.HOLDING,
            "stacking": Status.STACKING, "vend_valid": Status.VEND_VALID, "stacked": Status.STACKED,
            "returning": Status.RETURNING, "cheated": Status.CHEATED, "pause": Status.PAUSE,
        }
        if phase in simple:
            return Frame(simple[phase])
        if phase == "escrow":
            return Frame(Status.ESCROW, bytes((self._code or 0,)))
        if phase == "rejecting":
            return Frame(Status.REJECTING, bytes((self._reject_reason,)))
        if phase == "failure":
            return Frame(Status.FAILURE, bytes((self._failure_code,)))
        raise AssertionError(f"simulator phase {phase!r} has no status")

    def _tick(self) -> None:
        """Advance the mechanism by wall time: each step takes step_s."""
        if self._stalled or self._jam:
            return
        now = time.monotonic()
        if self._phase in ("escrow", "holding") and now >= self._escrow_deadline:
            # Nobody decided in time: the unit gives the note back by itself.
            self._reject_reason = 0x79
            self._auto_return = True
            self._enter("rejecting")
            return
        if self._phase == "stacking" and self._stall_then is not None:
            if now - self._phase_since >= self.stall_s:
                # The stalled unit resets itself and powers up with the note where it stopped.
                code = (Status.POWER_UP_BILL_IN_STACKER if self._stall_then == "stacker"
                        else Status.POWER_UP_BILL_IN_ACCEPTOR)
                self._power_on(code, self._note)
            return
        elapsed = now - self._phase_since
        if elapsed < self.step_s:
            return
        phase = self._phase
        if phase in _MUST_REPORT and not self._reported:
            return
        if phase == "initialize":
            if self._power_code == Status.POWER_UP_BILL_IN_ACCEPTOR:
                self._returned.append(self._power_note)
            elif self._power_code == Status.POWER_UP_BILL_IN_STACKER:
                self._stacked.append(self._power_note)
            self._power_code = Status.POWER_UP
            self._power_note = None
            self._enter("idle")
        elif phase == "accepting":
            if self._counterfeit:
                self._enter("cheated")
            elif self._code is None or self._denomination_inhibited(self._code):
                self._reject_reason = 0x76 if self._code is None else 0x79
                self._enter("rejecting")
            else:
                self._enter("escrow")
        elif phase == "stacking":
            self._enter("vend_valid")
        elif phase == "stacked":
            self._clear_note()
            self._enter("idle")
        elif phase == "returning":
            self._returned.append(self._note)
            self._clear_note()
            self._enter("idle")
        elif phase == "rejecting":
            if self._auto_return:
                self._returned.append(self._note)
            elif self._note is not None:
                self._rejected.append(self._note)
            self._auto_return = False
            self._clear_note()
            self._enter("idle")
        elif phase == "cheated" and elapsed >= 2 * self.step_s:
            self._clear_note()
            self._enter("idle")

    def _denomination_inhibited(self, code: int) -> bool:
        return mask_inhibits(self._settings[Command.SET_ENABLE], code)

    def _currency_assign(self) -> bytes:
        digits = minor_digits(self.currency)
        entries = [entry_for_minor(code, self.country_code, minor, digits)
                   for code, minor in sorted(self.notes.items()) if code not in self.unassigned]
        used = {e.escrow_code for e in entries}
        entries += [CurrencyEntry(code, 0, 0, 0) for code in range(0x61, 0x69) if code not in used]
        return encode_currency_assign(entries)

    def _handle(self, frame: Frame) -> Frame | None:
        """The device's answer to one good host frame (None: the protocol has no answer)."""
        code = frame.code
        ack = Frame(Status.ACK)
        if code == Command.STATUS_REQUEST and not frame.data:
            if self._comm_error_pending:
                # The answer to a garbled frame comes here, not where the garble was.
                self._comm_error_pending = False
                return Frame(Status.COMMUNICATION_ERROR)
            reply = self._status_frame()
            self._reported = True
            if reply.code == Status.ESCROW and not self._escrow_polled:
                self._escrow_polled = True
                self._escrow_deadline = time.monotonic() + self.escrow_return_s
            elif reply.code == Status.STACKER_NEARLY_FULL:
                self._near_full_shown = True
            elif reply.code == Status.VEND_VALID:
                self.vend_valid_reports += 1
                self.last_vend_valid_sent_at = time.perf_counter()
            return reply
        if code == Command.ACK:
            if self._phase == "vend_valid" and self._lose_ack_next:
                # Lost on the line: the unit never hears it and repeats VEND VALID.
                self._lose_ack_next = False
                self.acks_lost += 1
                return None
            self.acks_received += 1
            if self._phase == "vend_valid" and not self._jam:
                self._stacked.append(self._note)
                self._enter("stacked")
            return None
        if code == Command.RESET:
            self._reset()
            return ack
        if code in (Command.STACK_1, Command.STACK_2, Command.RETURN, Command.HOLD):
            if self._phase not in ("escrow", "holding") or self._jam:
                return Frame(Status.INVALID_COMMAND)
            if code == Command.HOLD:
                if len(frame.data) > 1:
                    return Frame(Status.INVALID_COMMAND)
                # HOLD re-arms the unit's own return; its optional byte multiplies the time.
                self.holds_received += 1
                factor = max(1, frame.data[0]) if frame.data else 1
                self._enter("holding")
                self._escrow_deadline = self._phase_since + self.escrow_return_s * factor
                return ack
            if code != Command.RETURN and self._stall_next is not None:
                self._stall_then, self._stall_next = self._stall_next, None
            self._enter("returning" if code == Command.RETURN else "stacking")
            return ack
        if code == Command.WAIT:
            return ack
        if code in SETTING_COMMANDS:
            if self._phase not in _SETTINGS_ALLOWED or self._jam:
                self.settings_refused += 1
                return Frame(Status.INVALID_COMMAND)
            if code == Command.SET_INHIBIT:
                if len(frame.data) != 1:
                    return Frame(Status.INVALID_COMMAND)
                self._inhibited = frame.data[0] != 0
            elif code == Command.SET_ENABLE:
                try:
                    mask_inhibits(frame.data, 0x61)
                except MessageError:
                    return Frame(Status.INVALID_COMMAND)
            self._settings[code] = bytes(frame.data)
            return frame
        if Command.GET_ENABLE <= code <= Command.GET_BARCODE_INHIBIT:
            return Frame(code, self._settings[code + 0x40])
        if code == Command.GET_VERSION:
            return Frame(code, self.version.encode("ascii"))
        if code == Command.GET_BOOT_VERSION:
            return Frame(code, self.boot_version.encode("ascii"))
        if code == Command.GET_CURRENCY_ASSIGN:
            return Frame(code, self._currency_assign())
        return Frame(Status.INVALID_COMMAND)

    def _reset(self) -> None:
        # A reset finishes what the mechanism holds: a note past the point of no
        # return is stacked, one still in the head goes back to the customer.
        if self._note is not None:
            if self._phase == "stacking" and self._stall_then == "acceptor":
                self._returned.append(self._note)
            elif self._phase in ("stacking", "vend_valid", "stacked"):
                self._stacked.append(self._note)
            elif self._phase in ("escrow", "holding", "accepting", "returning", "rejecting", "pause"):
                self._returned.append(self._note)
        self._clear_note()
        self._stalled = False
        self._stall_then = None
        self._auto_return = False
        self._paused_from = None
        self._failure_code = 0
        self._inhibited = True
        self._settings[Command.SET_INHIBIT] = b"\x01"
        self._enter("initialize")

    # -- control surface (thread-safe) ---------------------------------------------

    def _takes_notes(self) -> bool:
        return self._phase == "idle" and not self._inhibited

    def power_cycle(self, note_in: str = "none") -> None:
        """Power off and on. A note in the acceptor goes back at the host's reset, one
        in the stacker is stacked at reset without a vend valid."""
        codes = {"none": Status.POWER_UP, "acceptor": Status.POWER_UP_BILL_IN_ACCEPTOR,
                 "stacker": Status.POWER_UP_BILL_IN_STACKER}
        if note_in not in codes:
            raise ValueError(f"note_in must be one of {sorted(codes)}, got {note_in!r}")
        with self._lock:
            note = self._note
            self._power_on(codes[note_in], note)

    def corrupt_next_command(self, code: int | None = None, *, count: int = 1) -> None:
        """Spoil the CRC of the host's next `count` frames (only those with command
        `code`, when given) on their way in: line noise from host to unit."""
        with self._lock:
            self._garble.extend([code] * count)

    def clear_line_faults(self) -> None:
        """The line is good again: drop every pending reply and command fault."""
        with self._lock:
            self._faults.clear()
            self._garble.clear()

    def stacker_nearly_full(self, on: bool = True) -> None:
        """The optional nearly-full sensor: the idle unit reports 0x1C once each time it
        comes back to idle, then its usual enable/disable status."""
        with self._lock:
            self._nearly_full = on
            self._near_full_shown = False

    def state(self) -> dict:
        with self._lock:
            status = self._status_frame()
            return {
                "state": self._phase, "status": f"0x{status.code:02X}", "inhibited": self._inhibited,
                "note": self._note, "stacked": list(self._stacked), "cashbox": len(self._stacked),
                "returned": list(self._returned), "rejected": list(self._rejected),
                "jam": self._jam, "stacker_full": self._stacker_full, "stacker_open": self._stacker_open,
                "stalled": self._stalled, "connected": self._link.connected,
                "acks_received": self.acks_received, "acks_lost": self.acks_lost,
                "holds_received": self.holds_received, "settings_refused": self.settings_refused, "vend_valid_reports": self.vend_valid_reports,
                "stacker_nearly_full": self._nearly_full, "faults_pending": len(self._faults),
                "denomination_mask": self._settings[Command.SET_ENABLE].hex(),
            }

    # -- line ------------------------------------------------------------------------

    def _on_bad_frame(self, error: Exception) -> None:
        if isinstance(error, CrcError):
            # A real unit stays silent on a bad CRC and answers the next status request
            # with COMMUNICATION ERROR instead.
            self._comm_error_pending = True
        return None

    def _garbled(self, frame: Frame) -> bool:
        """Whether a corrupt_next_command() fault takes this frame: it then counts as a
        bad CRC (no reply, COMMUNICATION ERROR at the next status request)."""
        with self._lock:
            if not self._garble or self._garble[0] not in (None, frame.code):
                return False
            self._garble.popleft()
            self._comm_error_pending = True
            return True


def _console(sim: Id003Simulator) -> None:
    """The shared console, plus nearfull on|off (the optional nearly-full sensor)."""
    polled_validator.console(sim, "refused (inhibited or busy)",
                             {"nearfull": lambda args: sim.stacker_nearly_full(args[:1] != ["off"])})


def main(argv: list[str] | None = None) -> int:
    return polled_validator.main(argv, prog="python -m simulators.id003", description="JCM ID-003 bill validator "
                                 "simulator", label="ID-003", make=lambda currency: Id003Simulator(currency=currency),
                                 run_console=_console)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
