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

import argparse
import collections
import sys
import threading
import time
from typing import Mapping

from drivers.id003.frames import (
    Command,
    CrcError,
    CurrencyEntry,
    Frame,
    MessageError,
    FrameDecoder,
    ProtocolError,
    SETTING_COMMANDS,
    Status,
    encode_currency_assign,
    entry_for_minor,
    mask_inhibits,
)
from hal.money import minor_digits
from simulators.serial_endpoint import SerialEndpoint, serve_until_interrupted

DEFAULT_NOTES = {0x61: 500, 0x62: 1000, 0x63: 2000, 0x64: 5000, 0x65: 10000, 0x66: 20000}
FAULT_KINDS = ("drop", "corrupt", "delay", "truncate", "double")

# Phases whose status must reach the host at least once before the device moves on,
# the way a real acceptor holds an event until it has been polled.
_MUST_REPORT = frozenset({"stacked", "rejecting", "cheated"})
# A real unit returns a note by itself this long after it first reported ESCROW (or
# after HOLD), and sooner when the host never polls the escrow at all.
ESCROW_RETURN_S = 10.0
UNPOLLED_ESCROW_RETURN_S = 3.0
# Setting commands (0xC0..0xC7) are refused outside these phases: never mid-note.
_SETTINGS_ALLOWED = frozenset({"initialize", "idle"})
STALL_ENDS = ("stacker", "acceptor")


