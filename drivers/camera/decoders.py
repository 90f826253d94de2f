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

# Chosen from bench/decoders.py on its corpus of hard frames: zxing-cpp alone decodes
# the most and is the fastest, so it goes first (the capture loop runs it on every
# frame). zxing again on enhanced images (zxing_enhanced) recovers about a fifth more
# frames; pyzbar and OpenCV's detectors recovered at most one more frame after it, at
# several times its cost, so they stay available by configuration only.
DEFAULT_ORDER = ("zxing", "zxing_enhanced")


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
        # read_barcode stops at the first valid code; read_barcodes goes on looking for more
        # (inverted and downscaled passes too) and took twice as long on frames with a code.
        barcode = self._zxing.read_barcode(gray, formats=self._formats)
        if barcode is not None and barcode.valid and barcode.text:
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


class ZxingEnhancedDecoder:
    """zxing-cpp again, on the frame enhanced for what defeats a first look.

    Two passes, in the order that recovered most in bench/decoders.py: (1) light
    denoise, local contrast (CLAHE) and 2x upscale, for low contrast, dim light,
    noise and glare; (2) 2x upscale then unsharp mask, for blur and for small or
    tilted codes whose modules are only a pixel or two wide. It is meant as the
    chain's second decoder: it costs several times a plain zxing pass, so the
    capture loop runs it only on frames the first pass found nothing in, and only
    on time it has to spare. A wrong text is as unlikely as with zxing itself:
    every pass is a full zxing decode with its Reed-Solomon check.
    """

    name = "zxing_enhanced"
    # Upscale only up to this long side: a 1280x720 frame needs no help being large.
    max_side = 1600
    min_side = 21        # a QR code has at least 21 modules a side

    def __init__(self) -> None:
        self._zxing = ZxingDecoder()

    def decode(self, gray: np.ndarray) -> str | None:
        if min(gray.shape[:2]) < self.min_side:
            return None
        for enhance in (self._contrast_upscaled, self._sharpened_upscaled):
            text = self._zxing.decode(enhance(gray))
            if text:
                return text
        return None

    def _upscale(self, gray: np.ndarray) -> np.ndarray:
        factor = min(2.0, self.max_side / max(gray.shape[:2]))
        if factor <= 1.05:
            return gray
        return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)

    def _contrast_upscaled(self, gray: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(gray, (0, 0), 1.2)
        # A CLAHE object per call: OpenCV's is not documented as safe to share between threads.
        local = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(smooth)
        return self._upscale(local)

    def _sharpened_upscaled(self, gray: np.ndarray) -> np.ndarray:
        large = self._upscale(gray)
        soft = cv2.GaussianBlur(large, (0, 0), 2.0)
        return cv2.addWeighted(large, 2.0, soft, -1.0, 0)


DECODERS: dict[str, Callable[[], Decoder]] = {
    "zxing": ZxingDecoder,
    "zxing_enhanced": ZxingEnhancedDecoder,
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
