"""The framing JCM ID-003 and CashCode ccNet have in common: CRC-16/KERMIT sent low byte
first over SYNC..DATA, a length byte that counts the whole frame, and a stream decoder
that resynchronises on garbage. Pure: no I/O, no clocks. Each protocol's frames.py names
its sync byte, where its length byte sits and what a frame holds; the tables stay there.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Generic, TypeVar

from hal.errors import ProtocolError

F = TypeVar("F")


class FrameError(ProtocolError):
    """Bytes that do not form a frame (no sync, impossible length, truncated, garbage)."""


class CrcError(FrameError):
    """A frame whose CRC does not match its contents: corrupted on the line."""


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT: poly 0x1021 reflected (0x8408), init 0, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def seal(body: bytes) -> bytes:
    """`body` (SYNC..DATA) with its CRC appended, low byte first."""
    return body + crc16_kermit(body).to_bytes(2, "little")


def check_frame(raw: bytes, *, protocol: str, sync: int, length_at: int, min_frame: int,
                frame_error: type[FrameError], crc_error: type[CrcError]) -> None:
    """Raise the protocol's FrameError/CrcError unless `raw` is exactly one sealed frame."""
    if len(raw) < min_frame:
        raise frame_error(f"{protocol} frame too short: {len(raw)} bytes ({raw.hex(' ')}), "
                          f"expected at least {min_frame}")
    if raw[0] != sync:
        raise frame_error(f"{protocol} frame must start with sync 0x{sync:02X}, got 0x{raw[0]:02X} ({raw.hex(' ')})")
    if raw[length_at] != len(raw):
        raise frame_error(f"{protocol} frame length byte says {raw[length_at]}, frame has {len(raw)} bytes "
                          f"({raw.hex(' ')})")
    expected = crc16_kermit(raw[:-2])
    got = int.from_bytes(raw[-2:], "little")
    if expected != got:
        raise crc_error(f"{protocol} frame CRC mismatch: got 0x{got:04X}, computed 0x{expected:04X} ({raw.hex(' ')})")


class SyncLengthDecoder(Generic[F]):
    """Turns a byte stream into frames. Never raises on input: bad stretches come out as
    FrameError/CrcError items in stream order, so a caller can count them and ask again,
    but never mistake them for a message. A protocol subclass sets the class attributes."""

    PROTOCOL: ClassVar[str] = ""
    A_FRAME: ClassVar[str] = ""            # "an ID-003 frame", "a ccNet frame"
    SYNC: ClassVar[int] = 0
    LENGTH_AT: ClassVar[int] = 1
    MIN_FRAME: ClassVar[int] = 0
    FRAME_ERROR: ClassVar[type[FrameError]] = FrameError
    decode: ClassVar[Callable[[bytes], object]]

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[F | ProtocolError]:
        self._buf += data
        return self._parse()

    def expire(self) -> list[F | ProtocolError]:
        """The line went quiet with a partial frame held: declare it truncated and rescan
        what follows its sync byte, since a real frame may start inside it."""
        out: list[F | ProtocolError] = []
        while self._buf:
            out.append(self.FRAME_ERROR(f"{self.PROTOCOL} frame truncated: got {len(self._buf)} bytes "
                                        f"({bytes(self._buf[:16]).hex(' ')}), the line went quiet"))
            del self._buf[0]
            out.extend(self._parse())
        return out

    def _impossible_length(self, length: int) -> str:
        return f"{self.PROTOCOL} length byte {length} is impossible (minimum {self.MIN_FRAME}); resyncing"

    def _parse(self) -> list[F | ProtocolError]:
        out: list[F | ProtocolError] = []
        buf = self._buf
        while buf:
            start = buf.find(self.SYNC)
            if start != 0:
                skipped = len(buf) if start < 0 else start
                out.append(self.FRAME_ERROR(f"discarded {skipped} bytes that are not {self.A_FRAME} "
                                            f"({bytes(buf[:min(skipped, 16)]).hex(' ')}), "
                                            f"expected sync 0x{self.SYNC:02X}"))
                del buf[:skipped]
                continue
            if len(buf) <= self.LENGTH_AT:
                break
            length = buf[self.LENGTH_AT]
            if length < self.MIN_FRAME:
                out.append(self.FRAME_ERROR(self._impossible_length(length)))
                del buf[0]
                continue
            if len(buf) < length:
                break
            try:
                frame = type(self).decode(bytes(buf[:length]))
            except CrcError as exc:
                # Drop only the sync byte: the real frame may begin inside this one.
                out.append(exc)
                del buf[0]
                continue
            out.append(frame)  # type: ignore[arg-type]
            del buf[:length]
        return out
