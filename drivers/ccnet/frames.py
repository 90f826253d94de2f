"""CashCode ccNet wire codec: CRC-16 (CCITT polynomial, reflected, initial 0: CRC-16/KERMIT),
frames `02 ADR LNG payload CRCL CRCH`, a streaming decoder that resynchronises on garbage,
and the bill validator's command, poll-state, reject and failure tables. Pure: no I/O, no
clocks; the host driver and the device simulator both use it, so they never disagree on a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from drivers import kermit_frames
from drivers.kermit_frames import SyncLengthDecoder, seal
from hal.errors import ProtocolError

SYNC = 0x02
ADDRESS_VALIDATOR = 0x03
# SYNC + ADR + LNG + CRC(2) around a payload of 1..250 bytes. Every ccNet message has at
# least one payload byte (a command, ACK 0x00 or a state), and LNG is one byte; the wide
# form (LNG 0, length inside DATA) only carries the statistics dump, which we never ask for.
OVERHEAD = 5
MIN_FRAME = OVERHEAD + 1
MAX_FRAME = 255
MAX_PAYLOAD = MAX_FRAME - OVERHEAD


class FrameError(kermit_frames.FrameError):
    """Bytes that do not form a ccNet frame (no sync, impossible length, truncated, garbage)."""


class CrcError(FrameError, kermit_frames.CrcError):
    """A frame whose CRC does not match its contents: corrupted on the line."""


class MessageError(ProtocolError):
    """A well-formed frame whose payload does not fit the message it claims to be."""


class Command(IntEnum):
    """Controller -> bill validator (first payload byte)."""

    RESET = 0x30
    GET_STATUS = 0x31
    SET_SECURITY = 0x32
    POLL = 0x33
    ENABLE_BILL_TYPES = 0x34     # 3 bytes enable mask + 3 bytes escrow mask, bit 23 first
    STACK = 0x35
    RETURN = 0x36
    IDENTIFICATION = 0x37
    HOLD = 0x38
    GET_BILL_TABLE = 0x41


# One-byte answers, in both directions: the receiver confirms (ACK) or asks again (NAK);
# the validator says ILLEGAL COMMAND when a command does not fit its state.
ACK = 0x00
NAK = 0xFF
ILLEGAL_COMMAND = 0x30


class State(IntEnum):
    """First byte of the validator's answer to POLL."""

    POWER_UP = 0x10
    POWER_UP_BILL_IN_VALIDATOR = 0x11
    POWER_UP_BILL_IN_STACKER = 0x12
    INITIALIZE = 0x13
    IDLING = 0x14
    ACCEPTING = 0x15
    STACKING = 0x17
    RETURNING = 0x18
    UNIT_DISABLED = 0x19
    HOLDING = 0x1A
    DEVICE_BUSY = 0x1B           # + time in 100 ms units
    REJECTING = 0x1C             # + reject reason
    CASSETTE_FULL = 0x41
    CASSETTE_OUT = 0x42
    VALIDATOR_JAMMED = 0x43
    CASSETTE_JAMMED = 0x44
    CHEATED = 0x45
    PAUSE = 0x46
    FAILURE = 0x47               # + failure code
    ESCROW = 0x80                # + bill type
    STACKED = 0x81               # + bill type: the moment of credit
    RETURNED = 0x82              # + bill type


# States that carry a second byte; the others carry none.
TWO_BYTE_STATES = frozenset({State.DEVICE_BUSY, State.REJECTING, State.FAILURE,
                             State.ESCROW, State.STACKED, State.RETURNED})

REJECT_REASONS = {
    0x60: "insertion error",
    0x61: "magnetic (dielectric) error",
    0x62: "previous bill still in the head",
    0x63: "compensation / multiplying factor error",
    0x64: "bill transport error",
    0x65: "identification error",
    0x66: "verification error",
    0x67: "optic sensor error",
    0x68: "denomination inhibited",
    0x69: "capacitance error",
    0x6A: "operation error",
    0x6C: "length error",
}

FAILURES = {
    0x50: "stack (drop cassette) motor failure",
    0x51: "transport motor speed out of range",
    0x52: "transport motor failure",
    0x53: "aligning motor failure",
    0x54: "initial cassette status failure",
    0x55: "optic sensor failure",
    0x56: "magnetic (inductive) sensor failure",
    0x5F: "capacitance sensor failure",
}

BILL_TYPES = 24
BILL_TABLE_BYTES = 5 * BILL_TYPES


# ccNet's CRC: polynomial 0x8408 (x^16 + x^12 + x^5 + 1 reflected), initial value 0.
crc16 = kermit_frames.crc16_kermit


