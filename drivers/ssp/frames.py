"""ITL SSP wire codec: CRC, 0x7F byte stuffing, frames, a streaming decoder, and the
command / reply / poll-event tables with their parsers and builders.

Pure functions and small value types only, no I/O: the host driver and the device
simulator both use this module, so the two sides can never disagree on a byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from hal.errors import ProtocolError

STX = 0x7F
SEQ_BIT = 0x80
ADDRESS_MASK = 0x7F
MAX_DATA = 255


# --------------------------------------------------------------------------- errors


class SspError(ProtocolError):
    """Base of every SSP wire error."""


class CrcError(SspError):
    """A frame arrived whole but its CRC did not match its bytes."""


class FrameError(SspError):
    """Bytes that cannot be an SSP frame (no STX, bad length, lone 0x7F, trailing bytes)."""


class MessageError(SspError):
    """A frame was fine but its data is not the message it claims to be."""


class UnknownEventError(MessageError):
    """A poll reply carried an event code whose data length this codec does not know.

    `parsed` holds the events before it, in order, so a caller can still act on them."""

    def __init__(self, message: str, parsed: "list[PollEvent]") -> None:
        super().__init__(message)
        self.parsed = parsed


class CommandRefused(SspError):
    """The device answered with a generic reply other than OK."""

    def __init__(self, command: int, reply: int) -> None:
        self.command = command
        self.reply = reply
        super().__init__(
            f"SSP device refused command {describe_command(command)}: "
            f"{describe_reply(reply)} (0x{reply:02X})"
        )


# --------------------------------------------------------------------------- tables


class Command(IntEnum):
    RESET = 0x01
    SET_INHIBITS = 0x02
    SETUP_REQUEST = 0x05
    HOST_PROTOCOL_VERSION = 0x06
    POLL = 0x07
    REJECT = 0x08
    DISABLE = 0x09
    ENABLE = 0x0A
    SERIAL_NUMBER = 0x0C
    UNIT_DATA = 0x0D
    CHANNEL_VALUES = 0x0E
    SYNC = 0x11
    LAST_REJECT_CODE = 0x17
    HOLD = 0x18
    GET_FIRMWARE_VERSION = 0x20
    SET_GENERATOR = 0x4A
    SET_MODULUS = 0x4B
    REQUEST_KEY_EXCHANGE = 0x4C
    ENABLE_PAYOUT = 0x5C


class Reply(IntEnum):
    OK = 0xF0
    UNKNOWN_COMMAND = 0xF2
    WRONG_PARAMETERS = 0xF3
    PARAMETER_OUT_OF_RANGE = 0xF4
    CANNOT_PROCESS = 0xF5
    SOFTWARE_ERROR = 0xF6
    FAIL = 0xF8
    KEY_NOT_SET = 0xFA


ENCRYPTED_PACKET = 0x7E

_REPLY_TEXT = {
    Reply.OK: "OK",
    Reply.UNKNOWN_COMMAND: "command not known",
    Reply.WRONG_PARAMETERS: "wrong number of parameters",
    Reply.PARAMETER_OUT_OF_RANGE: "parameter out of range",
    Reply.CANNOT_PROCESS: "cannot process the command now",
    Reply.SOFTWARE_ERROR: "software error",
    Reply.FAIL: "command failed",
    Reply.KEY_NOT_SET: "encryption key not set",
}


class Event(IntEnum):
    SLAVE_RESET = 0xF1
    READ = 0xEF
    CREDIT = 0xEE
    REJECTING = 0xED
    REJECTED = 0xEC
    STACKING = 0xCC
    STACKED = 0xEB
    SAFE_JAM = 0xEA
    UNSAFE_JAM = 0xE9
    DISABLED = 0xE8
    STACKER_FULL = 0xE7
    FRAUD_ATTEMPT = 0xE6
    BARCODE_TICKET_VALIDATED = 0xE5
    CASHBOX_REPLACED = 0xE4
    CASHBOX_REMOVED = 0xE3
    NOTE_CLEARED_INTO_CASHBOX = 0xE2
    NOTE_CLEARED_FROM_FRONT = 0xE1
    NOTE_PATH_OPEN = 0xE0
    BARCODE_TICKET_ACK = 0xD1
    CHANNEL_DISABLE = 0xB5
    INITIALISING = 0xB6
    TICKET_PRINTING = 0xA5
    TICKET_PRINTED = 0xA6
    TICKET_PRINTING_ERROR = 0xA8
    TICKET_IN_BEZEL = 0xAD
    PRINT_HALTED = 0xAE
    PRINTED_TO_CASHBOX = 0xAF


# Bytes of data that follow each event code in a poll reply of a note validator at the
# protocol version this host sets (6), from the event pages of ITL's manual GA138 (the
# NV200 event table, which also covers NV9/NV10/BV units, plus safe jam). A poll reply is a
# flat byte run: without this table the events after the first cannot be found, and the
# manual's own answer to an event of unknown size is that the rest of the reply cannot be
# read. From protocol 9 read and credit carry 7 bytes (value and currency), so a host that
# sets a higher version needs another table.
EVENT_DATA_LENGTH = {
    Event.SLAVE_RESET: 0,
    Event.READ: 1,
    Event.CREDIT: 1,
    Event.REJECTING: 0,
    Event.REJECTED: 0,
    Event.STACKING: 0,
    Event.STACKED: 0,
    Event.SAFE_JAM: 0,
    Event.UNSAFE_JAM: 0,
    Event.DISABLED: 0,
    Event.STACKER_FULL: 0,
    Event.FRAUD_ATTEMPT: 1,
    Event.BARCODE_TICKET_VALIDATED: 0,
    Event.CASHBOX_REPLACED: 0,
    Event.CASHBOX_REMOVED: 0,
    Event.NOTE_CLEARED_INTO_CASHBOX: 1,
    Event.NOTE_CLEARED_FROM_FRONT: 1,
    Event.NOTE_PATH_OPEN: 0,
    Event.BARCODE_TICKET_ACK: 0,
    Event.CHANNEL_DISABLE: 0,
    Event.INITIALISING: 0,
    Event.TICKET_PRINTING: 0,
    Event.TICKET_PRINTED: 0,
    Event.TICKET_PRINTING_ERROR: 1,
    Event.TICKET_IN_BEZEL: 0,
    Event.PRINT_HALTED: 0,
    Event.PRINTED_TO_CASHBOX: 0,
}

# Last reject code (command 0x17) -> words for the customer log and the technician.
REJECT_REASONS = {
    0x00: "note accepted",
    0x01: "note length incorrect",
    0x02: "note not recognised (average fail)",
    0x03: "note not recognised (coastline fail)",
    0x04: "note not recognised (graph fail)",
    0x05: "note not recognised (buried fail)",
    0x06: "channel inhibited",
    0x07: "second note inserted",
    0x08: "rejected by host",
    0x09: "note recognised in more than one channel",
    0x0A: "rear sensor error",
    0x0B: "note too long",
    0x0C: "validator disabled by host",
    0x0D: "mechanism too slow or stalled",
    0x0E: "strimming attempt",
    0x0F: "fraud channel",
    0x10: "no note inserted",
    0x11: "peak detect fail",
    0x12: "twisted note",
    0x13: "escrow time-out",
    0x14: "bar code scan fail",
    0x15: "no camera activate",
    0x16: "slot fail 1",
    0x17: "slot fail 2",
    0x18: "lens oversample",
    0x19: "width detect fail",
    0x1A: "short note detected",
    0x1B: "payout note",
    0x1C: "double note detected",
    0x1D: "unable to stack",
}

UNIT_TYPES = {
    0x00: "banknote validator",
    0x03: "SMART Hopper",
    0x06: "SMART Payout",
    0x07: "NV11",
    0x0D: "TEBS",
}


def describe_command(code: int) -> str:
    try:
        return f"{Command(code).name} (0x{code:02X})"
    except ValueError:
        return f"0x{code:02X}"


def describe_reply(code: int) -> str:
    try:
        return _REPLY_TEXT[Reply(code)]
    except ValueError:
        return "not a generic reply code"


def reject_reason(code: int) -> str:
    return REJECT_REASONS.get(code, f"reject code 0x{code:02X}")


# --------------------------------------------------------------------------- CRC and stuffing


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """SSP CRC: polynomial 0x8005, init 0xFFFF, MSB first, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The CRC as it goes on the wire: low byte first."""
    return crc16(data).to_bytes(2, "little")


def stuff(body: bytes) -> bytes:
    return body.replace(b"\x7f", b"\x7f\x7f")


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    """One SSP packet, un-stuffed: sequence bit (0/1), slave address, data."""

    seq: int
    address: int
    data: bytes

    @property
    def seqid(self) -> int:
        return (SEQ_BIT if self.seq else 0) | self.address

    def encode(self) -> bytes:
        return encode_frame(self.seq, self.address, self.data)


def encode_frame(seq: int, address: int, data: bytes) -> bytes:
    """Wire bytes for one packet: STX, then SEQID LEN DATA CRCL CRCH with every 0x7F doubled."""
    if not 0 <= address <= ADDRESS_MASK:
        raise FrameError(f"SSP address must be 0..127, got {address}")
    if not 0 < len(data) <= MAX_DATA:
        raise FrameError(f"SSP frame data must be 1..255 bytes, got {len(data)}")
    body = bytes([(SEQ_BIT if seq else 0) | address, len(data)]) + bytes(data)
    return bytes([STX]) + stuff(body + crc_bytes(body))


def _check_body(body: bytes) -> Frame:
    seqid, length = body[0], body[1]
    data = body[2:2 + length]
    expected = crc16(body[:2 + length])
    got = body[2 + length] | (body[3 + length] << 8)
    if expected != got:
        raise CrcError(
            f"SSP frame CRC mismatch: expected {expected & 0xFF:02x} {expected >> 8:02x}, "
            f"got {got & 0xFF:02x} {got >> 8:02x} (frame {bytes([STX]).hex(' ')} {body.hex(' ')})"
        )
    if length == 0:
        raise FrameError("SSP frame has LEN 0: every packet carries at least one data byte")
    return Frame(1 if seqid & SEQ_BIT else 0, seqid & ADDRESS_MASK, bytes(data))


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one whole wire frame (with STX, stuffed). Anything else is a typed error."""
    raw = bytes(raw)
    if not raw or raw[0] != STX:
        raise FrameError(f"SSP frame must start with 7f, got {raw[:1].hex() or 'nothing'}")
    body = bytearray()
    i = 1
    while i < len(raw):
        byte = raw[i]
        if byte == STX:
            if i + 1 < len(raw) and raw[i + 1] == STX:
                i += 1
            else:
                raise FrameError(f"SSP frame has an unpaired 7f at byte {i}: {raw.hex(' ')}")
        body.append(byte)
        i += 1
        if len(body) >= 2 and len(body) == body[1] + 4:
            if i != len(raw):
                raise FrameError(f"SSP frame has {len(raw) - i} bytes after its CRC: {raw.hex(' ')}")
            return _check_body(bytes(body))
    raise FrameError(f"SSP frame is truncated ({len(raw)} bytes): {raw.hex(' ')}")


