"""A Puloon LCDM-2000 or LCDM-4000 cash dispenser, device side, byte for byte (codec from
drivers.lcdm.frames), reachable as a pyserial URL through SerialEndpoint.

Cassettes hold configurable notes; faults for tests, the demo and the control panel:
double picks to the reject tray, a jam that needs a purge, a missing cassette or reject
tray, a lost ACK, a lost answer, a command that never arrives, and a power cut in the
middle of a dispense. What left the unit stays out, and the 4000's LAST STATUS tells.
Behaviour where the sources are silent follows section 7 of the fact sheet.
Run standalone with `python -m simulators.lcdm --tcp 7005 --model lcdm4000`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

from drivers.lcdm.frames import (
    ACK,
    EOT,
    LCDM2000,
    LCDM4000,
    MODELS,
    NAK,
    BccError,
    Cmd2000,
    Cmd4000,
    Frame,
    FrameDecoder,
    LcdmProtocolError,
    MessageError,
    Model,
    encode_counts_4000,
    nibbles_4000,
    parse_nibbles_request_4000,
    parse_pick_order_request_4000,
    encode_dispense_result_2000,
    encode_status_2000,
    encode_status_4000,
    parse_request_2000,
    parse_request_4000,
    response,
)
from simulators.serial_endpoint import SerialEndpoint, serve_until_interrupted

NEAR_END = 10                 # a cassette with this many notes or fewer reports near end
MAX_REJECTS = 10              # more rejects than this in one command stops it
REPEAT_S = 0.5                # a response with no ACK is sent again after this
MAX_SENDS = 3
FRAME_GAP_S = 0.2             # a command frame must be complete within this
ROM_2000 = b"T20T5624"
# The simulator's own choice (no source says): what LAST STATUS reports for a dispense
# the power cut stopped: "motor or slit-sensor trouble" with the counts that got out.
POWER_CUT_ERROR_4000 = 0x43


@dataclass
class SimCassette:
    denomination: int             # minor units of one note
    count: int
    present: bool = True
    dispensed: int = 0            # notes that left through the exit: with the customer
    rejected: int = 0             # notes that went to the reject tray


@dataclass
class _Pick:
    """Per-cassette counts of one operation."""

    picked: int = 0
    exited: int = 0
    rejected: int = 0


@dataclass
class _Pending:
    raw: bytes
    sends: int = 1
    sent_at: float = field(default_factory=time.monotonic)
    lost: bool = False            # fault: every transmission of it vanishes


class LcdmSimulator:
    """One simulated dispenser. `cassettes` is a list of (denomination minor, count), in
    cassette order (2 for the 2000, up to 4 for the 4000). `note_s` is the time per pick."""

    def __init__(self, model: str | Model = "lcdm4000", cassettes: Sequence[tuple[int, int]] | None = None, *,
                 note_s: float = 0.01, reset_s: float = 2.0):
        self.model = MODELS[model] if isinstance(model, str) else model
        slots = len(self.model.cassettes)
        if cassettes is None:
            cassettes = [(2000, 100), (5000, 100)] if slots == 2 else [(1000, 100), (2000, 100), (5000, 50)]
        if not 1 <= len(cassettes) <= slots:
            raise ValueError(f"{self.model.title} takes 1..{slots} cassettes, got {len(cassettes)}")
        self.cassettes = [SimCassette(d, n) for d, n in cassettes]
        self.cassettes += [SimCassette(0, 0, present=False) for _ in range(slots - len(cassettes))]
        self.note_s = note_s
        # Answer a failed dispense with a short [CMD ERR] frame instead of the full counts
        # (one LCDM-2000 source handles such frames): a host must not read it as "0 out".
        self.short_error_frames = False
        self.reset_s = reset_s
        self.reject_tray_present = True
        self.reject_tray = 0
        self._lock = threading.RLock()
        self._link = SerialEndpoint(takeover=True)
        self._url = ""
        # Fault controls.
        self._double_picks = 0             # the next N picks are doubles, diverted to the reject tray
        self._double_every = 0             # every Nth pick is a double (0: off)
        self._pick_number = 0
        self._jam_after: int | None = None  # the next dispense jams after N notes out
        self._faults: list[tuple[str, str]] = []
        self._lose_host_ack = 0
        self._dispense_cmds = (frozenset({Cmd2000.UPPER_DISPENSE, Cmd2000.LOWER_DISPENSE, Cmd2000.BOTH_DISPENSE,
                                          Cmd2000.UPPER_TEST, Cmd2000.LOWER_TEST}) if self.model is LCDM2000
                               else frozenset({Cmd4000.DISPENSE, Cmd4000.TEST_DISPENSE}))
        self._power_cut_after: int | None = None
        self._cable_pull_after: int | None = None
        self.power_off_s = 0.3
        self._off_until = 0.0
        # Device state.
        self._jammed: int | None = None     # cassette whose note is stuck in the transport
        self._last: tuple[int, int, list[_Pick]] = (0x20, 0x20, [_Pick() for _ in range(slots)])
        self._pending: _Pending | None = None
        # LCDM-4000 settings (kept in EEPROM on a real unit): pick order, references.
        self.pick_order: list[int] = list(range(slots))
        self.opacity = [60] * slots
        self.note_length = [140] * slots
        self._reset_due: float | None = None
        # Counters a test reads.
        self.frames_received = 0
        self.bad_frames_received = 0
        self.dispense_commands = 0          # dispense and test-dispense frames taken
        self.commands: list[int] = []
        self.acks_received = 0
        self.naks_received = 0

    # -- control surface (thread-safe) ----------------------------------------------

    def set_double_picks(self, count: int = 1, *, every: int = 0) -> None:
        """The next `count` picks are doubles; with `every`, every Nth pick from now on is."""
        with self._lock:
            self._double_picks = count
            self._double_every = every
            self._pick_number = 0

    def jam_after(self, notes: int) -> None:
        """The next dispense stops with a jam after `notes` exited; the next note stays in the
        transport until a PURGE moves it to the reject tray."""
        with self._lock:
            self._jam_after = notes

    def remove_cassette(self, index: int) -> None:
        with self._lock:
            self.cassettes[index].present = False

    def insert_cassette(self, index: int, denomination: int | None = None, count: int | None = None) -> None:
        with self._lock:
            unit = self.cassettes[index]
            unit.present = True
            if denomination is not None:
                unit.denomination = denomination
            if count is not None:
                unit.count = count

    def set_count(self, index: int, count: int) -> None:
        with self._lock:
            self.cassettes[index].count = count

    def remove_reject_tray(self, removed: bool = True) -> None:
        with self._lock:
            self.reject_tray_present = not removed

    # Line faults hit the next dispense (or test dispense) command by default, the one
    # that matters for money; on="any" makes them hit whatever command comes next.

    def lose_ack_once(self, on: str = "dispense") -> None:
        """The command is taken and performed, but its ACK never reaches the host."""
        self._arm("lose_ack", on)

    def lose_answer_once(self, on: str = "dispense") -> None:
        """The command is ACKed and performed, but every send of its response is lost."""
        self._arm("lose_answer", on)

    def drop_next_command(self, on: str = "dispense") -> None:
        """The command frame never arrives (no ACK, nothing done)."""
        self._arm("drop", on)

    def nak_next_command(self, on: str = "dispense") -> None:
        """The command frame arrives damaged: the unit answers NAK and does nothing."""
        self._arm("nak", on)

    def corrupt_next_answer(self, on: str = "dispense") -> None:
        """The first send of the response arrives with a bad BCC (the repeat is good)."""
        self._arm("corrupt_answer", on)

    def lose_host_ack_once(self) -> None:
        """The host's next ACK of a response is lost: the unit sends the response again."""
        with self._lock:
            self._lose_host_ack += 1

    def _arm(self, fault: str, on: str) -> None:
        if on not in ("dispense", "any"):
            raise ValueError(f"fault target must be 'dispense' or 'any', got {on!r}")
        with self._lock:
            self._faults.append((fault, on))

    def _fault(self, fault: str, frame: Frame) -> bool:
        """Take an armed fault of this kind if it applies to `frame`."""
        for n, (kind, on) in enumerate(self._faults):
            if kind == fault and (on == "any" or frame.cmd in self._dispense_cmds):
                del self._faults[n]
                return True
        return False

    def pull_cable_after(self, notes: int) -> None:
        """During the next dispense, the host's cable is pulled after `notes` exited (TCP: the
        connection drops). The unit does not know and pays the rest; its answer goes nowhere."""
        with self._lock:
            self._cable_pull_after = notes

    def power_cut_after(self, notes: int, off_s: float | None = None) -> None:
        """During the next dispense, the power goes after `notes` have exited: no response,
        the unit is dead for off_s, then boots. The notes out stay out."""
        with self._lock:
            self._power_cut_after = notes
            if off_s is not None:
                self.power_off_s = off_s

    @property
    def jammed(self) -> bool:
        return self._jammed is not None

    def state(self) -> dict:
        with self._lock:
            return {
                "model": self.model.name,
                "cassettes": [{"denomination": c.denomination, "count": c.count, "present": c.present,
                               "dispensed": c.dispensed, "rejected": c.rejected} for c in self.cassettes],
                "reject_tray": self.reject_tray, "reject_tray_present": self.reject_tray_present,
                "jammed": self._jammed is not None, "dispense_commands": self.dispense_commands,
                "connected": self._link.connected, "powered": time.monotonic() >= self._off_until,
            }

    def delivered(self) -> list[int]:
        """Notes that left through the exit per cassette: the customer has them."""
        with self._lock:
            return [c.dispensed for c in self.cassettes]

    # -- mechanism -------------------------------------------------------------------

    def _pick_is_double(self) -> bool:
        self._pick_number += 1
        if self._double_picks > 0:
            self._double_picks -= 1
            return True
        return bool(self._double_every) and self._pick_number % self._double_every == 0

    def _run(self, wanted: Sequence[int], *, to_customer: bool) -> tuple[str, int | None, list[_Pick]]:
        """Pick `wanted` notes per cassette in pick order. Returns (how it ended, cassette
        index the ending is about, counts). Endings: ok, empty, over_reject, jam, power."""
        picks = [_Pick() for _ in self.cassettes]
        rejects = 0
        for i in self.pick_order:
            want = wanted[i]
            unit = self.cassettes[i]
            while picks[i].exited < want if to_customer else picks[i].rejected < want:
                if unit.count == 0:
                    return "empty", i, picks
                if self.note_s:
                    time.sleep(self.note_s)
                unit.count -= 1
                picks[i].picked += 1
                if not to_customer or self._pick_is_double():
                    picks[i].rejected += 1
                    unit.rejected += 1
                    self.reject_tray += 1
                    if to_customer:
                        rejects += 1
                        if rejects > MAX_REJECTS:
                            return "over_reject", i, picks
                    continue
                exited_so_far = sum(p.exited for p in picks)
                if self._jam_after is not None and exited_so_far >= self._jam_after:
                    self._jam_after = None
                    self._jammed = i          # this note stays in the transport
                    return "jam", i, picks
                picks[i].exited += 1
                unit.dispensed += 1
                if self._cable_pull_after is not None and exited_so_far + 1 >= self._cable_pull_after:
                    self._cable_pull_after = None
                    self._link.hang_up()
                if self._power_cut_after is not None and exited_so_far + 1 >= self._power_cut_after:
                    self._power_cut_after = None
                    return "power", i, picks
        return "ok", None, picks

    def _power_cut(self) -> None:
        self._off_until = time.monotonic() + self.power_off_s
        self._pending = None
        self._reset_due = None

    # -- LCDM-2000 -------------------------------------------------------------------

    def _handle_2000(self, frame: Frame) -> bytes | None:
        cmd = frame.cmd
        if cmd == Cmd2000.STATUS and not frame.data:
            upper, lower = self.cassettes
            data = encode_status_2000(0x35 if self.jammed else 0x30, upper_present=upper.present,
                                      lower_present=lower.present,
                                      upper_near_end=upper.present and upper.count <= NEAR_END,
                                      lower_near_end=lower.present and lower.count <= NEAR_END,
                                      reject_tray_present=self.reject_tray_present, exit_blocked=self.jammed)
            return data
        if cmd == Cmd2000.ROM_VERSION and not frame.data:
            return ROM_2000
        if cmd == Cmd2000.PURGE and not frame.data:
            if not self.reject_tray_present:
                return b"\x3F"
            if self._jammed is not None:
                self.cassettes[self._jammed].rejected += 1
                self.reject_tray += 1
                self._jammed = None
            return b"\x30"
        if cmd in (Cmd2000.UPPER_DISPENSE, Cmd2000.LOWER_DISPENSE, Cmd2000.BOTH_DISPENSE,
                   Cmd2000.UPPER_TEST, Cmd2000.LOWER_TEST):
            return self._dispense_2000(frame)
        return b"\x37"

    def _dispense_2000(self, frame: Frame) -> bytes | None:
        cmd = frame.cmd
        self.dispense_commands += 1
        test = cmd in (Cmd2000.UPPER_TEST, Cmd2000.LOWER_TEST)
        if test:
            wanted = (1, 0) if cmd == Cmd2000.UPPER_TEST else (0, 1)
            err = 0x30 if not frame.data else 0x3B
        else:
            try:
                wanted = parse_request_2000(cmd, frame.data)
                err = 0x30 if (cmd == Cmd2000.BOTH_DISPENSE or sum(wanted)) else 0x3B
            except MessageError:
                wanted, err = (0, 0), 0x3B
        used = [i for i in (0, 1) if wanted[i]] or ([0] if cmd in (Cmd2000.UPPER_DISPENSE, Cmd2000.UPPER_TEST) else [1])
        picks = [_Pick(), _Pick()]
        if err == 0x30:
            if self.jammed:
                err = 0x35
            elif not self.reject_tray_present:
                err = 0x3F
            elif max(wanted) > 60:
                err = 0x3B
            else:
                for i in used:
                    if not self.cassettes[i].present:
                        err = 0x45 if i == 0 else 0x46
                        break
        if err == 0x30:
            ending, where, picks = self._run(wanted, to_customer=not test)
            if ending == "power":
                self._power_cut()
                return None
            err = {"ok": 0x30, "jam": 0x35, "over_reject": 0x44,
                   "empty": 0x38 if where == 0 else 0x40}[ending]
        # CHK counts every pick, so after a jam it is one more than EXIT + REJ: the stuck note.
        per = [(picks[i].picked, picks[i].exited, picks[i].rejected, self.cassettes[i].count <= NEAR_END)
               for i in (0, 1)]
        if self.short_error_frames and err not in (0x30, 0x31):
            return bytes((err,))
        if cmd == Cmd2000.BOTH_DISPENSE:
            return encode_dispense_result_2000(cmd, err, per)
        return encode_dispense_result_2000(cmd, err, [per[used[0]]])

    # -- LCDM-4000 -------------------------------------------------------------------

    def _present_4000(self) -> list[bool]:
        return [c.present for c in self.cassettes]

    def _counts_4000(self, picks: list[_Pick]) -> bytes:
        return encode_counts_4000([(p.exited, p.rejected, c.present) for p, c in zip(picks, self.cassettes)])

    def _handle_4000(self, frame: Frame) -> bytes | None:
        cmd = frame.cmd
        if cmd == Cmd4000.STATUS:
            return encode_status_4000(0x24 if self.jammed else 0x20, 0x08 if self.jammed else 0x00,
                                      [(c.present, c.count <= NEAR_END) for c in self.cassettes])
        if cmd == Cmd4000.RESET:
            self._reset_due = -1.0            # a second answer follows the first one's ACK
            return b"\x20"
        if cmd == Cmd4000.LAST_STATUS:
            last_cmd, err, picks = self._last
            return bytes((last_cmd, err, 0x30)) + self._counts_4000(picks)
        if cmd == Cmd4000.PURGE:
            picks = [_Pick() for _ in self.cassettes]
            err = 0x20
            if not self.reject_tray_present:
                err = 0x46
            elif self._jammed is not None:
                picks[self._jammed].rejected = 1
                self.cassettes[self._jammed].rejected += 1
                self.reject_tray += 1
                self._jammed = None
            self._last = (cmd, err, picks)
            return bytes((err, 0x30)) + self._counts_4000(picks)
        if cmd in (Cmd4000.DISPENSE, Cmd4000.TEST_DISPENSE):
            return self._dispense_4000(frame)
        if cmd == Cmd4000.SENSOR_DIAGNOSTICS:
            return self._diagnostics_4000(frame.data)
        if cmd in (Cmd4000.SET_OPACITY, Cmd4000.SET_LENGTH):
            stored = self.opacity if cmd == Cmd4000.SET_OPACITY else self.note_length
            try:
                values = parse_nibbles_request_4000(frame.data)
            except MessageError:
                return b"\x51"
            for i, value in enumerate(values):
                if value:                     # 0 keeps the stored value
                    stored[i] = value
            return b"\x20"
        if cmd in (Cmd4000.GET_OPACITY, Cmd4000.GET_LENGTH):
            return b"\x20" + nibbles_4000(self.opacity if cmd == Cmd4000.GET_OPACITY else self.note_length)
        if cmd == Cmd4000.SET_PICK_ORDER:
            try:
                self.pick_order = [n - 1 for n in parse_pick_order_request_4000(frame.data)]
            except MessageError:
                return b"\x51"
            return b"\x20"
        if cmd == Cmd4000.GET_PICK_ORDER:
            return b"\x20" + bytes(0x31 + i for i in self.pick_order)
        return b"\x50"

    def _diagnostics_4000(self, data: bytes) -> bytes:
        """Five notes from one cassette to the reject tray, measuring them on the way."""
        position = data[0] - 0x31 if len(data) == 1 and 0x31 <= data[0] <= 0x34 else None
        if position is None:
            return bytes((0x51, 0x20, 0x20, 0x20, 0x20))
        if not self.cassettes[position].present:
            return bytes((0x44, 0x20, 0x20, 0x20, 0x20))
        if self.jammed:
            return bytes((0x2B, 0x20, 0x20, 0x20, 0x20))
        wanted = [0] * len(self.cassettes)
        wanted[position] = 5
        ending, _where, picks = self._run(wanted, to_customer=False)
        err = {"ok": 0x20, "empty": 0x21}.get(ending, 0x43)
        return bytes((err, 0x20 + self.opacity[position], 0x20 + self.note_length[position], 0x20 + 30,
                      0x20 + picks[position].rejected))

    def _dispense_4000(self, frame: Frame) -> bytes | None:
        self.dispense_commands += 1
        picks = [_Pick() for _ in self.cassettes]
        err = 0x20
        try:
            wanted = parse_request_4000(frame.data)
        except MessageError:
            wanted, err = (0, 0, 0, 0), 0x51
        if err == 0x20:
            if not 1 <= sum(wanted):
                err = 0x51
            elif sum(wanted) > 100:
                err = 0x2C
            elif self.jammed:
                err = 0x2B
            elif not self.reject_tray_present:
                err = 0x46
            elif any(n and not self.cassettes[i].present for i, n in enumerate(wanted)):
                err = 0x44
        if err == 0x20:
            ending, _where, picks = self._run(wanted, to_customer=frame.cmd == Cmd4000.DISPENSE)
            if ending == "power":
                # The unit keeps what it counted (EEPROM), so LAST STATUS can tell after boot.
                self._last = (frame.cmd, POWER_CUT_ERROR_4000, picks)
                self._power_cut()
                return None
            err = {"ok": 0x20, "jam": 0x24, "over_reject": 0x2D, "empty": 0x21}[ending]
        self._last = (frame.cmd, err, picks)
        if self.short_error_frames and err != 0x20:
            return bytes((err,))
        return bytes((err, 0x30)) + self._counts_4000(picks) + b"\x20" * 9

    # -- transport -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    def start(self, transport: str = "tcp", *, port: int = 0) -> str:
        """Start serving; returns the pyserial URL the host should open."""
        if self._link.is_open:
            raise RuntimeError("simulator already started")
        self._url = self._link.open(transport, port, serve=self._serve, name=f"{self.model.name}-sim")
        return self._url

    def stop(self) -> None:
        self._link.close()

    def __enter__(self) -> "LcdmSimulator":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _send_pending(self) -> None:
        pending = self._pending
        if pending is not None and not pending.lost:
            self._link.write(pending.raw)

    def _serve(self) -> None:
        link = self._link
        decoder = FrameDecoder(start=EOT, device_id=self.model.device_id)
        connection = link.connections
        last_byte_at = time.monotonic()
        while link.serving():
            data = link.read(0.01)
            now = time.monotonic()
            if link.connections != connection:
                decoder = FrameDecoder(start=EOT, device_id=self.model.device_id)
                connection = link.connections
                with self._lock:
                    self._pending = None
            if now < self._off_until:
                decoder.reset()               # no power: whatever arrives is lost
                continue
            if decoder.mid_frame and now - last_byte_at > FRAME_GAP_S:
                decoder.reset()
            with self._lock:
                self._repeat_if_due(now)
            if not data:
                if self._pending is None and not decoder.mid_frame:
                    link.restore_pty_settings()
                continue
            last_byte_at = now
            for item in decoder.feed(data):
                self._take(item)

    def _repeat_if_due(self, now: float) -> None:
        pending = self._pending
        if pending is None:
            if self._reset_due is not None and self._reset_due >= 0 and now >= self._reset_due:
                self._reset_due = None
                self._pending = _Pending(response(self.model.device_id, Cmd4000.RESET, b"\x20"))
                self._send_pending()
            return
        if now - pending.sent_at < REPEAT_S:
            return
        if pending.sends >= MAX_SENDS:
            self._pending = None              # gives up after the third send
            return
        pending.sends += 1
        pending.sent_at = now
        self._send_pending()

    def _take(self, item: Frame | int | LcdmProtocolError) -> None:
        with self._lock:
            if isinstance(item, BccError):
                self.bad_frames_received += 1
                self._link.write(bytes((NAK,)))
                return
            if isinstance(item, LcdmProtocolError):
                self.bad_frames_received += 1
                return
            if item == ACK:
                if self._pending is not None and self._lose_host_ack:
                    self._lose_host_ack -= 1
                    return
                self.acks_received += 1
                if self._pending is not None:
                    self._pending = None
                    if self.model is LCDM4000:
                        self._link.write(bytes((EOT,)))
                    if self._reset_due == -1.0:
                        self._reset_due = time.monotonic() + self.reset_s
                return
            if item == NAK:
                self.naks_received += 1
                pending = self._pending
                if pending is not None:
                    if pending.sends >= MAX_SENDS:
                        self._pending = None
                    else:
                        pending.sends += 1
                        pending.sent_at = time.monotonic()
                        self._send_pending()
                return
            if not isinstance(item, Frame):
                return
            # A new command abandons a response the host never acknowledged.
            self._pending = None
            if self._fault("drop", item):
                return
            if self._fault("nak", item):
                self.bad_frames_received += 1
                self._link.write(bytes((NAK,)))
                return
            self.frames_received += 1
            self.commands.append(item.cmd)
            if not self._fault("lose_ack", item):
                self._link.write(bytes((ACK,)))
            handle = self._handle_2000 if self.model is LCDM2000 else self._handle_4000
            data = handle(item)
            if data is None:                  # the power went in the middle of it
                return
            pending = _Pending(response(self.model.device_id, item.cmd, data))
            pending.lost = self._fault("lose_answer", item)
            self._pending = pending
            if not pending.lost and self._fault("corrupt_answer", item):
                self._link.write(pending.raw[:-1] + bytes((pending.raw[-1] ^ 0xFF,)))
            else:
                self._send_pending()


