"""Puloon LCDM-2000 / LCDM-4000 wire codec: frames, BCC, every command's bytes, response
parsing and both models' error tables. Pure functions and values, no I/O: the host driver
(drivers.lcdm.driver) and the device simulator (simulators.lcdm) both build on it.

Facts: the project's LCDM fact sheet (Puloon's LCDM-1000 interface specification v3.3 and
open drivers); its example frames are in tests/vectors/lcdm-examples.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Callable, Iterator, Sequence

from hal.errors import ProtocolError

EOT, SOH, STX, ETX, ACK, NAK = 0x04, 0x01, 0x02, 0x03, 0x06, 0x15

# The longest frame either model sends (LCDM-4000 DISPENSE response, 29 bytes), with room:
# a frame that grows past this without its ETX is garbage, not a frame.
MAX_FRAME = 48


class LcdmProtocolError(ProtocolError):
    """Bytes that are not a valid LCDM frame or message."""


class BccError(LcdmProtocolError):
    """A frame whose check byte is wrong: answer NAK, the peer sends it again."""


class FrameError(LcdmProtocolError):
    """Wrong structure: no STX, no ETX where it belongs, too long, another start byte."""


class MessageError(LcdmProtocolError):
    """A well-formed frame whose contents do not fit the command (length, digits, codes)."""


# ---------------------------------------------------------------------------- models

@dataclass(frozen=True)
class Model:
    name: str                     # "lcdm2000" / "lcdm4000", the driver choice
    title: str                    # what a technician reads
    device_id: int
    cassettes: tuple[str, ...]    # cassette ids in cassette order (pick order top first)
    max_per_cassette: int         # notes one command may ask of one cassette
    max_per_command: int          # notes one command may ask in all


LCDM2000 = Model("lcdm2000", "Puloon LCDM-2000", 0x50, ("upper", "lower"), 60, 120)
# The 4000 takes 100 per command including rejects; 20 per cassette and 40 in all is what
# deployed hosts send (sources disagree, section 8), and leaves room for the 10 rejects.
LCDM4000 = Model("lcdm4000", "Puloon LCDM-4000", 0x30, ("1", "2", "3", "4"), 20, 40)
MODELS = {m.name: m for m in (LCDM2000, LCDM4000)}


class Cmd2000(IntEnum):
    PURGE = 0x44
    UPPER_DISPENSE = 0x45
    LOWER_DISPENSE = 0x55
    BOTH_DISPENSE = 0x56
    STATUS = 0x46
    ROM_VERSION = 0x47
    UPPER_TEST = 0x76
    LOWER_TEST = 0x77


class Cmd4000(IntEnum):
    RESET = 0x44
    STATUS = 0x50
    PURGE = 0x51
    DISPENSE = 0x52
    TEST_DISPENSE = 0x53
    LAST_STATUS = 0x55
    SENSOR_DIAGNOSTICS = 0x58
    SET_OPACITY = 0x5A
    GET_OPACITY = 0x5B
    SET_PICK_ORDER = 0x5C
    GET_PICK_ORDER = 0x5D
    SET_LENGTH = 0x5E
    GET_LENGTH = 0x5F


DISPENSE_COMMANDS_2000 = frozenset({Cmd2000.UPPER_DISPENSE, Cmd2000.LOWER_DISPENSE, Cmd2000.BOTH_DISPENSE})
TEST_COMMANDS_2000 = frozenset({Cmd2000.UPPER_TEST, Cmd2000.LOWER_TEST})

# Whole response frame length per command (section 5.1): the 4000's STATUS bytes are bit
# fields that can equal ETX, so its responses are read by length, never by scanning.
RESPONSE_LENGTH_4000 = {
    Cmd4000.RESET: 7, Cmd4000.STATUS: 24, Cmd4000.PURGE: 20, Cmd4000.DISPENSE: 29,
    Cmd4000.TEST_DISPENSE: 29, Cmd4000.LAST_STATUS: 21, Cmd4000.SENSOR_DIAGNOSTICS: 11,
    Cmd4000.SET_OPACITY: 7, Cmd4000.GET_OPACITY: 15, Cmd4000.SET_PICK_ORDER: 7,
    Cmd4000.GET_PICK_ORDER: 11, Cmd4000.SET_LENGTH: 7, Cmd4000.GET_LENGTH: 15,
}
RESPONSE_LENGTH_2000 = {
    Cmd2000.PURGE: 7, Cmd2000.UPPER_DISPENSE: 14, Cmd2000.LOWER_DISPENSE: 14, Cmd2000.BOTH_DISPENSE: 21,
    Cmd2000.STATUS: 10, Cmd2000.ROM_VERSION: 14, Cmd2000.UPPER_TEST: 14, Cmd2000.LOWER_TEST: 14,
}


def response_length_4000(cmd: int) -> int | None:
    """Frame length of the 4000's answer to `cmd`; None (scan to ETX) for a command it
    does not know, which it answers with a short [CMD 50] frame."""
    return RESPONSE_LENGTH_4000.get(cmd)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------- frames

def bcc(data: bytes) -> int:
    """XOR of every byte given (the frame from EOT/SOH through ETX)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