class FrameDecoder:
    """Turns a byte stream into frames. Garbage is skipped, a lone 0x7F restarts a frame
    (that is how a receiver resyncs after noise), and a frame may arrive in any number of
    pieces. Frames that fail their CRC are counted in `errors` instead of raising, so one bad
    reply does not hide the good one behind it."""

    def __init__(self) -> None:
        self.errors: list[SspError] = []
        self.reset()

    def reset(self) -> None:
        self._in_frame = False
        self._pending_stx = False
        self._body = bytearray()

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has arrived and the rest has not (a truncated reply)."""
        return self._in_frame

    def take_errors(self) -> list[SspError]:
        errors, self.errors = self.errors, []
        return errors

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for byte in bytes(chunk):
            if not self._in_frame:
                if byte == STX:
                    self._in_frame = True
                    self._pending_stx = False
                    self._body = bytearray()
                continue
            if self._pending_stx:
                self._pending_stx = False
                if byte != STX:
                    # The earlier 0x7F was not stuffing: a new frame began there.
                    self._body = bytearray()
                    self._body.append(byte)
                    self._maybe_complete(frames)
                    continue
            elif byte == STX:
                self._pending_stx = True
                continue
            self._body.append(byte)
            self._maybe_complete(frames)
        return frames

    def _maybe_complete(self, frames: list[Frame]) -> None:
        body = self._body
        if len(body) >= 2 and len(body) == body[1] + 4:
            try:
                frames.append(_check_body(bytes(body)))
            except SspError as exc:
                self.errors.append(exc)
            self._in_frame = False
            self._body = bytearray()


# --------------------------------------------------------------------------- replies


def split_reply(data: bytes, command: int | None = None) -> bytes:
    """Check the generic reply byte; return the payload after OK or raise CommandRefused."""
    if not data:
        raise MessageError("SSP reply has no data: expected a generic reply code first")
    if data[0] != Reply.OK:
        raise CommandRefused(command if command is not None else 0, data[0])
    return bytes(data[1:])


@dataclass(frozen=True)
class PollEvent:
    code: int
    data: bytes = b""

    @property
    def channel(self) -> int:
        return self.data[0] if self.data else 0

    @property
    def name(self) -> str:
        try:
            return Event(self.code).name
        except ValueError:
            return f"0x{self.code:02X}"

    def encode(self) -> bytes:
        return bytes([self.code]) + self.data


class PollReplyWarning(UserWarning):
    """Part of a poll reply could not be read: an event code of unknown data size (firmware
    newer than this codec, or a protocol version above the one set), or an event whose data
    the reply cuts short. The events before it were read; the bytes from `offset` on were not,
    because without a size there is no telling where the next event starts."""

    def __init__(self, code: int, offset: int, payload: bytes, why: str) -> None:
        self.code = code
        self.offset = offset
        self.unread = bytes(payload[offset:])
        super().__init__(
            f"SSP poll reply: {why} at byte {offset}; the {len(self.unread)} byte(s) from there "
            f"({self.unread.hex(' ')}) were not read, the events before it were: {bytes(payload).hex(' ')}")


@dataclass(frozen=True)
class PollReply:
    """What a poll reply payload says: the events read, in order, and the warning that
    ended the reading early (None when every byte was read)."""

    events: tuple[PollEvent, ...]
    warning: PollReplyWarning | None = None


def decode_poll_reply(payload: bytes) -> PollReply:
    """The events of a poll reply (payload after 0xF0), in the order the device sent them.

    Never raises: whatever cannot be read ends the reading with a typed warning, and every
    event before it is kept (so an event this codec does not know never costs a credit that
    came before it)."""
    payload = bytes(payload)
    events: list[PollEvent] = []
    i = 0
    while i < len(payload):
        code = payload[i]
        try:
            event = Event(code)
            length = EVENT_DATA_LENGTH[event]
        except (ValueError, KeyError):
            return PollReply(tuple(events), PollReplyWarning(
                code, i, payload, f"event 0x{code:02X} has no known data size"))
        if i + 1 + length > len(payload):
            return PollReply(tuple(events), PollReplyWarning(
                code, i, payload, f"event {event.name} needs {length} data byte(s) and the reply ends first"))
        events.append(PollEvent(code, payload[i + 1:i + 1 + length]))
        i += 1 + length
    return PollReply(tuple(events))


def parse_poll_events(payload: bytes) -> list[PollEvent]:
    """Strict form of decode_poll_reply: every byte must be read, or a typed error
    (UnknownEventError, with the events read before it, for a code of unknown size)."""
    reply = decode_poll_reply(payload)
    warning = reply.warning
    if warning is None:
        return list(reply.events)
    if warning.code in EVENT_DATA_LENGTH:
        raise MessageError(str(warning))
    raise UnknownEventError(str(warning), list(reply.events))


def encode_poll_events(events: list[PollEvent]) -> bytes:
    return bytes([Reply.OK]) + b"".join(e.encode() for e in events)


# --------------------------------------------------------------------------- setup request


@dataclass(frozen=True)
class SetupInfo:
    """Answer to setup request (0x05) for a note validator.

    `channel_values` are in minor units of the currency, channel 1 first; 0 = unused."""

    unit_type: int
    firmware: str
    currency: str
    protocol_version: int
    channel_values: tuple[int, ...]
    channel_currencies: tuple[str, ...] = ()
    value_multiplier: int = 1
    real_value_multiplier: int = 100
    channel_security: tuple[int, ...] = field(default=())

    def channel_table(self) -> dict[int, int]:
        return {n: v for n, v in enumerate(self.channel_values, start=1) if v > 0}


def _ascii(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MessageError(f"SSP setup reply: {what} is not ASCII: {raw.hex(' ')}") from None
    return text


def parse_setup_reply(payload: bytes) -> SetupInfo:
    """Payload (after 0xF0) of the setup request reply for a validator.

    Layout: unit type (1), firmware (4 ASCII), currency (3 ASCII), value multiplier (3, big
    endian), channel count n (1), n short channel values, n security bytes, real value
    multiplier (3, big endian), protocol version (1); from protocol 6: n x 3 ASCII currency
    codes, n x 4 channel values (little endian). Minor units = value x real multiplier."""
    p = bytes(payload)
    if len(p) < 12:
        raise MessageError(f"SSP setup reply too short ({len(p)} bytes, need at least 12): {p.hex(' ')}")
    unit_type = p[0]
    firmware = _ascii(p[1:5], "firmware version")
    currency = _ascii(p[5:8], "currency code")
    multiplier = int.from_bytes(p[8:11], "big")
    n = p[11]
    fixed_end = 12 + 2 * n + 4
    if len(p) < fixed_end:
        raise MessageError(
            f"SSP setup reply announces {n} channels but has {len(p)} bytes (need {fixed_end}): {p.hex(' ')}")
    short_values = p[12:12 + n]
    security = p[12 + n:12 + 2 * n]
    real_multiplier = int.from_bytes(p[12 + 2 * n:15 + 2 * n], "big")
    version = p[15 + 2 * n]
    if version >= 6:
        need = fixed_end + 7 * n
        if len(p) != need:
            raise MessageError(
                f"SSP setup reply (protocol {version}, {n} channels) must be {need} bytes, got {len(p)}")
        cur_start = fixed_end
        currencies = tuple(_ascii(p[cur_start + 3 * i:cur_start + 3 * i + 3], f"channel {i + 1} currency")
                           for i in range(n))
        val_start = cur_start + 3 * n
        values = tuple(int.from_bytes(p[val_start + 4 * i:val_start + 4 * i + 4], "little") * real_multiplier
                       for i in range(n))
    else:
        if len(p) != fixed_end:
            raise MessageError(
                f"SSP setup reply (protocol {version}, {n} channels) must be {fixed_end} bytes, got {len(p)}")
        currencies = tuple(currency for _ in range(n))
        values = tuple(v * multiplier * real_multiplier for v in short_values)
    return SetupInfo(unit_type=unit_type, firmware=firmware, currency=currency, protocol_version=version,
                     channel_values=values, channel_currencies=currencies, value_multiplier=multiplier,
                     real_value_multiplier=real_multiplier, channel_security=tuple(security))


def encode_setup_reply(info: SetupInfo) -> bytes:
    """The device side of setup request: 0xF0 followed by the layout parse_setup_reply reads."""
    n = len(info.channel_values)
    real = info.real_value_multiplier
    if any(v % real for v in info.channel_values):
        raise MessageError(f"channel values {info.channel_values} are not multiples of {real}")
    long_values = [v // real for v in info.channel_values]
    short_values = bytes(v // info.value_multiplier if v // info.value_multiplier <= 255 else 0
                         for v in long_values)
    security = bytes(info.channel_security) if info.channel_security else bytes([2] * n)
    currencies = info.channel_currencies or tuple(info.currency for _ in range(n))
    out = bytearray([Reply.OK, info.unit_type])
    out += info.firmware.encode("ascii")[:4].rjust(4, b"0")
    out += info.currency.encode("ascii")
    out += info.value_multiplier.to_bytes(3, "big")
    out.append(n)
    out += short_values + security
    out += real.to_bytes(3, "big")
    out.append(info.protocol_version)
    if info.protocol_version >= 6:
        out += b"".join(c.encode("ascii") for c in currencies)
        out += b"".join(v.to_bytes(4, "little") for v in long_values)
    return bytes(out)


def parse_serial_number(payload: bytes) -> int:
    if len(payload) != 4:
        raise MessageError(f"SSP serial number reply must be 4 bytes, got {len(payload)}: {payload.hex(' ')}")
    return int.from_bytes(payload, "big")


def encode_inhibits(channels: set[int] | frozenset[int], count: int = 16) -> bytes:
    """Set-inhibits data: one bit per channel, 1 = accept. At least two bytes."""
    nbytes = max(2, (count + 7) // 8)
    mask = 0
    for channel in channels:
        if not 1 <= channel <= nbytes * 8:
            raise MessageError(f"SSP channel {channel} outside 1..{nbytes * 8}")
        mask |= 1 << (channel - 1)
    return bytes([Command.SET_INHIBITS]) + mask.to_bytes(nbytes, "little")


def parse_inhibits(data: bytes) -> set[int]:
    if len(data) < 2:
        raise MessageError(f"SSP set inhibits needs at least 2 data bytes, got {len(data)}")
    mask = int.from_bytes(data, "little")
    return {bit + 1 for bit in range(len(data) * 8) if mask >> bit & 1}
