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

import argparse
import collections
import sys
import threading
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
    ProtocolError,
    State,
    bill_mask,
    bill_type_for_minor,
    encode_bill_table,
    encode_identification,
    parse_bill_mask,
)
from hal.money import minor_digits
from simulators.serial_endpoint import SerialEndpoint, serve_until_interrupted

DEFAULT_NOTES = {2: 500, 3: 1000, 4: 2000, 5: 5000, 6: 10000, 7: 20000}
FAULT_KINDS = ("drop", "corrupt", "delay", "truncate", "double")
STALL_THEN = ("stacker", "acceptor")

# Phases whose event must be acknowledged by the controller before the unit moves on.
_NEEDS_ACK = frozenset({"stacked", "returned", "rejecting", "cheated"})
# Phases in which IDENTIFICATION and GET BILL TABLE are allowed (the document's list).
_SETUP_PHASES = frozenset({"power_up", "initialize", "idle_disabled", "failure"})


class CcnetSimulator:
    """One simulated validator. `step_s` is how long each mechanical step takes;
    `escrow_hold_s` how long a note waits in escrow (or after HOLD) before it goes back."""

    def __init__(self, currency: str = "EUR", notes: Mapping[int, int] | None = None, *,
                 step_s: float = 0.03, escrow_hold_s: float = 10.0, stall_s: float | None = None,
                 part_number: str = "SM-SIM-3300", serial: str = "CCSIM0000001") -> None:
        self.currency = currency
        self.notes = dict(DEFAULT_NOTES if notes is None else notes)
        self.step_s = step_s
        self.escrow_hold_s = escrow_hold_s
        # How long a stalled stack hangs before the unit powers up again (stall_stacking).
        self.stall_s = 20 * step_s if stall_s is None else stall_s
        self.part_number = part_number
        self.serial = serial
        self.address = ADDRESS_VALIDATOR
        self._lock = threading.RLock()
        self._link = SerialEndpoint()
        self._url = ""
        self._faults: collections.deque[tuple[str, float]] = collections.deque()
        self.frames_received = 0
        self.bad_frames_received = 0
        self.acks_received = 0
        self.acks_lost = 0
        self.resets_received = 0
        # When the last STACKED answer left (the benchmark measures from here).
        self.last_stacked_sent_at = 0.0
        # What the mechanism and cashbox hold survives a power cycle.
        self._stacked: list[int | None] = []
        self._returned: list[int | None] = []
        self._rejected: list[int | None] = []
        self._cassette_full = False
        self._cassette_out = False
        self._stall_next: str | None = None
        self._lose_ack_next = False
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
        self._note: int | None = None
        self._bill_type: int | None = None
        self._counterfeit = False
        self._reject_reason = 0
        self._failure_code = 0
        self._jam: str | None = None
        self._stall_then: str | None = None
        self._frozen = False
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
            if self._cassette_out:
                return bytes((State.CASSETTE_OUT,))
            if self._cassette_full:
                return bytes((State.CASSETTE_FULL,))
            return bytes((State.IDLING if phase == "idle_enabled" else State.UNIT_DISABLED,))
        simple = {"initialize": State.INITIALIZE, "accepting": State.ACCEPTING, "stacking": State.STACKING,
                  "returning": State.RETURNING, "holding": State.HOLDING, "cheated": State.CHEATED,
                  "pause": State.PAUSE}
        if phase in simple:
            return bytes((simple[phase],))
        with_type = {"escrow": State.ESCROW, "stacked": State.STACKED, "returned": State.RETURNED}
        if phase in with_type:
            return bytes((with_type[phase], self._bill_type or 0))
        if phase == "rejecting":
            return bytes((State.REJECTING, self._reject_reason))
        if phase == "failure":
            return bytes((State.FAILURE, self._failure_code))
        raise AssertionError(f"simulator phase {phase!r} has no state")

    def _tick(self) -> None:
        """Advance the mechanism by wall time: each step takes step_s."""
        if self._jam or self._frozen or self._phase in ("power_up", "failure", "pause"):
            return
        now = time.monotonic()
        elapsed = now - self._phase_since
        phase = self._phase
        if phase == "stacking" and self._stall_then is not None:
            if elapsed >= self.stall_s:
                # The hung unit loses power and comes back with the note where `then` says.
                code = State.POWER_UP_BILL_IN_STACKER if self._stall_then == "stacker" \
                    else State.POWER_UP_BILL_IN_VALIDATOR
                held = (self._bill_type or 0, self._note)
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
                self._bill_type, self._note = after[1], after[2]
                self._enter("stacked")
            else:
                if after is not None:
                    self._returned.append(after[2])
                self._enter(self._idle_phase())
        elif phase == "accepting":
            if self._counterfeit:
                self._enter("cheated")
            elif self._bill_type is None:
                self._reject_reason = 0x65          # identification error: not a note it knows
                self._enter("rejecting")
            elif self._bill_type not in self._enabled:
                self._reject_reason = 0x68          # inhibited denomination
                self._enter("rejecting")
            elif self._bill_type in self._escrow:
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

    def _clear_note(self) -> None:
        self._note = None
        self._bill_type = None
        self._counterfeit = False

    def _bill_table(self) -> bytes:
        digits = minor_digits(self.currency)
        entries: list[BillType] = [bill_type_for_minor(t, self.currency, minor, digits)
                                   for t, minor in sorted(self.notes.items())]
        return encode_bill_table(entries)

    def _setup_allowed(self) -> bool:
        return self._phase in _SETUP_PHASES or self._jam is not None or self._phase_is_fault()

    def _phase_is_fault(self) -> bool:
        return self._phase.startswith("idle") and (self._cassette_out or self._cassette_full)

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
        elif self._note is not None or self._bill_type is not None:
            held = (self._bill_type or 0, self._note)
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

    def _can_take_note(self) -> bool:
        return (self._phase == "idle_enabled" and not self._jam and not self._cassette_full
                and not self._cassette_out)

    def insert_note(self, minor: int) -> bool:
        """Offer a note worth `minor` units. False when the unit would not draw it in
        (disabled, busy, jammed, cassette full or out)."""
        with self._lock:
            if not self._can_take_note():
                return False
            self._note = minor
            self._bill_type = next((t for t, m in self.notes.items() if m == minor), None)
            self._enter("accepting")
            return True

    def insert_counterfeit(self) -> bool:
        with self._lock:
            if not self._can_take_note():
                return False
            self._clear_note()
            self._counterfeit = True
            self._enter("accepting")
            return True

    def jam(self, where: str = "acceptor") -> None:
        """A jam in the acceptance path ("acceptor", 0x43) or in the drop cassette ("stacker", 0x44)."""
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
                self._stall_then = None
                self._enter(self._idle_phase())

    def stacker_full(self, on: bool = True) -> None:
        with self._lock:
            self._cassette_full = bool(on)

    def stacker_open(self, on: bool = True) -> None:
        """The drop cassette is pulled out (0x42) or put back."""
        with self._lock:
            self._cassette_out = bool(on)

    def power_cycle(self, note_in: str = "none") -> None:
        """Power off and on. A note in the acceptor goes back at the controller's reset, one
        in the stacker is stacked and reported as STACKED once initialisation ends."""
        codes = {"none": State.POWER_UP, "acceptor": State.POWER_UP_BILL_IN_VALIDATOR,
                 "stacker": State.POWER_UP_BILL_IN_STACKER}
        if note_in not in codes:
            raise ValueError(f"note_in must be one of {sorted(codes)}, got {note_in!r}")
        with self._lock:
            held = (self._bill_type or 0, self._note) if note_in != "none" else None
            self._power_on(codes[note_in], held)

    def stall_stacking(self, then: str) -> None:
        """The next note told to stack hangs mid-stack (STACKING, no settled event) for
        stall_s, then the unit powers up with it in the stacker (0x12: the reset stacks it
        and reports STACKED) or back in the acceptor (0x11: the reset returns it). A reset
        from the controller during the hang ends it the same way, without the power-up code."""
        if then not in STALL_THEN:
            raise ValueError(f"stall_stacking then must be one of {STALL_THEN}, got {then!r}")
        with self._lock:
            self._stall_next = then

    def lose_host_ack_once(self) -> None:
        """The controller's ACK of the next STACKED answer is lost on the line, so the unit
        reports STACKED again (the note must still be credited once)."""
        with self._lock:
            self._lose_ack_next = True

    def fault_next_reply(self, kind: str, *, count: int = 1, delay_s: float = 0.5) -> None:
        """Spoil the next `count` replies: drop, corrupt the CRC, delay by delay_s,
        truncate, or send twice."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        with self._lock:
            self._faults.extend([(kind, delay_s)] * count)

    def stall(self, on: bool = True) -> None:
        """Freeze the mechanism in whatever state it is in (a hung motor); a reset from the
        controller, or a power cycle, un-freezes it."""
        with self._lock:
            self._frozen = bool(on)

    def pause(self, on: bool = True) -> None:
        """A second note pushed in while the first is stacking: the unit pauses until it is pulled."""
        with self._lock:
            if on and self._paused_from is None:
                self._paused_from = self._phase
                self._enter("pause")
            elif not on and self._paused_from is not None:
                self._enter(self._paused_from)
                self._paused_from = None

    def fail(self, code: int = 0x50) -> None:
        """A hardware failure (0x47 and its failure code) until the controller resets."""
        with self._lock:
            self._failure_code = code
            self._enter("failure")

    def state(self) -> dict:
        with self._lock:
            answer = self._answer()
            return {
                "state": self._phase, "status": f"0x{answer[0]:02X}", "inhibited": not self._enabled,
                "enabled_types": sorted(self._enabled), "note": self._note,
                "stacked": list(self._stacked), "cashbox": len(self._stacked),
                "returned": list(self._returned), "rejected": list(self._rejected),
                "jam": self._jam, "stacker_full": self._cassette_full, "stacker_open": self._cassette_out,
                "stalled": self._frozen or (self._stall_then is not None and self._phase == "stacking"),
                # False while an event the controller must acknowledge (STACKED...) is unacknowledged.
                "event_acked": self._acked or self._phase not in _NEEDS_ACK,
                "connected": self._link.connected, "acks_received": self.acks_received,
                "acks_lost": self.acks_lost, "resets_received": self.resets_received,
                "faults_pending": len(self._faults),
            }

    # -- transport ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self, transport: str = "tcp", *, port: int = 0) -> str:
        """Start serving; returns the pyserial URL the controller should open."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        self._url = self._link.open(transport, port, serve=self._serve, name="ccnet-sim")
        return self._url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self) -> "CcnetSimulator":
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
                # A new controller starts a new byte stream: half a frame from the last one is not its.
                decoder = FrameDecoder()
                connection = link.connections
            with self._lock:
                self._tick()
            if not data:
                link.restore_pty_settings()
                continue
            for item in decoder.feed(data):
                reply: Frame | None
                if isinstance(item, ProtocolError):
                    self.bad_frames_received += 1
                    # The document: a peripheral that finds a bad CRC answers NAK.
                    reply = NAK_FRAME if isinstance(item, CrcError) else None
                else:
                    self.frames_received += 1
                    with self._lock:
                        self._tick()
                        reply = self._handle(item)
                if reply is not None:
                    self._send(reply)

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