@dataclass(frozen=True)
class Frame:
    """One frame: `start` is EOT for a host command, SOH for a device response."""

    start: int
    device_id: int
    cmd: int
    data: bytes = b""

    @property
    def is_command(self) -> bool:
        return self.start == EOT

    def encode(self) -> bytes:
        body = bytes((self.start, self.device_id, STX, self.cmd)) + bytes(self.data) + bytes((ETX,))
        return body + bytes((bcc(body),))

    def __repr__(self) -> str:
        kind = "command" if self.is_command else "response"
        return f"Frame({kind} id=0x{self.device_id:02X} cmd=0x{self.cmd:02X} data={self.data.hex(' ')})"


def command(device_id: int, cmd: int, data: bytes = b"") -> bytes:
    """The bytes of a host command frame."""
    return Frame(EOT, device_id, cmd, data).encode()


def response(device_id: int, cmd: int, data: bytes = b"") -> bytes:
    """The bytes of a device response frame."""
    return Frame(SOH, device_id, cmd, data).encode()


def decode_frame(raw: bytes) -> Frame:
    """One complete frame, checked: start, STX, ETX at the end, BCC. Raises a typed error."""
    raw = bytes(raw)
    if len(raw) < 6:
        raise FrameError(f"LCDM frame too short ({len(raw)} bytes, at least 6 expected): {raw.hex(' ')}")
    if raw[0] not in (EOT, SOH):
        raise FrameError(f"LCDM frame starts with 0x{raw[0]:02X}, expected EOT (04) or SOH (01): {raw.hex(' ')}")
    if raw[2] != STX:
        raise FrameError(f"LCDM frame has 0x{raw[2]:02X} where STX (02) belongs: {raw.hex(' ')}")
    if raw[-2] != ETX:
        raise FrameError(f"LCDM frame has 0x{raw[-2]:02X} where ETX (03) belongs: {raw.hex(' ')}")
    if bcc(raw[:-1]) != raw[-1]:
        raise BccError(f"LCDM frame BCC 0x{raw[-1]:02X}, computed 0x{bcc(raw[:-1]):02X}: {raw.hex(' ')}")
    return Frame(raw[0], raw[1], raw[3], raw[4:-2])


class FrameDecoder:
    """Splits a byte stream into frames and single control bytes.

    `start` is the byte that opens a frame in this direction (SOH on the host side, EOT on
    the device side); outside a frame, ACK, NAK and EOT (host side) come out as ints and
    anything else is stray noise, skipped. Frames for another `device_id` are dropped.
    `length_for(cmd)` gives a frame's whole length when it must be read by length (the
    4000's responses), or None to read up to ETX. feed() never raises: bad frames come
    out as LcdmProtocolError values, and the bytes after a bad start are scanned again.
    """

    def __init__(self, *, start: int, device_id: int, length_for: Callable[[int], int | None] | None = None):
        if start not in (SOH, EOT):
            raise ValueError("start must be SOH (host side) or EOT (device side)")
        self.start = start
        self.device_id = device_id
        self.length_for = length_for or (lambda cmd: None)
        self._buf = bytearray()
        self.noise = 0

    @property
    def mid_frame(self) -> bool:
        return bool(self._buf)

    def reset(self) -> None:
        """Drop a half-received frame (the sender went quiet in the middle of it)."""
        self._buf.clear()

    def salvage(self) -> Frame | None:
        """When the sender went quiet before the expected length: the bytes so far, if they
        are a whole frame by themselves (a unit that answers an error with a short
        [CMD ERR] frame). The buffer is cleared either way."""
        raw = bytes(self._buf)
        self._buf.clear()
        try:
            frame = decode_frame(raw)
        except LcdmProtocolError:
            return None
        return frame if frame.device_id == self.device_id else None

    def feed(self, data: bytes) -> Iterator[Frame | int | LcdmProtocolError]:
        items: list[Frame | int | LcdmProtocolError] = []
        pending = bytearray(data)
        while pending:
            if not self._buf:
                byte = pending.pop(0)
                if byte == self.start:
                    self._buf.append(byte)
                elif byte in (ACK, NAK, EOT):
                    items.append(byte)
                else:
                    self.noise += 1
                continue
            self._buf.append(pending.pop(0))
            outcome = self._check()
            if outcome is None:
                continue
            frame_bytes, item = outcome
            if isinstance(item, FrameError):
                # The start byte was not a frame's: look again from the byte after it.
                rest = bytes(self._buf[1:])
                self._buf.clear()
                pending[0:0] = rest
                items.append(item)
                continue
            self._buf.clear()
            if item is not None:
                items.append(item)
        return iter(items)

    def _check(self) -> tuple[bytes, Frame | LcdmProtocolError | None] | None:
        """None while the frame is incomplete; else (bytes, what they are)."""
        buf = self._buf
        n = len(buf)
        if n == 3 and buf[2] != STX:
            return bytes(buf), FrameError(f"LCDM frame: 0x{buf[2]:02X} where STX (02) belongs "
                                          f"after {bytes(buf[:2]).hex(' ')}")
        if n < 5:
            return None
        length = self.length_for(buf[3]) if buf[0] == SOH else None
        if length is not None:
            if n < length:
                return None
            raw = bytes(buf)
            if raw[-2] != ETX:
                return raw, FrameError(f"LCDM response to 0x{raw[3]:02X}: expected {length} bytes ending in ETX, "
                                       f"got {raw.hex(' ')}")
        else:
            if n > MAX_FRAME:
                return bytes(buf), FrameError(f"LCDM frame longer than {MAX_FRAME} bytes without ETX: "
                                              f"{bytes(buf[:12]).hex(' ')}...")
            if buf[-2] != ETX or n < 6:
                return None
            raw = bytes(buf)
        try:
            frame = decode_frame(raw)
        except BccError as exc:
            if raw[1] != self.device_id:
                return raw, None
            return raw, exc
        except FrameError as exc:
            return raw, exc
        if frame.device_id != self.device_id:
            return raw, None          # another unit's frame on a shared line
        return raw, frame