@dataclass(frozen=True)
class Frame:
    """One ccNet message: the peripheral address and the payload between LNG and CRC
    (a command and its data from the controller; ACK/NAK or response data otherwise)."""

    payload: bytes
    address: int = ADDRESS_VALIDATOR

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFF:
            raise FrameError(f"ccNet address must be one byte, got {self.address!r}")
        if not 1 <= len(self.payload) <= MAX_PAYLOAD:
            raise FrameError(f"ccNet payload must be 1..{MAX_PAYLOAD} bytes, got {len(self.payload)}")

    @classmethod
    def command(cls, command: int, data: bytes = b"", address: int = ADDRESS_VALIDATOR) -> "Frame":
        return cls(bytes((command,)) + bytes(data), address)

    @property
    def code(self) -> int:
        """The first payload byte: a command, ACK/NAK/ILLEGAL COMMAND, or a poll state."""
        return self.payload[0]

    @property
    def data(self) -> bytes:
        """The payload after its first byte."""
        return self.payload[1:]

    def encode(self) -> bytes:
        return encode_frame(self.payload, self.address)

    def __repr__(self) -> str:
        return f"Frame(adr 0x{self.address:02X}: {self.payload.hex(' ')})"


ACK_FRAME = Frame(bytes((ACK,)))
NAK_FRAME = Frame(bytes((NAK,)))
ILLEGAL_FRAME = Frame(bytes((ILLEGAL_COMMAND,)))


def encode_frame(payload: bytes, address: int = ADDRESS_VALIDATOR) -> bytes:
    """SYNC ADR LNG PAYLOAD CRCL CRCH; LNG counts the whole frame, the CRC covers SYNC..PAYLOAD."""
    payload = bytes(payload)
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise FrameError(f"ccNet payload must be 1..{MAX_PAYLOAD} bytes, got {len(payload)}")
    if not 0 <= address <= 0xFF:
        raise FrameError(f"ccNet address must be one byte, got {address!r}")
    return seal(bytes((SYNC, address, len(payload) + OVERHEAD)) + payload)


def decode_frame(raw: bytes) -> Frame:
    """Exactly one frame from `raw`; FrameError/CrcError when it is anything else."""
    raw = bytes(raw)
    kermit_frames.check_frame(raw, protocol="ccNet", sync=SYNC, length_at=2, min_frame=MIN_FRAME,
                              frame_error=FrameError, crc_error=CrcError)
    return Frame(raw[3:-2], raw[1])


class FrameDecoder(SyncLengthDecoder[Frame]):
    """Turns a byte stream into ccNet frames; bad stretches come out as FrameError/CrcError
    items in stream order (see drivers.kermit_frames)."""

    PROTOCOL = "ccNet"
    A_FRAME = "a ccNet frame"
    SYNC = SYNC
    LENGTH_AT = 2
    MIN_FRAME = MIN_FRAME
    FRAME_ERROR = FrameError
    decode = staticmethod(decode_frame)

    def _impossible_length(self, length: int) -> str:
        return (f"ccNet length byte {length} is impossible here (minimum {MIN_FRAME}; "
                f"the wide form LNG 0 is not used); resyncing")


# -- messages -------------------------------------------------------------------------

@dataclass(frozen=True)
class PollAnswer:
    """The validator's answer to POLL: its state and, for some states, one more byte
    (bill type, reject reason, failure code, busy time). `known` is False for a state
    byte this table does not list (a newer firmware's): the caller reports it, never acts on it."""

    code: int
    extra: int | None = None
    known: bool = True

    @property
    def state(self) -> State | None:
        return State(self.code) if self.known else None

    def encode(self) -> bytes:
        return bytes((self.code,)) if self.extra is None else bytes((self.code, self.extra))

    def __str__(self) -> str:
        text = state_name(self.code)
        return text if self.extra is None else f"{text} 0x{self.extra:02X}"


def state_name(code: int) -> str:
    try:
        return State(code).name.lower().replace("_", " ")
    except ValueError:
        return f"unknown state 0x{code:02X}"


def parse_poll(payload: bytes) -> PollAnswer:
    """A POLL answer's payload as a PollAnswer; MessageError when its length does not fit its state."""
    payload = bytes(payload)
    if not 1 <= len(payload) <= 2:
        raise MessageError(f"ccNet poll answer must be 1 or 2 bytes, got {len(payload)} ({payload.hex(' ')})")
    code = payload[0]
    extra = payload[1] if len(payload) == 2 else None
    if code in (ACK, NAK) and extra is None:
        raise MessageError(f"ccNet poll answer 0x{code:02X} is a confirmation (ACK/NAK), not a state")
    try:
        state = State(code)
    except ValueError:
        return PollAnswer(code, extra, known=False)
    need = 2 if state in TWO_BYTE_STATES else 1
    if len(payload) != need:
        raise MessageError(f"ccNet state {state.name} must carry {need} byte(s), got {len(payload)} "
                           f"({payload.hex(' ')})")
    if state in (State.ESCROW, State.STACKED, State.RETURNED) and extra >= BILL_TYPES:  # type: ignore[operator]
        raise MessageError(f"ccNet state {state.name} names bill type {extra}, expected 0..{BILL_TYPES - 1}")
    return PollAnswer(code, extra)


def reject_reason_name(code: int) -> str:
    return REJECT_REASONS.get(code, f"unknown reject reason 0x{code:02X}")


def failure_name(code: int) -> str:
    return FAILURES.get(code, f"unknown failure 0x{code:02X}")