class Id003Simulator:
    """One simulated acceptor. `step_s` is how long each mechanical step takes."""

    def __init__(self, currency: str = "EUR", notes: Mapping[int, int] | None = None, *,
                 step_s: float = 0.03, country_code: int = 0x00, unassigned: tuple[int, ...] = (),
                 escrow_return_s: float = ESCROW_RETURN_S,
                 unpolled_escrow_return_s: float = UNPOLLED_ESCROW_RETURN_S, stall_s: float = 2.0):
        self.currency = currency
        self.notes = dict(DEFAULT_NOTES if notes is None else notes)
        # Escrow codes the device knows but leaves out of its currency-assign answer,
        # to exercise a host that meets an escrow code it cannot value.
        self.unassigned = set(unassigned)
        self.step_s = step_s
        # The unit's own timings, shortened in tests so that they run fast.
        self.escrow_return_s = escrow_return_s
        self.unpolled_escrow_return_s = unpolled_escrow_return_s
        self.stall_s = stall_s
        self.country_code = country_code
        # The shape of a real unit's answer: model, region tag with its set number, firmware.
        self.version = f"U({currency}5)-700-SS ID003-05V027-00 05DEC24"
        self.boot_version = "BOOT V1.00"
        self._lock = threading.RLock()
        self._link = SerialEndpoint()
        self._url = ""
        self._faults: collections.deque[tuple[str, float]] = collections.deque()
        self.frames_received = 0
        self.bad_frames_received = 0
        self.acks_received = 0
        self.acks_lost = 0
        self.holds_received = 0
        self.vend_valid_reports = 0
        self._comm_error_pending = False
        self.settings_refused = 0
        # Host frames to spoil on the line (by command code, None = any), as a bad CRC.
        self._garble: collections.deque[int | None] = collections.deque()
        self._stall_next: str | None = None
        self._lose_ack_next = False
        self._nearly_full = False
        # Tests that measure latency read this: when the last VEND VALID frame left.
        self.last_vend_valid_sent_at = 0.0
        # What the mechanism and cashbox hold survives a power cycle.
        self._stacked: list[int | None] = []
        self._returned: list[int | None] = []
        self._rejected: list[int] = []
        self._stacker_full = False
        self._stacker_open = False
        self._power_on()

    # -- device state -----------------------------------------------------------

    def _power_on(self, power_code: int = Status.POWER_UP, power_note: int | None = None) -> None:
        self._phase = "power_up"
        self._power_code = int(power_code)
        self._power_note = power_note
        self._phase_since = time.monotonic()
        self._reported = False
        self._inhibited = True
        self._note: int | None = None
        self._note_code: int | None = None
        self._counterfeit = False
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
            return Frame(Status.ESCROW, bytes((self._note_code or 0,)))
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
            elif self._note_code is None or self._denomination_inhibited(self._note_code):
                self._reject_reason = 0x76 if self._note_code is None else 0x79
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

    def _clear_note(self) -> None:
        self._note = None
        self._note_code = None
        self._counterfeit = False

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

    def _can_take_note(self) -> bool:
        return (self._phase == "idle" and not self._inhibited and not self._jam
                and not self._stacker_full and not self._stacker_open)

    def insert_note(self, minor: int) -> bool:
        """Offer a note worth `minor` units. False when the acceptor would not draw it in
        (inhibited, busy, jammed, stacker full or open)."""
        with self._lock:
            if not self._can_take_note():
                return False
            self._note = minor
            self._note_code = next((c for c, m in self.notes.items() if m == minor), None)
            self._enter("accepting")
            return True

    def insert_counterfeit(self) -> bool:
        with self._lock:
            if not self._can_take_note():
                return False
            self._note = None
            self._note_code = None
            self._counterfeit = True
            self._enter("accepting")
            return True

    def jam(self, where: str = "acceptor") -> None:
        if where not in ("acceptor", "stacker"):
            raise ValueError(f"jam where must be 'acceptor' or 'stacker', got {where!r}")
        with self._lock:
            self._jam = where

    def clear_jam(self) -> None:
        """The technician pulls the jammed note out: it is neither stacked nor returned."""
        with self._lock:
            if self._jam is None:
                return
            self._jam = None
            if self._phase not in ("power_up", "initialize"):
                self._clear_note()
                self._enter("idle")

    def stacker_full(self, on: bool = True) -> None:
        with self._lock:
            self._stacker_full = on

    def stacker_open(self, on: bool = True) -> None:
        with self._lock:
            self._stacker_open = on

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

    def fault_next_reply(self, kind: str, *, count: int = 1, delay_s: float = 0.5) -> None:
        """Spoil the next `count` replies: drop, corrupt the CRC, delay by delay_s,
        truncate, or send twice."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        with self._lock:
            self._faults.extend([(kind, delay_s)] * count)

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

    def stall_stacking(self, then: str) -> None:
        """The next note told to stack stalls in STACKING (no VEND VALID); after stall_s
        the unit resets itself and powers up with the note in the stacker (0x42: the
        host's reset stacks it) or back in the acceptor (0x41: the reset returns it)."""
        if then not in STALL_ENDS:
            raise ValueError(f"stall_stacking then must be one of {STALL_ENDS}, got {then!r}")
        with self._lock:
            self._stall_next = then

    def lose_host_ack_once(self) -> None:
        """The host's ACK to the next VEND VALID is lost on the line: the unit reports
        VEND VALID again on the next poll."""
        with self._lock:
            self._lose_ack_next = True

    def stacker_nearly_full(self, on: bool = True) -> None:
        """The optional nearly-full sensor: the idle unit reports 0x1C once each time it
        comes back to idle, then its usual enable/disable status."""
        with self._lock:
            self._nearly_full = on
            self._near_full_shown = False

    def stall(self, on: bool = True) -> None:
        """Freeze the mechanism in whatever transient state it is in (a hung motor);
        a host reset un-freezes it."""
        with self._lock:
            self._stalled = on

    def pause(self, on: bool = True) -> None:
        """A second note pushed in while stacking: the acceptor pauses until it is pulled."""
        with self._lock:
            if on and self._paused_from is None:
                self._paused_from = self._phase
                self._enter("pause")
            elif not on and self._paused_from is not None:
                self._enter(self._paused_from)
                self._paused_from = None

    def fail(self, code: int = 0xA2) -> None:
        """A hardware failure with its failure code, until the host resets."""
        with self._lock:
            self._failure_code = code
            self._enter("failure")

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

    # -- transport --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self, transport: str = "tcp", *, port: int = 0) -> str:
        """Start serving; returns the pyserial URL the host should open."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        self._url = self._link.open(transport, port, serve=self._serve, name="id003-sim")
        return self._url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self) -> "Id003Simulator":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        link = self._link
        decoder = FrameDecoder()
        connection = link.connections
        while link.serving():
            data = link.read(0.01)
            if link.connections != connection:
                # A new host starts a new byte stream: half a frame from the last one is not its.
                decoder = FrameDecoder()
                connection = link.connections
            # The mechanism keeps moving whether or not a host is connected or talking.
            with self._lock:
                self._tick()
            if not data:
                # Some kernels refuse to turn PARENB on again on a pty whose last user left it
                # cleared (EINVAL from tcsetattr), so a second 8E1 open would fail. While the
                # line is quiet, put back the raw settings the pty started with; they are
                # equivalent for a pty, so a host that has it open does not notice.
                link.restore_pty_settings()
                continue
            for item in decoder.feed(data):
                if isinstance(item, ProtocolError):
                    self.bad_frames_received += 1
                    reply: Frame | None = None
                    if isinstance(item, CrcError):
                        # A real unit stays silent on a bad CRC and answers the next
                        # status request with COMMUNICATION ERROR instead.
                        with self._lock:
                            self._comm_error_pending = True
                elif self._garbled(item):
                    self.bad_frames_received += 1
                    reply = None
                else:
                    self.frames_received += 1
                    with self._lock:
                        self._tick()
                        reply = self._handle(item)
                if reply is not None:
                    self._send(reply)

    def _garbled(self, frame: Frame) -> bool:
        """Whether a corrupt_next_command() fault takes this frame: it then counts as a
        bad CRC (no reply, COMMUNICATION ERROR at the next status request)."""
        with self._lock:
            if not self._garble or self._garble[0] not in (None, frame.code):
                return False
            self._garble.popleft()
            self._comm_error_pending = True
            return True

    def _send(self, reply: Frame) -> None:
        raw = reply.encode()
        with self._lock:
            kind, delay = self._faults.popleft() if self._faults else ("", 0.0)
        if kind == "drop":
            return
        if kind == "corrupt":
            raw = raw[:-1] + bytes((raw[-1] ^ 0x5A,))
        elif kind == "truncate":
            raw = raw[: max(1, len(raw) - 2)]
        elif kind == "double":
            raw = raw + raw
        elif kind == "delay":
            time.sleep(delay)
        self._link.write(raw)


def _console(sim: Id003Simulator) -> None:
    """Type commands on stdin: insert 1000 | counterfeit | jam acceptor | clear |
    full on|off | open on|off | nearfull on|off | power none|acceptor|stacker | fault drop |
    stall stacker|acceptor | loseack | state | quit."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "insert":
                print("taken" if sim.insert_note(int(args[0])) else "refused (inhibited or busy)")
            elif cmd == "counterfeit":
                sim.insert_counterfeit()
            elif cmd == "jam":
                sim.jam(args[0] if args else "acceptor")
            elif cmd == "clear":
                sim.clear_jam()
            elif cmd == "full":
                sim.stacker_full(args[:1] != ["off"])
            elif cmd == "open":
                sim.stacker_open(args[:1] != ["off"])
            elif cmd == "power":
                sim.power_cycle(args[0] if args else "none")
            elif cmd == "fault":
                sim.fault_next_reply(args[0])
            elif cmd == "stall":
                sim.stall_stacking(args[0] if args else "stacker")
            elif cmd == "loseack":
                sim.lose_host_ack_once()
            elif cmd == "nearfull":
                sim.stacker_nearly_full(args[:1] != ["off"])
            elif cmd == "quit":
                return
            print(sim.state())
        except (IndexError, ValueError) as exc:
            print(f"? {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.id003", description="JCM ID-003 bill validator simulator")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", action="store_true", help="serve on a new pty pair and print the slave path")
    parser.add_argument("--currency", default="EUR")
    args = parser.parse_args(argv)
    sim = Id003Simulator(currency=args.currency)
    url = sim.start("pty") if args.pty else sim.start("tcp", port=args.tcp)
    print(f"ID-003 simulator ({args.currency}) at {url}", flush=True)
    serve_until_interrupted(sim.stop, lambda: _console(sim))
    return 0


if __name__ == "__main__":
    sys.exit(main())