# ---------------------------------------------------------------------------- error tables

class ErrorKind(str, Enum):
    """What an ERR code means for the host: short codes that the tool prints and the
    application maps to XFS4IoT words."""

    NONE = "none"
    PICK_UP = "pickUpError"
    JAM = "jam"
    CASSETTE_MISSING = "cassetteMissing"
    CASSETTE_EMPTY = "cassetteEmpty"
    NEAR_END = "cassetteNearEnd"
    TOO_MANY_REJECTS = "tooManyRejects"
    NO_REJECT_TRAY = "noRejectTray"
    BAD_REQUEST = "invalidRequest"
    COUNTING = "countingError"
    HARDWARE = "hardwareError"


@dataclass(frozen=True)
class DeviceCode:
    value: int                    # the ERR byte as it is on the wire
    meaning: str
    kind: ErrorKind
    cassette: int | None = None   # index in Model.cassettes the code is about, when it names one

    @property
    def ok(self) -> bool:
        return self.kind is ErrorKind.NONE

    def __str__(self) -> str:
        return f"0x{self.value:02X} {self.meaning}"


def _table(rows: Sequence[tuple]) -> dict[int, DeviceCode]:
    return {row[0]: DeviceCode(*row) for row in rows}


K = ErrorKind
ERRORS_2000 = _table([
    (0x30, "good", K.NONE), (0x31, "normal stop", K.NONE),
    (0x32, "pick-up error", K.PICK_UP), (0x33, "jam at CHK1,2 sensor", K.JAM),
    (0x34, "overflow bill", K.HARDWARE), (0x35, "jam at EXIT or EJT sensor", K.JAM),
    (0x36, "jam at DIV sensor", K.JAM), (0x37, "undefined command", K.BAD_REQUEST),
    (0x38, "upper cassette empty (bill end)", K.CASSETTE_EMPTY, 0),
    (0x3A, "counting error CHK3,4 -> DIV", K.COUNTING), (0x3B, "note request error (bad count)", K.BAD_REQUEST),
    (0x3C, "counting error DIV -> EJT", K.COUNTING), (0x3D, "counting error EJT -> EXIT", K.COUNTING),
    (0x3F, "reject tray not recognised", K.NO_REJECT_TRAY),
    (0x40, "lower cassette empty (bill end)", K.CASSETTE_EMPTY, 1),
    (0x41, "motor stop", K.HARDWARE), (0x42, "jam at DIV sensor", K.JAM),
    (0x43, "timeout DIV -> EJT sensor", K.JAM), (0x44, "too many rejects", K.TOO_MANY_REJECTS),
    (0x45, "upper cassette not recognised (missing)", K.CASSETTE_MISSING, 0),
    (0x46, "lower cassette not recognised (missing)", K.CASSETTE_MISSING, 1),
    (0x47, "dispensing timeout", K.HARDWARE), (0x48, "jam at EJT sensor", K.JAM),
    (0x49, "diverter solenoid or SOL sensor error", K.HARDWARE), (0x4A, "SOL sensor error", K.HARDWARE),
    (0x4B, "check and divert counts differ", K.COUNTING), (0x4C, "jam at CHK3,4 sensor", K.JAM),
    (0x4E, "purge error (jam at DIV sensor)", K.JAM),
    (0x4F, "note seen by a sensor of the other cassette", K.COUNTING),
    (0x50, "timeout CHK -> DIV", K.JAM),
])

