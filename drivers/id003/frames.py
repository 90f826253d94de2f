"""JCM ID-003 wire codec: CRC-16/KERMIT, frame encoding and decoding, a streaming
decoder that resynchronises on garbage, and the command/status/reason tables.
Pure: no I/O, no clocks. The host driver and the device simulator both use it,
so the two sides can never disagree on a byte."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

from drivers import kermit_frames
from drivers.kermit_frames import SyncLengthDecoder, crc16_kermit, seal  # noqa: F401  (crc16_kermit: this codec's CRC)
from hal.errors import ProtocolError

SYNC = 0xFC
# SYNC + LNG + CMD + CRC(2): the smallest frame, and LNG is one byte so 255 is the largest.
MIN_FRAME = 5
MAX_FRAME = 255


class FrameError(kermit_frames.FrameError):
    """Bytes that do not form an ID-003 frame (no sync, impossible length, truncated, garbage)."""


class CrcError(FrameError, kermit_frames.CrcError):
    """A frame whose CRC does not match its contents: corrupted on the line."""


class MessageError(ProtocolError):
    """A well-formed frame whose data does not fit the message it claims to be."""


class Command(IntEnum):
    """Host -> acceptor."""

    STATUS_REQUEST = 0x11
    RESET = 0x40
    STACK_1 = 0x41
    STACK_2 = 0x42
    RETURN = 0x43
    HOLD = 0x44
    WAIT = 0x45
    ACK = 0x50
    SET_ENABLE = 0xC0          # denominations: a set bit inhibits that escrow code
    SET_SECURITY = 0xC1
    SET_COMMUNICATION_MODE = 0xC2
    SET_INHIBIT = 0xC3         # 0x00 accept, 0x01 inhibit
    SET_DIRECTION = 0xC4
    SET_OPTIONAL_FUNCTION = 0xC5
    SET_BARCODE_FUNCTION = 0xC6
    SET_BARCODE_INHIBIT = 0xC7
    GET_ENABLE = 0x80
    GET_SECURITY = 0x81
    GET_COMMUNICATION_MODE = 0x82
    GET_INHIBIT = 0x83
    GET_DIRECTION = 0x84
    GET_OPTIONAL_FUNCTION = 0x85
    GET_BARCODE_FUNCTION = 0x86
    GET_BARCODE_INHIBIT = 0x87
    GET_VERSION = 0x88
    GET_BOOT_VERSION = 0x89
    GET_CURRENCY_ASSIGN = 0x8A


SETTING_COMMANDS = frozenset(range(0xC0, 0xC8))
GETTER_COMMANDS = frozenset(range(0x80, 0x8B))


class Status(IntEnum):
    """Acceptor -> host, in answer to a status request (and ACK to operation commands)."""

    ENABLE = 0x11              # idling, notes accepted
    ACCEPTING = 0x12
    ESCROW = 0x13              # + escrow code
    STACKING = 0x14
    VEND_VALID = 0x15          # the settled event: credit, then ACK
    STACKED = 0x16
    REJECTING = 0x17           # + reject reason
    RETURNING = 0x18
    HOLDING = 0x19
    DISABLE = 0x1A             # idling, inhibited
    INITIALIZE = 0x1B
    STACKER_NEARLY_FULL = 0x1C     # optional feature on some units: a cashbox warning, not a fault
    POWER_UP = 0x40
    POWER_UP_BILL_IN_ACCEPTOR = 0x41
    POWER_UP_BILL_IN_STACKER = 0x42
    STACKER_FULL = 0x43
    STACKER_OPEN = 0x44
    ACCEPTOR_JAM = 0x45
    STACKER_JAM = 0x46
    PAUSE = 0x47
    CHEATED = 0x48
    FAILURE = 0x49             # + failure code
    COMMUNICATION_ERROR = 0x4A
    INVALID_COMMAND = 0x4B
    ACK = 0x50


# Statuses that carry exactly one data byte.
_ONE_BYTE_STATUSES = frozenset({Status.ESCROW, Status.REJECTING, Status.FAILURE})

ESCROW_CODES = tuple(range(0x61, 0x69))
BARCODE_TICKET = 0x6F

REJECT_REASONS: dict[int, str] = {
    0x71: "insertion error",
    0x72: "magnetic pattern error",
    0x73: "residual bill in the head",
    0x74: "calibration (multiplying factor) error",
    0x75: "conveying error",
    0x76: "denomination not recognised",
    0x77: "photo pattern error",
    0x78: "photo level error",
    0x79: "returned by inhibit (direction, denomination or no answer to escrow)",
    0x7A: "reserved reason 0x7A",
    0x7B: "operation error",
    0x7C: "residual bill in the stacker",
    0x7D: "length error",
    0x7E: "photo pattern error (2)",
    0x7F: "true-bill feature error (counterfeit feature check)",
    # 0x91..0x98, 0x9B, 0x9D: barcode-ticket rejects. Only 0x98 and 0x9B have names
    # we can vouch for; the others are named by their code, never guessed.
    **{code: f"barcode ticket rejected (reason 0x{code:02X})" for code in range(0x91, 0x98)},
    0x98: "barcode photo level error",
    0x9B: "barcode ticket error",
    0x9D: "barcode ticket rejected (reason 0x9D)",
}
BARCODE_REJECTS = frozenset({*range(0x91, 0x99), 0x9B, 0x9D})

FAILURE_CODES: dict[int, str] = {
    0xA2: "stack motor failure",
    0xA5: "transport motor speed failure",
    0xA6: "transport motor failure",
    0xA8: "solenoid failure",
    0xA9: "PB unit failure",
    0xAB: "cashbox not ready",
    0xAF: "validator head removed",
    0xB0: "boot ROM failure",
    0xB1: "external ROM failure",
    0xB2: "RAM failure",
    0xB3: "external ROM writing failure",
}


def reject_reason_name(code: int) -> str:
    return REJECT_REASONS.get(code, f"unknown reject reason 0x{code:02X}")


def failure_name(code: int) -> str:
    return FAILURE_CODES.get(code, f"unknown failure code 0x{code:02X}")


@dataclass(frozen=True)
class Frame:
    """One ID-003 message: a command or status code and its data bytes."""

    code: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF:
            raise FrameError(f"ID-003 command/status code must be one byte, got {self.code!r}")
        if len(self.data) > MAX_FRAME - MIN_FRAME:
            raise FrameError(f"ID-003 frame data is at most {MAX_FRAME - MIN_FRAME} bytes, got {len(self.data)}")

    def encode(self) -> bytes:
        return encode_frame(self.code, self.data)

    def __repr__(self) -> str:
        return f"Frame(0x{self.code:02X}, {self.data.hex(' ') or '-'})"


def encode_frame(code: int, data: bytes = b"") -> bytes:
    """SYNC LNG CODE DATA CRCL CRCH, LNG counting the whole frame."""
    if not 0 <= code <= 0xFF:
        raise FrameError(f"ID-003 command/status code must be one byte, got {code!r}")
    length = MIN_FRAME + len(data)
    if length > MAX_FRAME:
        raise FrameError(f"ID-003 frame data is at most {MAX_FRAME - MIN_FRAME} bytes, got {len(data)}")
    return seal(bytes((SYNC, length, code)) + bytes(data))


def decode_frame(raw: bytes) -> Frame:
    """Exactly one frame from `raw`; FrameError/CrcError when it is anything else."""
    raw = bytes(raw)
    kermit_frames.check_frame(raw, protocol="ID-003", sync=SYNC, length_at=1, min_frame=MIN_FRAME,
                              frame_error=FrameError, crc_error=CrcError)
    return Frame(raw[2], raw[3:-2])


class FrameDecoder(SyncLengthDecoder[Frame]):
    """Turns a byte stream into ID-003 frames; bad stretches come out as FrameError/CrcError
    items in stream order (see drivers.kermit_frames)."""

    PROTOCOL = "ID-003"
    A_FRAME = "an ID-003 frame"
    SYNC = SYNC
    LENGTH_AT = 1
    MIN_FRAME = MIN_FRAME
    FRAME_ERROR = FrameError
    decode = staticmethod(decode_frame)


# -- messages -----------------------------------------------------------------

def status_name(code: int) -> str:
    try:
        return Status(code).name.lower().replace("_", " ")
    except ValueError:
        return f"unknown status 0x{code:02X}"


def check_status(frame: Frame) -> Status:
    """The status a frame reports, checked against the data length it must carry."""
    try:
        status = Status(frame.code)
    except ValueError:
        raise MessageError(f"ID-003 status 0x{frame.code:02X} is not a known acceptor status ({frame!r})") from None
    need = 1 if status in _ONE_BYTE_STATUSES else 0
    if len(frame.data) != need:
        raise MessageError(f"ID-003 status {status.name} must carry {need} data byte(s), got {len(frame.data)} ({frame!r})")
    return status


@dataclass(frozen=True)
class CurrencyEntry:
    """One row of the currency-assign (0x8A) answer. value = integer x 10^exponent, in major units."""

    escrow_code: int
    country_code: int
    integer: int
    exponent: int

    def minor_units(self, digits: int) -> int:
        """The note's value in minor units of a currency with `digits` minor digits."""
        power = self.exponent + digits
        if power >= 0:
            return self.integer * 10 ** power
        scale = 10 ** -power
        if self.integer % scale:
            raise MessageError(f"ID-003 currency assign: escrow code 0x{self.escrow_code:02X} value "
                               f"{self.integer}e{self.exponent} is finer than the currency's minor unit")
        return self.integer // scale


