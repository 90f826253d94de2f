"""Line framing for barcode scanners in COM (serial) mode: each code arrives as
text ended by CR, LF or CR LF. Pure codec: bytes in, decoded lines or typed
errors out, with resynchronisation on the next terminator. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hal.errors import ProtocolError

TERMINATORS = ("any", "cr", "lf", "crlf")

# A QR code carries at most ~4,300 characters; the payload parser caps at 4,096.
DEFAULT_MAX_LENGTH = 4400


class ScannerFrameError(ProtocolError):
    """A line from the scanner that is not a code: too long, not text, or control bytes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Terminator:
    name: str

    def split(self, buffer: bytearray) -> tuple[bytes, int] | None:
        """(line, bytes consumed) for the first complete line in `buffer`, or None."""
        if self.name == "crlf":
            index = buffer.find(b"\r\n")
            return None if index < 0 else (bytes(buffer[:index]), index + 2)
        # A scanner set to CR LF while the kiosk expects CR or LF alone is common;
        # the stray half of the pair is dropped instead of failing every code.
        if self.name == "cr":
            index = buffer.find(b"\r")
            return None if index < 0 else (bytes(buffer[:index]).lstrip(b"\n"), index + 1)
        if self.name == "lf":
            index = buffer.find(b"\n")
            return None if index < 0 else (bytes(buffer[:index]).rstrip(b"\r"), index + 1)
        # "any": CR, LF or CR LF. A CR LF pair leaves an empty line behind, which is dropped.
        cr, lf = buffer.find(b"\r"), buffer.find(b"\n")
        candidates = [i for i in (cr, lf) if i >= 0]
        if not candidates:
            return None
        index = min(candidates)
        return bytes(buffer[:index]), index + 1


class LineAssembler:
    """Feed it bytes as they arrive; it returns the complete lines (as text)
    and ScannerFrameError values for lines it had to throw away."""

    def __init__(self, terminator: str = "any", max_length: int = DEFAULT_MAX_LENGTH,
                 encoding: str = "utf-8") -> None:
        if terminator not in TERMINATORS:
            raise ValueError(f"terminator must be one of {', '.join(TERMINATORS)}, got {terminator!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        "x".encode(encoding)  # an unknown codec name fails here, at configuration time
        self.terminator = terminator
        self.max_length = max_length
        self.encoding = encoding
        self._split = _Terminator(terminator).split
        self._buffer = bytearray()
        self._discarding = False    # inside an over-long line: drop bytes until its terminator

    def feed(self, data: bytes) -> list[str | ScannerFrameError]:
        results: list[str | ScannerFrameError] = []
        self._buffer += data
        while True:
            found = self._split(self._buffer)
            if found is None:
                break
            raw, consumed = found
            del self._buffer[:consumed]
            if self._discarding:
                self._discarding = False
                continue
            item = self._decode(raw)
            if item is not None:
                results.append(item)
        if self._discarding:
            self._buffer.clear()
        elif len(self._buffer) > self.max_length:
            # Report once, then skip to the next terminator: that is where the next code starts.
            results.append(ScannerFrameError(
                "too_long",
                f"scanner line longer than {self.max_length} bytes without a terminator "
                f"({self.terminator}); check the scanner's suffix setting",
            ))
            self._buffer.clear()
            self._discarding = True
        return results

    def reset(self) -> None:
        """Forget a partial line (after the port was reopened)."""
        self._buffer.clear()
        self._discarding = False

    def _decode(self, raw: bytes) -> str | ScannerFrameError | None:
        if not raw:
            return None
        if len(raw) > self.max_length:
            return ScannerFrameError(
                "too_long", f"scanner line of {len(raw)} bytes is longer than the limit of {self.max_length}"
            )
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError:
            return ScannerFrameError(
                "not_text",
                f"scanner line is not {self.encoding} text (starts {raw[:16].hex(' ')}); "
                "check the scanner's baud rate and character set",
            )
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text):
            return ScannerFrameError(
                "control_bytes",
                f"scanner line contains control bytes (starts {raw[:16].hex(' ')}); "
                "check the scanner's prefix/suffix settings",
            )
        return text


_TERMINATOR_BYTES = {"any": b"\r\n", "cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


def encode_line(text: str, terminator: str = "crlf", encoding: str = "utf-8") -> bytes:
    """The bytes a scanner sends for one code (the simulator's side of the framing)."""
    if terminator not in _TERMINATOR_BYTES:
        raise ValueError(f"terminator must be one of {', '.join(TERMINATORS)}, got {terminator!r}")
    return text.encode(encoding) + _TERMINATOR_BYTES[terminator]