ERRORS_4000 = _table([
    (0x20, "no error", K.NONE), (0x21, "pick-up error (or cassette empty)", K.PICK_UP),
    (0x22, "jam between CHK and DVT sensors", K.JAM), (0x23, "jam between DVT and EJT sensors", K.JAM),
    (0x24, "jam between EJT and EXIT sensors", K.JAM), (0x25, "a note stays at the EXIT sensor", K.JAM),
    (0x26, "a note suspected as reject was ejected", K.COUNTING),
    (0x27, "note count mismatch at the eject sensor", K.COUNTING),
    (0x28, "a note that should be rejected passed the eject sensor", K.COUNTING),
    (0x29, "media too long at the eject sensor", K.JAM), (0x2A, "media too long at the exit sensor", K.JAM),
    (0x2B, "notes on the path before pick-up started", K.JAM),
    (0x2C, "too many notes in one command", K.BAD_REQUEST),
    (0x2D, "too many rejects in one command", K.TOO_MANY_REJECTS),
    (0x2E, "purge ended abnormally", K.JAM),
    (0x40, "sensor trouble or foreign material before start", K.HARDWARE),
    (0x41, "sensor trouble or foreign material before start", K.HARDWARE),
    (0x42, "solenoid trouble before dispense", K.HARDWARE),
    (0x43, "motor or slit-sensor trouble before dispense", K.HARDWARE),
    (0x44, "requested cassette not present", K.CASSETTE_MISSING),
    (0x45, "requested cassette is near end", K.NEAR_END), (0x46, "no reject tray", K.NO_REJECT_TRAY),
    (0x49, "more notes dispensed than requested", K.COUNTING),
    (0x50, "abnormal command", K.BAD_REQUEST), (0x51, "abnormal parameter", K.BAD_REQUEST),
    *[(0x52 + i, "firmware download or EEPROM error", K.HARDWARE) for i in range(5)],
    *[(0x60 + i, f"a note from cassette {i + 1} (not requested) was seen", K.COUNTING, i) for i in range(4)],
])

OK_2000 = 0x30
OK_4000 = 0x20


def error_code(model: Model, value: int) -> DeviceCode:
    """The table entry for an ERR byte; an unknown byte is a hardware error named by its value."""
    table = ERRORS_2000 if model is LCDM2000 else ERRORS_4000
    return table.get(value) or DeviceCode(value, "unknown error code", ErrorKind.HARDWARE)


# ---------------------------------------------------------------------------- results

@dataclass(frozen=True)
class CassetteCounts:
    exited: int                   # passed the exit sensor: with the customer
    rejected: int                 # diverted to the reject tray
    picked: int | None = None     # counted at the check sensors (LCDM-2000 only)
    present: bool | None = None   # LCDM-4000 TYPE byte; None where the frame does not say
    near_end: bool | None = None  # LCDM-2000 CST byte; None where the frame does not say


@dataclass(frozen=True)
class OperationResult:
    """What a PURGE / DISPENSE / TEST DISPENSE (or the 4000's LAST STATUS) reports.
    `counts` is None when the device answered only with an error code (a short frame)."""

    cmd: int
    error: DeviceCode
    counts: tuple[CassetteCounts, ...] | None

    def exited(self) -> tuple[int, ...]:
        return tuple(c.exited for c in self.counts or ())

    def rejected(self) -> tuple[int, ...]:
        return tuple(c.rejected for c in self.counts or ())


@dataclass(frozen=True)
class CassetteSensor:
    present: bool
    near_end: bool


@dataclass(frozen=True)
class StatusReport:
    error: DeviceCode
    cassettes: tuple[CassetteSensor, ...]
    reject_tray_present: bool | None
    path_blocked: bool            # a note sits on a sensor in the transport (a jam until purged)
    raw: bytes                    # the frame's DATA, for a technician


@dataclass(frozen=True)
class RomVersion:
    model_letter: str
    version: str
    checksum: str
    text: str


# ---------------------------------------------------------------------------- LCDM-2000

