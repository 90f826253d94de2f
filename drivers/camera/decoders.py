"""QR decoders behind one small interface, and the chain that tries them in order.

Each decoder takes a grayscale frame (2-D uint8 numpy array) and returns the
text of a QR code or None. The chain stops at the first success. A decoder
whose library cannot load is left out with a log line naming the fix; the
chain goes on with the others. No capture, no threads: see driver.py.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

import cv2
import numpy as np

from hal.errors import ConfigurationError

log = logging.getLogger(__name__)

# Chosen from bench/decoders.py: zxing-cpp alone decodes the most frames and is
# 7-8x faster than the others, so it goes first; pyzbar and OpenCV's ArUco-based
# detector each rescue a few frames zxing misses. The ArUco detector decodes more
# than OpenCV's classic QRCodeDetector and is cheaper on empty frames, so it is
# the OpenCV member by default ("opencv" stays available by configuration).
DEFAULT_ORDER = ("zxing", "pyzbar", "opencv_aruco")


class Decoder(Protocol):
    name: str

    def decode(self, gray: np.ndarray) -> str | None:
        """The text of one QR code in `gray`, or None when there is none it can read."""


@dataclass(frozen=True)
class Decoded:
    text: str
    decoder: str
    ms: float


class DecoderUnavailable(Exception):
    """The decoder's library is missing; the message names what to install."""


def _bytes_to_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # QR byte mode defaults to ISO-8859-1; every byte maps, so this cannot fail.
        return raw.decode("latin-1")


class ZxingDecoder:
    name = "zxing"

    def __init__(self) -> None:
        try:
            import zxingcpp
        except ImportError as exc:
            raise DecoderUnavailable(
                f"zxing-cpp is not installed ({exc}); install the Python package 'zxing-cpp'"
            ) from exc
        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormat.QRCode

    def decode(self, gray: np.ndarray) -> str | None:
        for barcode in self._zxing.read_barcodes(gray, formats=self._formats):
            if barcode.valid and barcode.text:
                return barcode.text
        return None


class PyzbarDecoder:
    name = "pyzbar"

    def __init__(self) -> None:
        try:
            pyzbar = importlib.import_module("pyzbar.pyzbar")
        except (ImportError, OSError) as exc:
            raise DecoderUnavailable(
                f"pyzbar cannot load the zbar library ({exc}); install the Debian package "
                "'libzbar0' (apt-get install libzbar0)"
            ) from exc
        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, gray: np.ndarray) -> str | None:
        gray = np.ascontiguousarray(gray)
        for symbol in self._pyzbar.decode(gray, symbols=self._symbols):
            if symbol.data:
                return _bytes_to_text(symbol.data)
        return None


class OpencvDecoder:
    name = "opencv"

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetector()

    def decode(self, gray: np.ndarray) -> str | None:
        text, _points, _straight = self._detector.detectAndDecode(gray)
        return text or None


class OpencvArucoDecoder:
    """OpenCV's newer detector (ArUco-based finder search): faster than the
    classic one on empty frames; offered as an option, measured in the bench."""

    name = "opencv_aruco"

    def __init__(self) -> None:
        if not hasattr(cv2, "QRCodeDetectorAruco"):
            raise DecoderUnavailable(
                f"OpenCV {cv2.__version__} has no QRCodeDetectorAruco; it needs OpenCV 4.8 or newer"
            )
        self._detector = cv2.QRCodeDetectorAruco()

    def decode(self, gray: np.ndarray) -> str | None:
        text, _points, _straight = self._detector.detectAndDecode(gray)
        return text or None


DECODERS: dict[str, Callable[[], Decoder]] = {
    "zxing": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
    "opencv": OpencvDecoder,
    "opencv_aruco": OpencvArucoDecoder,
}


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Grayscale view of a camera frame (BGR, BGRA or already gray)."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise ValueError(f"a frame must be gray, BGR or BGRA, got an array of shape {frame.shape}")


class DecoderChain:
    """Decoders in a fixed order; `decode` stops at the first that reads a code.

    A decoder that raises is logged and skipped for that frame, never fatal:
    one library's bug must not blind the kiosk.
    """

    def __init__(self, decoders: Sequence[Decoder]) -> None:
        if not decoders:
            raise ConfigurationError(
                "camera decoder chain is empty: none of the configured decoders could load "
                "(see the log lines above for what to install)"
            )
        self.decoders = list(decoders)

    @property
    def names(self) -> list[str]:
        return [decoder.name for decoder in self.decoders]

    def decode(self, frame: np.ndarray) -> Decoded | None:
        return self.decode_with(frame, self.decoders)

    def decode_primary(self, frame: np.ndarray) -> Decoded | None:
        return self.decode_with(frame, self.decoders[:1])

    def decode_fallbacks(self, frame: np.ndarray) -> Decoded | None:
        return self.decode_with(frame, self.decoders[1:])

    def decode_with(self, frame: np.ndarray, decoders: Iterable[Decoder]) -> Decoded | None:
        if frame.size == 0:
            return None
        gray = to_gray(frame)
        for decoder in decoders:
            started = time.perf_counter()
            try:
                text = decoder.decode(gray)
            except Exception:  # noqa: BLE001 - a third-party decoder failing must not stop the scanner
                log.exception("camera decoder %s failed on a frame; trying the next one", decoder.name)
                continue
            if text:
                return Decoded(text=text, decoder=decoder.name, ms=(time.perf_counter() - started) * 1000)
        return None


def build_chain(names: Sequence[str]) -> DecoderChain:
    """The chain for the configured decoder names, in order, skipping (with a
    clear log line) decoders whose library is missing."""
    decoders: list[Decoder] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigurationError(f"camera decoders: {name!r} is listed twice")
        seen.add(name)
        factory = DECODERS.get(name)
        if factory is None:
            raise ConfigurationError(
                f"camera decoders: unknown decoder {name!r}; expected some of {', '.join(DECODERS)}"
            )
        try:
            decoders.append(factory())
        except DecoderUnavailable as exc:
            log.error("camera decoder %s is disabled: %s", name, exc)
    return DecoderChain(decoders)


class FallbackBudget:
    """Decides whether the slower decoders after the first may run on this frame.

    The first decoder runs on every frame. The others run only on time the
    loop has to spare at its frame rate: each frame earns one frame interval
    and pays what its decoding cost, and fallbacks run while the balance is
    positive. So on a slow machine they run on every second or third frame
    instead of making the loop fall behind the camera; a held code is still
    seen by them within a few frames.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("frame interval must be positive")
        self.interval_s = interval_s
        self.balance_s = interval_s

    def allow(self) -> bool:
        return self.balance_s > 0

    def spend(self, cost_s: float) -> None:
        # Cap the savings at one frame so a long idle spell does not buy a burst of slow frames.
        self.balance_s = min(self.balance_s + self.interval_s - cost_s, self.interval_s)
        # Cap the debt too: one pathological frame (a swapped-out page) should not mute fallbacks for seconds.
        self.balance_s = max(self.balance_s, -10 * self.interval_s)