def parse_currency_assign(data: bytes) -> list[CurrencyEntry]:
    """Rows of a 0x8A answer, skipping unused entries (integer 0). The exponent byte
    is signed so that sub-unit notes (0.50 as 5e-1) are expressible."""
    data = bytes(data)
    if len(data) % 4:
        raise MessageError(f"ID-003 currency assign answer must be 4 bytes per entry, got {len(data)} bytes ({data.hex(' ')})")
    entries = []
    seen: set[int] = set()
    for i in range(0, len(data), 4):
        code, country, integer, exponent = data[i:i + 4]
        if integer == 0:
            continue
        if code in seen:
            raise MessageError(f"ID-003 currency assign lists escrow code 0x{code:02X} twice ({data.hex(' ')})")
        seen.add(code)
        entries.append(CurrencyEntry(code, country, integer, exponent - 256 if exponent >= 0x80 else exponent))
    return entries


def encode_currency_assign(entries: list[CurrencyEntry]) -> bytes:
    out = bytearray()
    for e in entries:
        if not (0 <= e.integer <= 0xFF and -128 <= e.exponent <= 127):
            raise MessageError(f"ID-003 currency assign cannot express {e.integer}e{e.exponent} in one byte each")
        out += bytes((e.escrow_code, e.country_code, e.integer, e.exponent & 0xFF))
    return bytes(out)