def _digits2(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
        raise MessageError(f"{what}: {value!r} is not a count 0..99")
    return f"{value:02d}".encode("ascii")


def _read2(data: bytes, at: int, what: str) -> int:
    pair = data[at:at + 2]
    if len(pair) != 2 or not all(0x30 <= b <= 0x39 for b in pair):
        raise MessageError(f"LCDM-2000 {what}: expected two ASCII digits, got {pair.hex(' ') or 'nothing'}")
    return (pair[0] - 0x30) * 10 + pair[1] - 0x30


def dispense_2000(upper: int, lower: int) -> tuple[int, bytes]:
    """(CMD, DATA) for one LCDM-2000 dispense: 45 upper, 55 lower, 56 both."""
    for count, which in ((upper, "upper"), (lower, "lower")):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= LCDM2000.max_per_cassette:
            raise MessageError(f"LCDM-2000 {which} count {count!r}: one command takes 0..60 notes per cassette")
    if upper and lower:
        return Cmd2000.BOTH_DISPENSE, _digits2(upper, "upper") + _digits2(lower, "lower")
    if upper:
        return Cmd2000.UPPER_DISPENSE, _digits2(upper, "upper")
    if lower:
        return Cmd2000.LOWER_DISPENSE, _digits2(lower, "lower")
    raise MessageError("LCDM-2000 dispense of 0 notes: nothing to send")


def parse_request_2000(cmd: int, data: bytes) -> tuple[int, int]:
    """(upper, lower) asked by a host dispense frame (device side). Raises MessageError."""
    if cmd in (Cmd2000.UPPER_DISPENSE, Cmd2000.LOWER_DISPENSE):
        if len(data) != 2:
            raise MessageError(f"LCDM-2000 dispense 0x{cmd:02X}: 2 digits expected, got {data.hex(' ')}")
        n = _read2(data, 0, "dispense count")
        return (n, 0) if cmd == Cmd2000.UPPER_DISPENSE else (0, n)
    if cmd == Cmd2000.BOTH_DISPENSE:
        if len(data) != 4:
            raise MessageError(f"LCDM-2000 dispense 0x56: 4 digits expected, got {data.hex(' ')}")
        return _read2(data, 0, "upper count"), _read2(data, 2, "lower count")
    raise MessageError(f"LCDM-2000 command 0x{cmd:02X} is not a dispense")


def encode_dispense_result_2000(cmd: int, err: int, per: Sequence[tuple[int, int, int, bool]]) -> bytes:
    """Response DATA for 45/55/76/77 (one cassette) or 56 (both): per cassette
    (picked, exited, rejected, near_end)."""
    if cmd == Cmd2000.BOTH_DISPENSE:
        (uc, ue, ur, un), (lc, le, lr, ln) = per
        return (_digits2(uc, "chk") + _digits2(ue, "exit") + _digits2(lc, "chk") + _digits2(le, "exit")
                + bytes((err, 0x31 if un else 0x30, 0x31 if ln else 0x30)) + _digits2(ur, "rej") + _digits2(lr, "rej"))
    (c, e, r, n), = per
    return _digits2(c, "chk") + _digits2(e, "exit") + bytes((err, 0x31 if n else 0x30)) + _digits2(r, "rej")


def parse_dispense_2000(frame: Frame) -> OperationResult:
    """A 45/55/56/76/77 response: per cassette (upper, lower) picked, exited, rejected.
    A short [CMD ERR] frame (one source) carries an error and no counts."""
    cmd, data = frame.cmd, frame.data
    if cmd not in DISPENSE_COMMANDS_2000 | TEST_COMMANDS_2000:
        raise MessageError(f"LCDM-2000: 0x{cmd:02X} is not a dispense response")
    if len(data) == 1:
        return OperationResult(cmd, error_code(LCDM2000, data[0]), None)
    none = CassetteCounts(0, 0, 0, None, None)
    if cmd == Cmd2000.BOTH_DISPENSE:
        if len(data) != 15:
            raise MessageError(f"LCDM-2000 0x56 response: 15 data bytes expected, got {len(data)}: {data.hex(' ')}")
        upper = CassetteCounts(_read2(data, 2, "upper exit"), _read2(data, 11, "upper reject"),
                               _read2(data, 0, "upper check"), None, data[9] == 0x31)
        lower = CassetteCounts(_read2(data, 6, "lower exit"), _read2(data, 13, "lower reject"),
                               _read2(data, 4, "lower check"), None, data[10] == 0x31)
        return OperationResult(cmd, error_code(LCDM2000, data[8]), (upper, lower))
    if len(data) != 8:
        raise MessageError(f"LCDM-2000 0x{cmd:02X} response: 8 data bytes expected, got {len(data)}: {data.hex(' ')}")
    one = CassetteCounts(_read2(data, 2, "exit"), _read2(data, 6, "reject"), _read2(data, 0, "check"),
                         None, data[5] == 0x31)
    counts = (one, none) if cmd in (Cmd2000.UPPER_DISPENSE, Cmd2000.UPPER_TEST) else (none, one)
    return OperationResult(cmd, error_code(LCDM2000, data[4]), counts)


def parse_purge_2000(frame: Frame) -> OperationResult:
    if frame.cmd != Cmd2000.PURGE or len(frame.data) != 1:
        raise MessageError(f"LCDM-2000 purge response: [44 ERR] expected, got {frame!r}")
    return OperationResult(frame.cmd, error_code(LCDM2000, frame.data[0]), None)


def encode_status_2000(err: int, *, upper_present: bool, lower_present: bool, upper_near_end: bool,
                       lower_near_end: bool, reject_tray_present: bool, exit_blocked: bool) -> bytes:
    s0 = 0x80 | (0x20 if exit_blocked else 0) | (0x40 if upper_near_end else 0)
    s1 = (0x80 | (0 if upper_present else 0x02) | (0 if lower_present else 0x04)
          | (0x20 if lower_near_end else 0) | (0 if reject_tray_present else 0x40))
    return bytes((0x30, err, s0, s1))


def parse_status_2000(frame: Frame) -> StatusReport:
    data = frame.data
    if frame.cmd != Cmd2000.STATUS or len(data) != 4:
        raise MessageError(f"LCDM-2000 status response: [46 30 ERR S0 S1] expected, got {frame!r}")
    s0, s1 = data[2], data[3]
    cassettes = (CassetteSensor(present=not s1 & 0x02, near_end=bool(s0 & 0x40)),
                 CassetteSensor(present=not s1 & 0x04, near_end=bool(s1 & 0x20)))
    return StatusReport(error_code(LCDM2000, data[1]), cassettes, reject_tray_present=not s1 & 0x40,
                        path_blocked=bool(s0 & 0x3F) or bool(s1 & 0x18), raw=bytes(data))


def parse_rom_2000(frame: Frame) -> RomVersion:
    data = frame.data
    if frame.cmd != Cmd2000.ROM_VERSION or len(data) != 8 or not all(0x20 < b < 0x7F for b in data):
        raise MessageError(f"LCDM-2000 ROM response: 8 printable bytes expected, got {frame!r}")
    text = data.decode("ascii")
    return RomVersion(text[0], text[1:3], text[4:8], text)


# ---------------------------------------------------------------------------- LCDM-4000

def dispense_4000(counts: Sequence[int], *, timeout_s: int | None = None) -> bytes:
    """DATA of a 4000 DISPENSE / TEST DISPENSE: Q1..Q4 (+0x20), TO1 TO2, 9 reserved."""
    if len(counts) > 4:
        raise MessageError(f"LCDM-4000 has 4 cassette positions, got {len(counts)} counts")
    padded = list(counts) + [0] * (4 - len(counts))
    for i, n in enumerate(padded):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100:
            raise MessageError(f"LCDM-4000 cassette {i + 1} count {n!r}: 0..100 expected")
    total = sum(padded)
    if not 1 <= total <= 100:
        raise MessageError(f"LCDM-4000 dispense of {total} notes: one command takes 1..100")
    if timeout_s is None:
        to = b"\x20\x20"
    elif isinstance(timeout_s, int) and 0 <= timeout_s <= 9:
        to = bytes((0x1C, 0x30 + timeout_s))
    else:
        raise MessageError(f"LCDM-4000 timeout {timeout_s!r}: 0..9 or None (device default)")
    return bytes(0x20 + n for n in padded) + to + b"\x20" * 9


def parse_request_4000(data: bytes) -> tuple[int, int, int, int]:
    """Notes per cassette asked by a 4000 DISPENSE / TEST frame (device side). The
    simulator takes 4..15 bytes and looks only at Q1..Q4 (lamassu sends 7)."""
    if not 4 <= len(data) <= 15:
        raise MessageError(f"LCDM-4000 dispense: 4..15 data bytes expected, got {len(data)}")
    counts = tuple(b - 0x20 for b in data[:4])
    if any(not 0 <= n <= 100 for n in counts):
        raise MessageError(f"LCDM-4000 dispense: counts must be 0x20..0x84, got {data[:4].hex(' ')}")
    return counts  # type: ignore[return-value]


def _per_cassette_4000(data: bytes, at: int, what: str) -> tuple[CassetteCounts, ...]:
    out = []
    for n in range(4):
        exit_b, rej_b, type_b = data[at + 3 * n:at + 3 * n + 3]
        if exit_b < 0x20 or rej_b < 0x20:
            raise MessageError(f"LCDM-4000 {what}: cassette {n + 1} counts 0x{exit_b:02X} 0x{rej_b:02X} "
                               f"below 0x20")
        if type_b != 0x30 and type_b != 0x31 + n:
            raise MessageError(f"LCDM-4000 {what}: cassette {n + 1} TYPE 0x{type_b:02X}, expected 30 or {0x31 + n:02X}")
        out.append(CassetteCounts(exit_b - 0x20, rej_b - 0x20, None, type_b != 0x30, None))
    return tuple(out)


def encode_counts_4000(per: Sequence[tuple[int, int, bool]]) -> bytes:
    """Per cassette (exited, rejected, present) as EXIT REJ TYPE triplets."""
    out = bytearray()
    for n, (exited, rejected, present) in enumerate(per):
        out += bytes((0x20 + exited, 0x20 + rejected, 0x31 + n if present else 0x30))
    return bytes(out)


def parse_operation_4000(frame: Frame) -> OperationResult:
    """A 4000 PURGE, DISPENSE, TEST DISPENSE or LAST STATUS response. A short [CMD ERR]
    frame (no source shows one on the 4000, but a host must cope) carries no counts."""
    cmd, data = frame.cmd, frame.data
    if cmd in (Cmd4000.DISPENSE, Cmd4000.TEST_DISPENSE, Cmd4000.PURGE) and len(data) == 1:
        return OperationResult(cmd, error_code(LCDM4000, data[0]), None)
    if cmd in (Cmd4000.DISPENSE, Cmd4000.TEST_DISPENSE):
        if len(data) != 23:
            raise MessageError(f"LCDM-4000 0x{cmd:02X} response: 23 data bytes expected, got {len(data)}")
        return OperationResult(cmd, error_code(LCDM4000, data[0]), _per_cassette_4000(data, 2, "dispense"))
    if cmd == Cmd4000.PURGE:
        if len(data) != 14:
            raise MessageError(f"LCDM-4000 purge response: 14 data bytes expected, got {len(data)}")
        return OperationResult(cmd, error_code(LCDM4000, data[0]), _per_cassette_4000(data, 2, "purge"))
    if cmd == Cmd4000.LAST_STATUS:
        if len(data) != 15:
            raise MessageError(f"LCDM-4000 last status response: 15 data bytes expected, got {len(data)}")
        last = data[0]
        if last not in (0x20, Cmd4000.PURGE, Cmd4000.DISPENSE, Cmd4000.TEST_DISPENSE):
            raise MessageError(f"LCDM-4000 last status: LASTCMD 0x{last:02X} is not 20, 51, 52 or 53")
        return OperationResult(last, error_code(LCDM4000, data[1]), _per_cassette_4000(data, 3, "last status"))
    raise MessageError(f"LCDM-4000: 0x{cmd:02X} is not a purge, dispense or last-status response")


def encode_status_4000(err: int, disp: int, cassettes: Sequence[tuple[bool, bool]]) -> bytes:
    """STATUS DATA from (present, near_end) per position; OPAC/LENG as +0x20 zeros."""
    out = bytearray((err, disp))
    for n, (present, near_end) in enumerate(cassettes):
        out += bytes((0x08 if present and near_end else 0, 0x31 + n if present else 0x30, 0x20, 0x20))
    return bytes(out)


def parse_status_4000(frame: Frame) -> StatusReport:
    data = frame.data
    if frame.cmd != Cmd4000.STATUS or len(data) != 18:
        raise MessageError(f"LCDM-4000 status response: 18 data bytes expected, got {frame!r}")
    cassettes = []
    for n in range(4):
        stat, type_b = data[2 + 4 * n], data[3 + 4 * n]
        if type_b != 0x30 and type_b != 0x31 + n:
            raise MessageError(f"LCDM-4000 status: cassette {n + 1} TYPE 0x{type_b:02X}, expected 30 or {0x31 + n:02X}")
        cassettes.append(CassetteSensor(present=type_b != 0x30, near_end=bool(stat & 0x08)))
    return StatusReport(error_code(LCDM4000, data[0]), tuple(cassettes), reject_tray_present=None,
                        path_blocked=bool(data[1] & 0x1F), raw=bytes(data))


def parse_reset_4000(frame: Frame) -> DeviceCode:
    if frame.cmd != Cmd4000.RESET or len(frame.data) != 1:
        raise MessageError(f"LCDM-4000 reset response: [44 ERR] expected, got {frame!r}")
    return error_code(LCDM4000, frame.data[0])


# ---------------------------------------------------------------------------- LCDM-4000 settings

def diagnostics_4000(position: int) -> bytes:
    """DATA of SENSOR DIAGNOSTICS (0x58): the cassette position 1..4 (5 notes to the reject tray)."""
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= 4:
        raise MessageError(f"LCDM-4000 sensor diagnostics: position 1..4 expected, got {position!r}")
    return bytes((0x30 + position,))


@dataclass(frozen=True)
class Diagnostics:
    error: DeviceCode
    opacity: int
    length: int
    divert_ms: int
    rejected: int


def parse_diagnostics_4000(frame: Frame) -> Diagnostics:
    data = frame.data
    if frame.cmd != Cmd4000.SENSOR_DIAGNOSTICS or len(data) != 5 or any(b < 0x20 for b in data):
        raise MessageError(f"LCDM-4000 diagnostics response: [58 ERR OPAC LENG DIVERT REJ] (each +0x20) "
                           f"expected, got {frame!r}")
    return Diagnostics(error_code(LCDM4000, data[0]), *(b - 0x20 for b in data[1:]))


def nibbles_4000(values: Sequence[int]) -> bytes:
    """DATA of SET OPACITY (0x5A) / SET LENGTH (0x5E): per cassette a byte as two hex
    nibbles +0x30; 0 keeps the value the unit has stored."""
    if len(values) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in values):
        raise MessageError(f"LCDM-4000 reference values: four values 0..255 expected, got {list(values)!r}")
    return bytes(b for v in values for b in (0x30 + (v >> 4), 0x30 + (v & 0x0F)))


