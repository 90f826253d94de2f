"""An ITL SSP / eSSP note validator (NV200-like), the device side of the wire, byte for byte.

Reachable as `socket://127.0.0.1:PORT` or a pty path; reuses drivers.ssp.frames/crypto so
both sides share one codec. Controls (insert a note, jam, pull the cashbox, open the note
path, power-cycle, stall while stacking, spoil the next reply) are thread-safe and meant for
tests, the demo and the control panel. Behaviour follows ITL's GA138 / GA973 where a real
unit differs from a naive one: 0xE0 in every poll while the path is open, 0xFA to plain
commands when encryption is enforced, 0xF8 where the manual says fail.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
from dataclasses import dataclass
from typing import Sequence

from drivers.ssp import crypto
from drivers.ssp.frames import (
    ENCRYPTED_PACKET,
    Command,
    Event,
    Frame,
    FrameDecoder,
    PollEvent,
    Reply,
    SetupInfo,
    encode_frame,
    encode_poll_events,
    encode_setup_reply,
    MessageError,
    parse_inhibits,
    parse_poll_events,
)
from simulators.serial_endpoint import SerialEndpoint

FAULT_KINDS = ("drop", "corrupt", "delay", "truncate", "double", "late")
_STUCK_EVENTS = {"reading": Event.READ, "stacking": Event.STACKING, "rejecting": Event.REJECTING}
_PERSISTENT = {Event.SAFE_JAM, Event.UNSAFE_JAM, Event.STACKER_FULL, Event.CASHBOX_REMOVED, Event.DISABLED}


@dataclass
class _Note:
    channel: int          # 0 = not a note the device recognises
    strimming: bool = False


class SspSimulator:
    """The device. Timings are short (tens of ms) so tests run fast; all are attributes."""

    def __init__(self, currency: str = "EUR", channels: Sequence[int] = (500, 1000, 2000, 5000, 10000, 20000),
                 serial_number: int = 12345678, model: str = "NV200", *, address: int = 0,
                 firmware: str = "0420", fixed_key: int = crypto.DEFAULT_FIXED_KEY,
                 step_s: float = 0.03, boot_s: float = 0.15, delay_s: float = 0.8,
                 escrow_timeout_s: float = 10.0, stacker_capacity: int = 1000,
                 honour_inhibits: bool = True, encryption_enforced: bool = False,
                 stall_s: float = 0.5) -> None:
        self.currency = currency
        self.channels = tuple(int(c) for c in channels)
        self.serial_number = serial_number
        self.model = model
        self.address = address
        self.firmware = firmware
        self.fixed_key = fixed_key
        self.step_s = step_s
        self.boot_s = boot_s
        self.delay_s = delay_s
        self.escrow_timeout_s = escrow_timeout_s
        self.stacker_capacity = stacker_capacity
        # False models a unit whose dataset ignores the inhibit mask, so a host can meet a
        # channel it never enabled and has no value for.
        self.honour_inhibits = honour_inhibits
        # A unit set to "encryption mandatory" answers KEY NOT SET (0xFA) to every command
        # outside the key exchange until a key is negotiated (GA138 "Encryption Layer").
        self.encryption_enforced = encryption_enforced
        # How long a note stalls mid-stack (stall_stacking) before the unit resets itself.
        self.stall_s = stall_s
        self._lock = threading.RLock()
        # A host that connects while another is served takes the line over.
        self._link = SerialEndpoint(takeover=True)
        self._decoder = FrameDecoder()
        self._faults: collections.deque[tuple[str, int | None]] = collections.deque()
        self._delayed: list[tuple[float, bytes]] = []
        self._late: tuple[int, bytes] | None = None
        self.rx_log: list[dict] = []
        self.tx_log: list[dict] = []
        self.cashbox: collections.Counter[int] = collections.Counter()
        self._stacker_full = False
        self._cashbox_open = False
        self._jam: str | None = None
        self._stuck: str | None = None
        self._path_open = False
        self._repeated: list[PollEvent] = []
        self._stall_then: str | None = None
        self._stall_until: tuple[str, float] | None = None
        self._power_on()
        self._booting_until = 0.0

    # ------------------------------------------------------------------ life cycle

    def _power_on(self) -> None:
        self._enabled = False
        self._inhibits: set[int] = set()
        self._last_seq: int | None = None
        self._last_reply: bytes | None = None
        self._last_plain = b""
        self._protocol = 4
        self._generator: int | None = None
        self._modulus: int | None = None
        self._session: crypto.EsspSession | None = None
        self._events: list[PollEvent] = []
        self._phase = "idle"
        self._note: _Note | None = None
        self._phase_since = time.monotonic()
        self._escrow_reported = False
        self._escrow_touched = 0.0
        self._last_reject = 0x00
        self._stage = 0

    def start(self, transport: str = "tcp", port: int = 0) -> str:
        """Start serving; returns a pyserial URL (`socket://127.0.0.1:PORT` or a pty path).
        `port` 0 lets the system pick a free loopback port."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        return self._link.open(transport, port, serve=self._run, name="ssp-simulator")

    @property
    def url(self) -> str:
        if self._link.url is None:
            raise RuntimeError("simulator not started")
        return self._link.url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self) -> "SspSimulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while self._link.serving():
            chunk = self._link.read(0.01)
            with self._lock:
                now = time.monotonic()
                if chunk and now >= self._booting_until:
                    for frame in self._decoder.feed(chunk):
                        self._on_frame(frame)
                    self._decoder.take_errors()
                elif now < self._booting_until:
                    self._decoder.reset()
                self._tick(now)
                due = [d for d in self._delayed if d[0] <= now]
                self._delayed = [d for d in self._delayed if d[0] > now]
            for _, data in due:
                self._link.write(data)

    # ------------------------------------------------------------------ controls

    def insert_note(self, minor: int) -> bool:
        """A customer pushes a note of `minor` units into the bezel. False when the bezel
        cannot take it now (another note on its way, a jam, no power)."""
        with self._lock:
            channel = self.channels.index(minor) + 1 if minor in self.channels else 0
            return self._begin_note(_Note(channel))

    def insert_counterfeit(self, strimming: bool = False) -> bool:
        """A note the device does not recognise; with strimming=True someone also pulls it
        back on a string, which the device reports as a fraud attempt."""
        with self._lock:
            return self._begin_note(_Note(1 if strimming else 0, strimming=strimming))

    def jam(self, where: str = "acceptor") -> None:
        """Jam the note path: 'acceptor' = unsafe jam (note reachable at the bezel),
        'stacker' = safe jam (note inside, out of the customer's reach)."""
        if where not in ("acceptor", "stacker"):
            raise ValueError(f"jam where must be 'acceptor' or 'stacker', got {where!r}")
        with self._lock:
            self._jam = where

    def clear_jam(self) -> None:
        with self._lock:
            self._jam = None
            self._phase_since = time.monotonic()

    def stacker_full(self, on: bool = True) -> None:
        with self._lock:
            self._stacker_full = on

    def stacker_open(self, on: bool = True) -> None:
        """Pull out (on) or put back (off) the cashbox."""
        with self._lock:
            if self._cashbox_open and not on:
                self._events.append(PollEvent(Event.CASHBOX_REPLACED))
            self._cashbox_open = on

    def open_note_path(self) -> None:
        """Open the lid over the note path: the unit takes no note and reports 0xE0 (note path
        open) in every poll until the path is closed again (GA138: a repeating error event)."""
        with self._lock:
            self._path_open = True

    def close_note_path(self) -> None:
        with self._lock:
            self._path_open = False

    def stall_stacking(self, then: str) -> None:
        """The next note told to stack stalls mid-stack: the unit reports stacking in every
        poll and never credits it; after `stall_s` it resets itself (0xF1 slave reset) and at
        power-up clears the note into the cashbox (then='stacker': 0xE2 with the channel) or
        gives it back at the front (then='acceptor': 0xE1 with the channel)."""
        if then not in ("stacker", "acceptor"):
            raise ValueError(f"stall_stacking then must be 'stacker' or 'acceptor', got {then!r}")
        with self._lock:
            self._stall_then = then

    def lose_host_ack_once(self) -> None:
        """In SSP the host acknowledges a reply by its next poll with the other sequence bit.
        Lose the unit's reply to the poll that carries the next credit, once: the host asks
        again with the same sequence bit and gets the same reply repeated (it must credit once)."""
        self.fault_next_reply("drop", carrying="CREDIT")

    def disable_self(self) -> None:
        """The unit switches itself off (as some firmware does after an internal fault)."""
        with self._lock:
            self._enabled = False

    def vanish_note(self) -> None:
        """The note in the path disappears without any event (a sensor fault): the unit goes
        idle and says nothing about it."""
        with self._lock:
            self._note = None
            self._phase = "idle"

    def queue_event(self, code: int, data: bytes = b"", *, repeat: bool = False) -> None:
        """Put a raw event into the next poll reply: how a host meets firmware that reports
        something its codec does not know. With repeat=True it ends every poll reply from now
        on (a condition the unit repeats), until clear_repeated_events()."""
        with self._lock:
            if repeat:
                self._repeated.append(PollEvent(code, bytes(data)))
            else:
                self._events.append(PollEvent(code, bytes(data)))

    def clear_repeated_events(self) -> None:
        with self._lock:
            self._repeated.clear()

    def stick(self, phase: str = "stacking") -> None:
        """Freeze the device in a transient phase ('reading', 'stacking', 'rejecting'), reporting
        it on every poll, until a reset: what a worn belt or a blocked sensor looks like."""
        if phase not in ("reading", "stacking", "rejecting"):
            raise ValueError(f"stick phase must be reading, stacking or rejecting, got {phase!r}")
        with self._lock:
            self._stuck = phase
            if self._note is None:
                self._note = _Note(1)
            self._phase = phase

    def power_cycle(self, note_in: str = "none") -> None:
        """Cut and restore power. With note_in='acceptor' a note was in the bezel and is given
        back at power-up; with 'stacker' it was in the stacker and goes into the cashbox."""
        if note_in not in ("none", "acceptor", "stacker"):
            raise ValueError(f"note_in must be none, acceptor or stacker, got {note_in!r}")
        with self._lock:
            self._reboot(note_in)

    def fault_next_reply(self, kind: str, count: int = 1, carrying: str | None = None) -> None:
        """Spoil the next `count` replies: drop, corrupt (bad CRC), delay (by delay_s),
        truncate (half a frame), double (sent twice), or late (held back, then sent just before
        the answer to the next *new* frame with the same sequence bit: the worst moment for a
        host, which may take it for that answer). With `carrying` (an event name such as
        "CREDIT") only replies that carry that poll event are spoiled."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        code = None
        if carrying is not None:
            try:
                code = Event[carrying].value
            except KeyError:
                raise ValueError(f"carrying must be an SSP event name such as CREDIT, got {carrying!r}") from None
        with self._lock:
            self._faults.extend([(kind, code)] * count)

    def state(self) -> dict:
        with self._lock:
            return {
                "model": self.model,
                "serial_number": self.serial_number,
                "currency": self.currency,
                "channels": list(self.channels),
                "powered": time.monotonic() >= self._booting_until,
                "enabled": self._enabled,
                "inhibits": sorted(self._inhibits),
                "protocol_version": self._protocol,
                "encrypted": self._session is not None,
                "phase": self._phase,
                "note_channel": self._note.channel if self._note else None,
                "jam": self._jam,
                "stuck": self._stuck,
                "note_path_open": self._path_open,
                "encryption_enforced": self.encryption_enforced,
                "stall_armed": self._stall_then,
                "stalling": self._stall_until[0] if self._stall_until else None,
                "stacker_full": self._stacker_full,
                "cashbox_open": self._cashbox_open,
                "cashbox": {str(ch): n for ch, n in sorted(self.cashbox.items())},
                "cashbox_total_minor": sum(self.channels[ch - 1] * n for ch, n in self.cashbox.items()
                                           if 0 < ch <= len(self.channels)),
                "pending_events": [e.name for e in self._events],
                "pending_faults": [kind for kind, _ in self._faults],
                "last_reject_code": self._last_reject,
                "rx_log": [dict(entry) for entry in self.rx_log],
                "tx_log": [dict(entry) for entry in self.tx_log],
            }

    # ------------------------------------------------------------------ note flow

    def _begin_note(self, note: _Note) -> bool:
        if (self._phase != "idle" or self._jam or self._path_open
                or time.monotonic() < self._booting_until):
            return False
        self._note = note
        self._enter("reading")
        return True

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._phase_since = time.monotonic()
        self._stage = 0
        if phase == "reading":
            self._events.append(PollEvent(Event.READ, b"\x00"))
        elif phase == "stacking":
            self._events.append(PollEvent(Event.STACKING))
        elif phase == "rejecting":
            self._events.append(PollEvent(Event.REJECTING))

    def _reject(self, code: int) -> None:
        self._last_reject = code
        self._enter("rejecting")

    def _tick(self, now: float) -> None:
        if self._stall_until is not None and now >= self._stall_until[1]:
            then = self._stall_until[0]
            self._stall_until = None
            self._reboot(then)
            return
        if now < self._booting_until or self._jam:
            return
        elapsed = now - self._phase_since
        if self._stuck == self._phase:
            return  # _poll reports it
        if self._phase == "reading" and elapsed >= self.step_s and self._note:
            note = self._note
            if note.strimming:
                self._events.append(PollEvent(Event.FRAUD_ATTEMPT, bytes([note.channel])))
                self._reject(0x0E)
            elif note.channel == 0:
                self._reject(0x02)
            elif not self._enabled:
                self._reject(0x0C)
            elif note.channel not in self._inhibits and self.honour_inhibits:
                self._reject(0x06)
            elif self._stacker_full:
                self._reject(0x0D)
            else:
                self._phase = "escrow"
                self._phase_since = now
                self._escrow_reported = False
                self._escrow_touched = now
                self._events.append(PollEvent(Event.READ, bytes([note.channel])))
        elif self._phase == "escrow" and self._escrow_reported and now - self._escrow_touched > self.escrow_timeout_s:
            self._reject(0x13)
        elif self._phase == "stacking" and elapsed >= self.step_s and self._note:
            if self._stage == 0:
                self._events.append(PollEvent(Event.CREDIT, bytes([self._note.channel])))
                self._events.append(PollEvent(Event.STACKING))
                self._stage = 1
                self._phase_since = now
            else:
                self._events.append(PollEvent(Event.STACKED))
                self.cashbox[self._note.channel] += 1
                if sum(self.cashbox.values()) >= self.stacker_capacity:
                    self._stacker_full = True
                self._note = None
                self._phase = "idle"
        elif self._phase == "rejecting" and elapsed >= self.step_s:
            self._events.append(PollEvent(Event.REJECTED))
            self._note = None
            self._phase = "idle"

    def _reboot(self, note_in: str) -> None:
        channel = self._note.channel if self._note and self._note.channel else 1
        self._power_on()
        self._stuck = None
        self._stall_until = None
        self._booting_until = time.monotonic() + self.boot_s
        self._delayed.clear()
        self._events.append(PollEvent(Event.SLAVE_RESET))
        if note_in == "acceptor":
            self._events.append(PollEvent(Event.NOTE_CLEARED_FROM_FRONT, bytes([channel])))
        elif note_in == "stacker":
            self._events.append(PollEvent(Event.NOTE_CLEARED_INTO_CASHBOX, bytes([channel])))
            self.cashbox[channel] += 1

    # ------------------------------------------------------------------ commands

    def _on_frame(self, frame: Frame) -> None:
        if frame.address != self.address:
            return
        command = frame.data[0]
        repeat = (command != Command.SYNC and self._last_seq is not None and frame.seq == self._last_seq
                  and self._last_reply is not None)
        entry = {"raw": frame.encode().hex(" "), "seq": frame.seq, "command": command, "repeat": repeat,
                 "t": time.monotonic()}
        self.rx_log.append(entry)
        del self.rx_log[:-300]
        if repeat:
            assert self._last_reply is not None
            self._send(frame.seq, self._last_reply, self._last_plain, repeat=True)
            return
        if self._late is not None and self._late[0] == frame.seq:
            self._link.write(self._late[1])
            self._late = None
        data = frame.data
        encrypted = command == ENCRYPTED_PACKET
        if encrypted:
            if self._session is None:
                self._last_seq, self._last_reply, self._last_plain = frame.seq, bytes([Reply.KEY_NOT_SET]), b""
                self._send(frame.seq, self._last_reply, b"")
                return
            try:
                data = self._session.open_command(data)
            except crypto.CounterMismatch:
                # GA138: a packet whose count does not match is discarded; the host times out.
                return
            except crypto.EncryptionError:
                # GA973: a command encrypted with the wrong key is answered KEY NOT SET.
                self._last_seq, self._last_reply, self._last_plain = frame.seq, bytes([Reply.KEY_NOT_SET]), b""
                self._send(frame.seq, self._last_reply, b"")
                return
            entry["inside"] = data[0]
        elif (self.encryption_enforced and self._session is None
              and command not in (Command.SYNC, Command.SET_GENERATOR, Command.SET_MODULUS,
                                  Command.REQUEST_KEY_EXCHANGE)):
            # Encryption enforced and no key yet: refused without being executed.
            self._last_seq, self._last_reply, self._last_plain = frame.seq, bytes([Reply.KEY_NOT_SET]), b""
            self._send(frame.seq, self._last_reply, b"")
            return
        plain = reply = self._execute(data)
        if encrypted and self._session is not None:
            reply = self._session.seal_reply(reply)
        self._last_seq = frame.seq
        self._last_reply = reply
        self._last_plain = plain if data[:1] == bytes([Command.POLL]) else b""
        self._send(frame.seq, reply, self._last_plain)
        if data[:1] == bytes([Command.RESET]):
            self._reboot("acceptor" if self._phase in ("reading", "escrow", "rejecting") and self._note
                         else "stacker" if self._phase == "stacking" and self._note else "none")

    def _send(self, seq: int, data: bytes, poll_reply: bytes, repeat: bool = False) -> None:
        """`poll_reply` is the plaintext of a poll reply (empty for other commands), used to
        aim a fault at the reply that carries a given event."""
        raw = encode_frame(seq, self.address, data)
        fault = None
        if self._faults:
            kind, code = self._faults[0]
            if code is None or code in _event_codes(poll_reply):
                fault = kind
                self._faults.popleft()
        self.tx_log.append({"seq": seq, "data": poll_reply.hex(" ") if poll_reply else data.hex(" "),
                            "poll": bool(poll_reply), "repeat": repeat, "fault": fault, "t": time.monotonic()})
        del self.tx_log[:-300]
        if fault == "drop":
            return
        if fault == "corrupt":
            raw = raw[:-1] + bytes([raw[-1] ^ 0x01 if raw[-1] ^ 0x01 != 0x7F else raw[-1] ^ 0x02])
        elif fault == "truncate":
            raw = raw[:max(1, len(raw) // 2)]
        elif fault == "double":
            raw = raw + raw
        elif fault == "late":
            self._late = (seq, raw)
            return
        elif fault == "delay":
            self._delayed.append((time.monotonic() + self.delay_s, raw))
            return
        self._link.write(raw)

    def _execute(self, data: bytes) -> bytes:
        ok = bytes([Reply.OK])
        command, args = data[0], data[1:]
        if command == Command.SYNC:
            return ok
        if command == Command.RESET:
            return ok
        if command == Command.HOST_PROTOCOL_VERSION:
            if len(args) != 1:
                return bytes([Reply.WRONG_PARAMETERS])
            if not 1 <= args[0] <= 7:
                return bytes([Reply.FAIL])
            self._protocol = args[0]
            return ok
        if command == Command.SETUP_REQUEST:
            return encode_setup_reply(self._setup_info())
        if command == Command.SERIAL_NUMBER:
            return ok + self.serial_number.to_bytes(4, "big")
        if command == Command.GET_FIRMWARE_VERSION:
            return ok + f"{self.model} {self.firmware[:2]}.{self.firmware[2:]} SIM".encode("ascii")
        if command == Command.UNIT_DATA:
            info = self._setup_info()
            return (ok + bytes([info.unit_type]) + self.firmware.encode("ascii") + self.currency.encode("ascii")
                    + (1).to_bytes(3, "big") + bytes([self._protocol]))
        if command == Command.SET_INHIBITS:
            if len(args) < 2:
                return bytes([Reply.WRONG_PARAMETERS])
            self._inhibits = parse_inhibits(args)
            return ok
        if command == Command.ENABLE:
            self._enabled = True
            return ok
        if command == Command.DISABLE:
            self._enabled = False
            return ok
        if command == Command.POLL:
            return self._poll()
        if command == Command.HOLD:
            if self._phase == "escrow" and self._escrow_reported:
                self._escrow_touched = time.monotonic()
                return ok
            return bytes([Reply.FAIL])          # GA138 "Hold": FAIL if no note in escrow
        if command == Command.REJECT:
            if self._phase == "escrow" and self._escrow_reported:
                self._reject(0x08)
                return ok
            return bytes([Reply.CANNOT_PROCESS])
        if command == Command.LAST_REJECT_CODE:
            return ok + bytes([self._last_reject])
        if command in (Command.SET_GENERATOR, Command.SET_MODULUS):
            if len(args) != 8:
                return bytes([Reply.WRONG_PARAMETERS])
            value = int.from_bytes(args, "little")
            if not crypto.is_probable_prime(value):
                return bytes([Reply.PARAMETER_OUT_OF_RANGE])
            if command == Command.SET_GENERATOR:
                self._generator = value
            else:
                self._modulus = value
            return ok
        if command == Command.REQUEST_KEY_EXCHANGE:
            if len(args) != 8:
                return bytes([Reply.WRONG_PARAMETERS])
            if self._generator is None or self._modulus is None:
                return bytes([Reply.FAIL])      # GA138: FAIL when generator and modulus are not set
            try:
                # Generator and modulus in either order: ITL's hosts send the generator larger.
                slave = crypto.KeyExchange.new_slave(self._generator, self._modulus)
                negotiated = slave.shared_key(int.from_bytes(args, "little"))
            except crypto.KeyExchangeError:
                return bytes([Reply.FAIL])      # GA973: FAIL when no key can be made
            self._session = crypto.EsspSession(crypto.aes_key(negotiated, self.fixed_key))
            return ok + crypto.u64(slave.intermediate)
        return bytes([Reply.UNKNOWN_COMMAND])

    def _poll(self) -> bytes:
        if self._phase == "escrow" and self._escrow_reported:
            # A poll, not a hold, while a note waits in escrow: the host wants it stacked.
            self._enter("stacking")
            if self._stall_then is not None:
                self._stuck = "stacking"
                self._stall_until = (self._stall_then, time.monotonic() + self.stall_s)
                self._stall_then = None
        events = list(self._events)
        self._events.clear()
        if self._stuck == self._phase and not events:
            # Stuck mid-move, the unit reports that move in every reply. Once per mechanical
            # step would leave empty replies between, which a host rightly reads as "moved on".
            events.append(PollEvent(_STUCK_EVENTS[self._phase], b"\x00" if self._phase == "reading" else b""))
        if any(e.code == Event.READ and e.channel for e in events):
            self._escrow_reported = True
            self._escrow_touched = time.monotonic()
        if self._jam == "acceptor":
            events.append(PollEvent(Event.UNSAFE_JAM))
        elif self._jam == "stacker":
            events.append(PollEvent(Event.SAFE_JAM))
        if self._stacker_full:
            events.append(PollEvent(Event.STACKER_FULL))
        if self._cashbox_open:
            events.append(PollEvent(Event.CASHBOX_REMOVED))
        if not self._enabled and self._phase == "idle" and not events:
            events.append(PollEvent(Event.DISABLED))
        events.extend(self._repeated)
        if self._path_open:
            # First in the reply, so a host that cannot size it loses everything behind it.
            events.insert(0, PollEvent(Event.NOTE_PATH_OPEN))
        return encode_poll_events(events[:100])

    def _setup_info(self) -> SetupInfo:
        real = 100 if all(v % 100 == 0 for v in self.channels) else 1
        return SetupInfo(unit_type=0x00, firmware=self.firmware, currency=self.currency,
                         protocol_version=self._protocol,
                         channel_values=self.channels, real_value_multiplier=real)


def _event_codes(poll_reply: bytes) -> set[int]:
    if len(poll_reply) < 1:
        return set()
    try:
        return {e.code for e in parse_poll_events(poll_reply[1:])}
    except MessageError:
        return set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.ssp", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal and print its path")
    parser.add_argument("--currency", default="EUR")
    parser.add_argument("--channels", default="500,1000,2000,5000,10000,20000",
                        help="channel values in minor units, channel 1 first")
    parser.add_argument("--encryption-enforced", action="store_true",
                        help="answer KEY NOT SET (0xFA) to every plain command until an eSSP key is negotiated")
    args = parser.parse_args(argv)
    sim = SspSimulator(currency=args.currency, channels=[int(c) for c in args.channels.split(",")],
                       encryption_enforced=args.encryption_enforced)
    if args.tcp is not None:
        url = sim.start("tcp", args.tcp)
    else:
        url = sim.start("pty")
    print(f"SSP validator simulator ({sim.model}, {sim.currency}) on {url}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