def entry_for_minor(code: int, country: int, minor: int, digits: int) -> CurrencyEntry:
    """The smallest integer/exponent pair that names `minor` units of a `digits`-digit currency."""
    if minor <= 0:
        raise MessageError(f"ID-003 note value must be positive, got {minor}")
    integer, exponent = minor, -digits
    while integer % 10 == 0:
        integer //= 10
        exponent += 1
    if integer > 0xFF:
        raise MessageError(f"ID-003 currency assign cannot express {minor} minor units (integer part {integer} > 255)")
    return CurrencyEntry(code, country, integer, exponent)


# -- enable/disable denominations (0xC0) ---------------------------------------------

def denomination_bit(code: int) -> tuple[int, int] | None:
    """(byte, bit) of `code` in the 0xC0 mask: byte 0 bit k is escrow code 0x61+k,
    byte 1 bit k is 0x71+k (JCM's map). None for a code the mask cannot name."""
    if 0x61 <= code <= 0x68:
        return 0, code - 0x61
    if 0x71 <= code <= 0x78:
        return 1, code - 0x71
    return None


def denomination_mask(inhibited: Iterable[int]) -> bytes:
    """The two data bytes of SET_ENABLE (0xC0) that inhibit exactly `inhibited`
    (a set bit inhibits). A code outside the map is a MessageError."""
    mask = bytearray(2)
    for code in inhibited:
        place = denomination_bit(code)
        if place is None:
            raise MessageError(f"escrow code 0x{code:02X} has no bit in the ID-003 denomination mask "
                               f"(0x61..0x68 and 0x71..0x78 only)")
        mask[place[0]] |= 1 << place[1]
    return bytes(mask)


def mask_inhibits(mask: bytes, code: int) -> bool:
    """Whether the 0xC0 data `mask` inhibits escrow code `code`. Data of any other
    length than two bytes is a MessageError, as the unit refuses it."""
    mask = bytes(mask)
    if len(mask) != 2:
        raise MessageError(f"ID-003 denomination mask (0xC0) must be 2 bytes, got {len(mask)} ({mask.hex(' ')})")
    place = denomination_bit(code)
    return place is not None and bool(mask[place[0]] >> place[1] & 1)


def parse_escrow_code(text: str) -> int:
    """An escrow code from configuration: "0x61" or "97"."""
    try:
        value = int(text, 0)
    except (TypeError, ValueError):
        raise MessageError(f"escrow code {text!r} is not a number; write it as \"0x61\" or \"97\"") from None
    if not 0 <= value <= 0xFF:
        raise MessageError(f"escrow code {text!r} must be one byte (0x00..0xFF)")
    return value


def version_currency(version: str) -> str | None:
    """The currency a JCM version string names: the first three letters inside the
    parentheses, which may be followed by digits (a region or set number), e.g.
    "U(EUR5)-700-SS ID003-05V027-00 05DEC24" or "i(USA)100-SS ...". Only a tag this
    table knows is taken; anything else is None and the configuration must say it."""
    start = version.find("(")
    end = version.find(")", start + 1)
    if start < 0 or end < 0:
        return None
    inside = version[start + 1:end]
    code, digits = inside[:3], inside[3:]
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
        return None
    if digits and not (digits.isascii() and digits.isdigit()):
        return None
    return _REGION_CURRENCY.get(code)


# Region tags seen in JCM version strings that are not themselves currency codes.
_REGION_CURRENCY = {
    "EUR": "EUR", "USD": "USD", "USA": "USD", "GBP": "GBP", "GBR": "GBP", "CAD": "CAD", "CAN": "CAD",
    "AUD": "AUD", "AUS": "AUD", "CHF": "CHF", "JPY": "JPY", "JPN": "JPY", "RUB": "RUB", "RUS": "RUB",
    "PLN": "PLN", "CZK": "CZK", "HUF": "HUF", "SEK": "SEK", "NOK": "NOK", "DKK": "DKK", "MXN": "MXN",
}