def parse_nibbles_request_4000(data: bytes) -> tuple[int, ...]:
    """The four values of a SET OPACITY / SET LENGTH request (device side)."""
    if len(data) != 8 or any(not 0x30 <= b <= 0x3F for b in data):
        raise MessageError(f"LCDM-4000 reference values: 8 nibble bytes 30..3F expected, got {data.hex(' ')}")
    return tuple((data[i] - 0x30) << 4 | (data[i + 1] - 0x30) for i in range(0, 8, 2))


def parse_nibbles_4000(frame: Frame) -> tuple[DeviceCode, tuple[int, ...]]:
    """A GET OPACITY (0x5B) / GET LENGTH (0x5F) response: ERR and four stored values."""
    data = frame.data
    if frame.cmd not in (Cmd4000.GET_OPACITY, Cmd4000.GET_LENGTH) or len(data) != 9 \
            or any(not 0x30 <= b <= 0x3F for b in data[1:]):
        raise MessageError(f"LCDM-4000 reference values: ERR + 8 nibble bytes 30..3F expected, got {frame!r}")
    nib = [b - 0x30 for b in data[1:]]
    return error_code(LCDM4000, data[0]), tuple(nib[i] << 4 | nib[i + 1] for i in range(0, 8, 2))


def pick_order_4000(order: Sequence[int]) -> bytes:
    """DATA of SET PICK ORDER (0x5C): the four positions 1..4 in the order to pick from."""
    if sorted(order) != [1, 2, 3, 4]:
        raise MessageError(f"LCDM-4000 pick order: a permutation of 1, 2, 3, 4 expected, got {list(order)!r}")
    return bytes(0x30 + n for n in order)