def _console(sim: LcdmSimulator) -> None:
    """Type commands on stdin: double N | jam N | remove I | insert I | count I N |
    tray on|off | lose-ack | lose-answer | drop | power N | state | quit."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "double":
                sim.set_double_picks(int(args[0]) if args else 1)
            elif cmd == "jam":
                sim.jam_after(int(args[0]) if args else 0)
            elif cmd == "remove":
                sim.remove_cassette(int(args[0]))
            elif cmd == "insert":
                sim.insert_cassette(int(args[0]))
            elif cmd == "count":
                sim.set_count(int(args[0]), int(args[1]))
            elif cmd == "tray":
                sim.remove_reject_tray(args[:1] == ["off"])
            elif cmd == "lose-ack":
                sim.lose_ack_once()
            elif cmd == "lose-answer":
                sim.lose_answer_once()
            elif cmd == "drop":
                sim.drop_next_command()
            elif cmd == "power":
                sim.power_cut_after(int(args[0]) if args else 1)
            elif cmd == "quit":
                return
            print(sim.state())
        except (IndexError, ValueError) as exc:
            print(f"? {exc}")


def _parse_cassettes(items: list[str]) -> list[tuple[int, int]] | None:
    if not items:
        return None
    out = []
    for item in items:
        value, sep, count = item.partition("x")
        if not sep or not value.isdigit() or not count.isdigit():
            raise SystemExit(f"--cassette {item!r}: expected MINORxCOUNT, e.g. 2000x100")
        out.append((int(value), int(count)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.lcdm", description="Puloon LCDM dispenser simulator")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", action="store_true", help="serve on a new pty pair and print the slave path")
    parser.add_argument("--model", choices=sorted(MODELS), default="lcdm4000")
    parser.add_argument("--cassette", action="append", default=[], metavar="MINORxCOUNT",
                        help="one cassette in order, e.g. 2000x100 (repeatable)")
    parser.add_argument("--note-s", type=float, default=0.2, help="seconds per note picked (default 0.2)")
    args = parser.parse_args(argv)
    sim = LcdmSimulator(args.model, _parse_cassettes(args.cassette), note_s=args.note_s)
    url = sim.start("pty") if args.pty else sim.start("tcp", port=args.tcp)
    print(f"{sim.model.title} simulator at {url}", flush=True)
    serve_until_interrupted(sim.stop, lambda: _console(sim))
    return 0


if __name__ == "__main__":
    sys.exit(main())
