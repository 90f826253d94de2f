"""What every simulated polled bill validator shares (device side of ID-003 and ccNet).

The serving loop over a SerialEndpoint (the mechanism ticks by wall time whether or not a
host talks), reply faults (drop, corrupt, delay, truncate, double), the books of what the
unit stacked, returned and rejected, and the control surface whose names are the same on
every validator simulator. A protocol module subclasses it with its codec, its phases and
how it answers each frame; nothing here knows a byte of either protocol.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Mapping

from simulators.serial_endpoint import SerialEndpoint, serve_until_interrupted

FAULT_KINDS = ("drop", "corrupt", "delay", "truncate", "double")
STALL_ENDS = ("stacker", "acceptor")


class PolledValidatorSimulator(ABC):
    """One simulated unit. `step_s` is how long each mechanical step takes."""

    # The thread name of the serving loop, and the codec's stream decoder.
    TAG: ClassVar[str] = ""
    DECODER: ClassVar[type] = object
    # The protocol's failure code that fail() reports when none is given.
    DEFAULT_FAILURE: ClassVar[int] = 0

    def __init__(self, currency: str, notes: Mapping[int, int], *, step_s: float) -> None:
        self.currency = currency
        self.notes = dict(notes)
        self.step_s = step_s
        self._lock = threading.RLock()
        self._link = SerialEndpoint()
        self._url = ""
        self._faults: collections.deque[tuple[str, float]] = collections.deque()
        self.frames_received = 0
        self.bad_frames_received = 0
        self.acks_received = 0
        self.acks_lost = 0
        # What the mechanism and cashbox hold survives a power cycle.
        self._stacked: list[int | None] = []
        self._returned: list[int | None] = []
        self._rejected: list[int | None] = []
        self._stacker_full = False
        self._stacker_open = False
        self._stall_next: str | None = None
        self._lose_ack_next = False

    # -- what a protocol supplies -----------------------------------------------------------

    @abstractmethod
    def _tick(self) -> None:
        """Advance the mechanism by wall time."""
        raise NotImplementedError

    @abstractmethod
    def _handle(self, frame):
        """The unit's answer to one good host frame (None: the protocol has no answer)."""
        raise NotImplementedError

    def _on_bad_frame(self, error: Exception):
        """A frame that did not decode (bad CRC, length...): the answer, if the protocol gives one."""
        return None

    def _garbled(self, frame) -> bool:
        """Whether a fault spoils this good host frame on its way in (counted as bad)."""
        return False

    @abstractmethod
    def _takes_notes(self) -> bool:
        """Whether the unit is idle and enabled, before jams and the cashbox are looked at."""
        raise NotImplementedError

    @abstractmethod
    def _enter(self, phase: str) -> None:
        raise NotImplementedError

    def _idle_phase(self) -> str:
        return "idle"

    # -- device state --------------------------------------------------------------------------

    def _clear_note(self) -> None:
        self._note: int | None = None
        # The protocol's code of the note in the unit (ID-003 escrow code, ccNet bill type).
        self._code: int | None = None
        self._counterfeit = False

    def _can_take_note(self) -> bool:
        return self._takes_notes() and not self._jam and not self._stacker_full and not self._stacker_open

    # -- control surface (thread-safe) -----------------------------------------------------------

    def insert_note(self, minor: int) -> bool:
        """Offer a note worth `minor` units. False when the unit would not draw it in
        (inhibited, busy, jammed, stacker full or open)."""
        with self._lock:
            if not self._can_take_note():
                return False
            self._note = minor
            self._code = next((c for c, m in self.notes.items() if m == minor), None)
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
        """A jam in the acceptance path ("acceptor") or in the stacker / drop cassette ("stacker")."""
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
            self._stacker_full = bool(on)

    def stacker_open(self, on: bool = True) -> None:
        """The stacker is opened (the cashbox pulled out), or closed again."""
        with self._lock:
            self._stacker_open = bool(on)

    def stall_stacking(self, then: str) -> None:
        """The next note told to stack stalls mid-stack (no settled event); after stall_s
        the unit powers up with the note in the stacker (the host's reset stacks it) or
        back in the acceptor (the reset returns it)."""
        if then not in STALL_ENDS:
            raise ValueError(f"stall_stacking then must be one of {STALL_ENDS}, got {then!r}")
        with self._lock:
            self._stall_next = then

    def lose_host_ack_once(self) -> None:
        """The host's ACK of the next settled event is lost on the line, so the unit
        reports it again (the note must still be credited once)."""
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
        """Freeze the mechanism in whatever state it is in (a hung motor); a reset from
        the host, or a power cycle, un-freezes it."""
        with self._lock:
            self._stalled = bool(on)

    def pause(self, on: bool = True) -> None:
        """A second note pushed in while the first is stacking: the unit pauses until it is pulled."""
        with self._lock:
            if on and self._paused_from is None:
                self._paused_from = self._phase
                self._enter("pause")
            elif not on and self._paused_from is not None:
                self._enter(self._paused_from)
                self._paused_from = None

    def fail(self, code: int | None = None) -> None:
        """A hardware failure with its failure code, until the host resets."""
        with self._lock:
            self._failure_code = self.DEFAULT_FAILURE if code is None else code
            self._enter("failure")

    # -- transport ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self, transport: str = "tcp", *, port: int = 0) -> str:
        """Start serving; returns the pyserial URL the host should open."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        self._url = self._link.open(transport, port, serve=self._serve, name=f"{self.TAG}-sim")
        return self._url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        link = self._link
        decoder = self.DECODER()
        connection = link.connections
        while link.serving():
            data = link.read(0.01)
            if link.connections != connection:
                # A new host starts a new byte stream: half a frame from the last one is not its.
                decoder = self.DECODER()
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
                if isinstance(item, Exception):
                    self.bad_frames_received += 1
                    with self._lock:
                        reply = self._on_bad_frame(item)
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

    def _send(self, reply) -> None:
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


def console(sim: PolledValidatorSimulator, refused: str,
            extra: Mapping[str, Callable[[list[str]], None]] | None = None) -> None:
    """Type commands on stdin: insert 1000 | counterfeit | jam acceptor | clear | full on|off |
    open on|off | power none|acceptor|stacker | stall stacker|acceptor | loseack | fault drop |
    state | quit, plus the protocol's `extra` ones."""
    commands: dict[str, Callable[[list[str]], object]] = {
        "insert": lambda args: print("taken" if sim.insert_note(int(args[0])) else refused),
        "counterfeit": lambda args: sim.insert_counterfeit(),
        "jam": lambda args: sim.jam(args[0] if args else "acceptor"),
        "clear": lambda args: sim.clear_jam(),
        "full": lambda args: sim.stacker_full(args[:1] != ["off"]),
        "open": lambda args: sim.stacker_open(args[:1] != ["off"]),
        "power": lambda args: sim.power_cycle(args[0] if args else "none"),  # type: ignore[attr-defined]
        "fault": lambda args: sim.fault_next_reply(args[0]),
        "stall": lambda args: sim.stall_stacking(args[0] if args else "stacker"),
        "loseack": lambda args: sim.lose_host_ack_once(),
        "state": lambda args: None,
        **(extra or {}),
    }
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd == "quit":
            return
        try:
            action = commands.get(cmd)
            if action is not None:
                action(args)
            print(sim.state())  # type: ignore[attr-defined]
        except (IndexError, ValueError) as exc:
            print(f"? {exc}")


def main(argv: list[str] | None, *, prog: str, description: str, label: str,
         make: Callable[[str], PolledValidatorSimulator], run_console: Callable[[PolledValidatorSimulator], None]) -> int:
    """The standalone simulator: serve on TCP or a pty until interrupted, with a console."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", action="store_true", help="serve on a new pty pair and print the slave path")
    parser.add_argument("--currency", default="EUR")
    args = parser.parse_args(argv)
    sim = make(args.currency)
    url = sim.start("pty") if args.pty else sim.start("tcp", port=args.tcp)
    print(f"{label} simulator ({args.currency}) at {url}", flush=True)
    serve_until_interrupted(sim.stop, lambda: run_console(sim))
    return 0