def bill_mask(bill_types: set[int] | frozenset[int]) -> bytes:
    """Three bytes, bit 23 first, a bit set per bill type (enable and escrow masks)."""
    value = 0
    for bill_type in bill_types:
        if not 0 <= bill_type < BILL_TYPES:
            raise MessageError(f"ccNet bill type {bill_type} out of range 0..{BILL_TYPES - 1}")
        value |= 1 << bill_type
    return value.to_bytes(3, "big")


def parse_bill_mask(data: bytes) -> frozenset[int]:
    if len(data) != 3:
        raise MessageError(f"ccNet bill mask must be 3 bytes, got {len(data)} ({bytes(data).hex(' ')})")
    value = int.from_bytes(data, "big")
    return frozenset(t for t in range(BILL_TYPES) if value >> t & 1)


def enable_bill_types_data(enabled: set[int] | frozenset[int], escrow: set[int] | frozenset[int]) -> bytes:
    """ENABLE BILL TYPES data: enable mask then escrow mask (all zero disables the unit)."""
    return bill_mask(enabled) + bill_mask(escrow)


@dataclass(frozen=True)
class BillType:
    """One entry of GET BILL TABLE: `digit` x 10^n (D7 of `scale` clear) or digit / 10^n
    (D7 set) major units of `country`. digit 0 marks an unused bill type."""

    bill_type: int
    digit: int
    country: str
    scale: int

    def encode(self) -> bytes:
        country = self.country.encode("ascii", "replace")[:3].ljust(3, b"\x00")
        return bytes((self.digit,)) + country + bytes((self.scale,))

    def minor_units(self, minor_digits: int) -> int:
        """The note's value in minor units; MessageError when it is not a whole number of them."""
        if self.digit == 0:
            raise MessageError(f"ccNet bill type {self.bill_type} is unused (denomination 0)")
        power = self.scale & 0x7F
        exponent = minor_digits - power if self.scale & 0x80 else minor_digits + power
        if exponent < 0:
            raise MessageError(f"ccNet bill type {self.bill_type} ({self.digit} with scale 0x{self.scale:02X}) is "
                               f"a fraction of the smallest unit of a currency with {minor_digits} decimals")
        if exponent > 18:
            raise MessageError(f"ccNet bill type {self.bill_type} scale 0x{self.scale:02X} is implausibly large")
        return self.digit * 10 ** exponent


def parse_bill_table(data: bytes) -> list[BillType]:
    """GET BILL TABLE's answer: up to 24 five-byte words (unsent words are zero); only used types."""
    data = bytes(data)
    if len(data) % 5 or len(data) > BILL_TABLE_BYTES:
        raise MessageError(f"ccNet bill table must be a multiple of 5 bytes, at most {BILL_TABLE_BYTES}, "
                           f"got {len(data)}")
    table = []
    for index in range(len(data) // 5):
        word = data[5 * index: 5 * index + 5]
        if word[0] == 0:
            continue
        country = word[1:4].decode("ascii", "replace").strip("\x00 ")
        table.append(BillType(index, word[0], country, word[4]))
    return table


def encode_bill_table(entries: list[BillType]) -> bytes:
    words = [bytes(5)] * BILL_TYPES
    for entry in entries:
        if not 0 <= entry.bill_type < BILL_TYPES:
            raise MessageError(f"ccNet bill type {entry.bill_type} out of range 0..{BILL_TYPES - 1}")
        words[entry.bill_type] = entry.encode()
    return b"".join(words)


def bill_type_for_minor(bill_type: int, country: str, minor: int, minor_digits: int) -> BillType:
    """The table entry that describes a note worth `minor` units (used by the simulator)."""
    if minor <= 0:
        raise MessageError(f"a note is worth more than 0, got {minor}")
    power = -minor_digits
    while minor % 10 == 0:
        minor //= 10
        power += 1
    if minor > 0xFF:
        raise MessageError(f"{minor} does not fit the one-byte denomination digit of a ccNet bill table")
    scale = power if power >= 0 else 0x80 | -power
    return BillType(bill_type, minor, country, scale)


@dataclass(frozen=True)
class Identification:
    part_number: str
    serial: str
    asset: bytes


def parse_identification(data: bytes) -> Identification:
    """IDENTIFICATION's answer: part number (15 ASCII), serial number (12 ASCII), asset number (7 binary)."""
    data = bytes(data)
    if len(data) < 27:
        raise MessageError(f"ccNet identification must be at least 27 bytes (part and serial numbers), "
                           f"got {len(data)}")
    part = data[:15].decode("ascii", "replace").strip("\x00 ")
    serial = data[15:27].decode("ascii", "replace").strip("\x00 ")
    return Identification(part, serial, data[27:34])


def encode_identification(part_number: str, serial: str, asset: bytes = bytes(7)) -> bytes:
    return (part_number.encode("ascii")[:15].ljust(15, b" ") + serial.encode("ascii")[:12].ljust(12, b" ")
            + bytes(asset)[:7].ljust(7, b"\x00"))
