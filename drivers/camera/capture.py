"""Frame sources for the camera scanner: a camera by index, a video file or
stream URL (OpenCV), a still image file, or an in-process source registered
under `sim://NAME` (the camera simulator registers here; this package never
imports simulators). A source yields BGR frames; it owns no thread.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from hal.errors import PortError

SIM_SCHEME = "sim://"
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


class FrameSource(Protocol):
    description: str

    def read(self) -> np.ndarray | None:
        """The next frame (H x W x 3 BGR uint8), or None if the source failed to deliver one."""

    def release(self) -> None:
        """Free the device or file. Safe to call twice."""

    # Optional: `code_read(text)`, called after the scanner reported a code read from this
    # source's frames (a real kiosk beeps then). The camera simulator uses it to take the
    # phone away; real sources do not have it.


# --------------------------------------------------------------------------- sim:// registry

_registry_lock = threading.Lock()
_registry: dict[str, Callable[[], FrameSource]] = {}


def register_sim_source(name: str, opener: Callable[[], FrameSource]) -> None:
    """Make `sim://NAME` openable; `opener` returns a fresh FrameSource each time."""
    if not name or "/" in name:
        raise ValueError(f"sim source name must be a non-empty word without '/', got {name!r}")
    with _registry_lock:
        if name in _registry:
            raise ValueError(f"a simulated camera named {name!r} is already registered")
        _registry[name] = opener


def unregister_sim_source(name: str) -> None:
    with _registry_lock:
        _registry.pop(name, None)


def registered_sim_sources() -> list[str]:
    with _registry_lock:
        return sorted(_registry)


# --------------------------------------------------------------------------- sources


class OpencvSource:
    """A camera (index), a video file or a network stream through cv2.VideoCapture.
    Video files loop at their end so a bench clip can be shown forever."""

    def __init__(self, target: int | str, width: int, height: int, fps: float) -> None:
        self.description = f"camera {target}" if isinstance(target, int) else str(target)
        self._is_file = isinstance(target, str) and os.path.isfile(target)
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            hint = (f" (/dev/video{target}): is it plugged in, and may this user open it (group 'video')?"
                    if isinstance(target, int) else "")
            raise PortError(f"cannot open camera source {self.description!r}: OpenCV could not open it{hint}")
        if isinstance(target, int):
            # Ask the device for the configured mode; a camera may pick the nearest it supports.
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self._capture.set(cv2.CAP_PROP_FPS, fps)
            # A deep driver buffer turns into seconds of lag when decoding is briefly slow.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok and self._is_file:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        return frame if ok else None

    def release(self) -> None:
        self._capture.release()


class ImageFileSource:
    """A still image shown forever. It is re-read when the file changes, and
    reading fails while the file is missing, like an unplugged camera."""

    def __init__(self, path: Path) -> None:
        self.description = str(path)
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._frame: np.ndarray | None = None
        if self.read() is None:
            raise PortError(f"cannot open camera source {str(path)!r}: not a readable image file")

    def read(self) -> np.ndarray | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            frame = cv2.imread(str(self._path), cv2.IMREAD_COLOR)
            if frame is None:
                return None
            self._frame, self._stamp = frame, stamp
        return self._frame

    def release(self) -> None:
        self._frame = None


def open_source(source: str, *, width: int = 640, height: int = 480, fps: float = 30) -> FrameSource:
    """Open what `source` names. Raises PortError with the reason when it cannot."""
    if source.startswith(SIM_SCHEME):
        name = source[len(SIM_SCHEME):]
        with _registry_lock:
            opener = _registry.get(name)
        if opener is None:
            raise PortError(
                f"cannot open camera source {source!r}: no simulated camera named {name!r} is running"
            )
        return opener()
    if source.isdigit():
        return OpencvSource(int(source), width, height, fps)
    if "://" in source:
        return OpencvSource(source, width, height, fps)
    path = Path(source)
    if not path.exists():
        raise PortError(f"cannot open camera source {source!r}: no such device or file")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return ImageFileSource(path)
    # /dev/video0 and video files alike go to OpenCV.
    return OpencvSource(source, width, height, fps)