def parse_pick_order_request_4000(data: bytes) -> tuple[int, ...]:
    """The order of a SET PICK ORDER request (device side): positions 1..4."""
    order = tuple(b - 0x30 for b in data)
    if sorted(order) != [1, 2, 3, 4]:
        raise MessageError(f"LCDM-4000 pick order: a permutation of 31..34 expected, got {data.hex(' ')}")
    return order


def parse_pick_order_4000(frame: Frame) -> tuple[DeviceCode, tuple[int, ...]]:
    data = frame.data
    if frame.cmd != Cmd4000.GET_PICK_ORDER or len(data) != 5 or sorted(b - 0x30 for b in data[1:]) != [1, 2, 3, 4]:
        raise MessageError(f"LCDM-4000 pick order response: ERR + a permutation of 31..34 expected, got {frame!r}")
    return error_code(LCDM4000, data[0]), tuple(b - 0x30 for b in data[1:])


def parse_ack_4000(frame: Frame) -> DeviceCode:
    """The [CMD ERR] answer of RESET and the SET commands (5A, 5C, 5E)."""
    if frame.cmd not in (Cmd4000.RESET, Cmd4000.SET_OPACITY, Cmd4000.SET_PICK_ORDER, Cmd4000.SET_LENGTH) \
            or len(frame.data) != 1:
        raise MessageError(f"LCDM-4000: [CMD ERR] expected, got {frame!r}")
    return error_code(LCDM4000, frame.data[0])