def _console(sim: CcnetSimulator) -> None:
    """Type commands on stdin: insert 1000 | counterfeit | jam acceptor | clear | full on|off |
    open on|off | power none|acceptor|stacker | stall stacker|acceptor | loseack | fault drop | state | quit."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "insert":
                print("taken" if sim.insert_note(int(args[0])) else "refused (disabled or busy)")
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
            elif cmd == "stall":
                sim.stall_stacking(args[0] if args else "stacker")
            elif cmd == "loseack":
                sim.lose_host_ack_once()
            elif cmd == "fault":
                sim.fault_next_reply(args[0])
            elif cmd == "quit":
                return
            print(sim.state())
        except (IndexError, ValueError) as exc:
            print(f"? {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.ccnet", description="CashCode ccNet bill validator simulator")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", action="store_true", help="serve on a new pty pair and print the slave path")
    parser.add_argument("--currency", default="EUR")
    args = parser.parse_args(argv)
    sim = CcnetSimulator(currency=args.currency)
    url = sim.start("pty") if args.pty else sim.start("tcp", port=args.tcp)
    print(f"ccNet simulator ({args.currency}) at {url}", flush=True)
    serve_until_interrupted(sim.stop, lambda: _console(sim))
    return 0


if __name__ == "__main__":
    sys.exit(main())
