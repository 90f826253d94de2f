"""A simulated camera: frames that look like a phone held up to the kiosk,
rendered from a payload (segno draws the QR, OpenCV places and distorts it),
or played from image and video files. It registers itself as `sim://NAME`
so the real CameraScanner reads it like any other camera source.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno

from drivers.camera.capture import register_sim_source, unregister_sim_source

__all__ = ["CameraSimulator", "CorpusFrame", "Scene", "DISTORTIONS", "load_corpus_recipe", "render_corpus_frame",
           "render_empty", "render_frame", "scene_for"]


@dataclass(frozen=True)
class Scene:
    """How one QR code appears in the frame. Sizes are fractions of the frame height."""

    code_fraction: float = 0.6       # side of the code (with quiet zone) / frame height
    center: tuple[float, float] = (0.5, 0.5)  # as fractions of width, height
    rotation_deg: float = 0.0
    perspective: float = 0.0         # corner displacement as a fraction of the code side
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    glare: float = 0.0               # peak brightness added by a specular highlight, 0..255
    brightness: float = 1.0          # scene light: 1.0 normal, lower is a dim kiosk at night
    contrast: float = 1.0            # 1.0: black modules on white paper; lower: a dim phone screen
    error: str = "m"                 # QR error-correction level the "wallet" used
    seed: int = 0


# Named distortions for tests, the simulator's control surface and the demo.
DISTORTIONS: dict[str, Scene] = {
    "none": Scene(),
    "blur": Scene(blur_sigma=2.0),
    "noise": Scene(noise_sigma=22.0),
    "rotation": Scene(rotation_deg=33.0),
    "perspective": Scene(perspective=0.14, rotation_deg=8.0),
    "glare": Scene(glare=150.0),
    "dark": Scene(brightness=0.35, contrast=0.6, noise_sigma=6.0),
    "small": Scene(code_fraction=0.28, center=(0.35, 0.4)),
    "all": Scene(blur_sigma=1.2, noise_sigma=12.0, rotation_deg=-20.0, perspective=0.08, glare=90.0),
}


def scene_for(distortion: str, seed: int = 0) -> Scene:
    try:
        return replace(DISTORTIONS[distortion], seed=seed)
    except KeyError:
        raise ValueError(
            f"unknown distortion {distortion!r}; expected one of {', '.join(DISTORTIONS)}"
        ) from None


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    # A soft vertical light gradient with faint texture: a kiosk bezel under a ceiling light.
    column = np.linspace(150, 110, height, dtype=np.float32)[:, None]
    texture = rng.normal(0.0, 3.0, (height, width)).astype(np.float32)
    return np.broadcast_to(column, (height, width)) + texture


def _code_image(payload: str, error: str, contrast: float) -> np.ndarray:
    try:
        qr = segno.make(payload, error=error, micro=False, boost_error=False)
    except segno.DataOverflowError:
        raise ValueError(f"payload of {len(payload)} characters does not fit in a QR code") from None
    modules = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    modules = np.pad(modules, 4, constant_values=0)  # the quiet zone wallets draw
    light = 245.0
    dark = light - (light - 20.0) * contrast
    return np.where(modules == 1, dark, light).astype(np.float32)


def render_frame(payload: str, scene: Scene = Scene(), *, width: int = 640, height: int = 480) -> np.ndarray:
    """One BGR uint8 frame of `payload` as a camera would see it in `scene`."""
    rng = np.random.default_rng(scene.seed)
    frame = _background(width, height, rng)
    code = _code_image(payload, scene.error, scene.contrast)
    modules = code.shape[0]
    side = max(modules, int(round(scene.code_fraction * height)))
    # Draw at a whole number of pixels per module first, then let the warp resample:
    # this keeps module edges as a lens would blur them, not as a nearest-neighbour grid.
    scale = max(1, int(np.ceil(side / modules)))
    code = cv2.resize(code, (modules * scale, modules * scale), interpolation=cv2.INTER_NEAREST)
    src_side = code.shape[0]

    cx, cy = scene.center[0] * width, scene.center[1] * height
    half = side / 2.0
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=np.float64)
    if scene.perspective:
        # Tilt: one edge shrinks, the opposite grows, plus a little random jitter.
        shift = scene.perspective * side
        corners += np.array([[shift, shift * 0.3], [-shift, -shift * 0.2], [shift * 0.4, 0], [-shift * 0.2, 0]])
        corners += rng.uniform(-0.02, 0.02, corners.shape) * side
    theta = np.deg2rad(scene.rotation_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = corners @ rotation.T + np.array([cx, cy])
    src = np.array([[0, 0], [src_side, 0], [src_side, src_side], [0, src_side]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    # Composite with the warped coverage as alpha; `warped` is already premultiplied
    # because its border value is 0, so the code's edge blends into the bezel.
    warped = cv2.warpPerspective(code, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    mask = cv2.warpPerspective(np.ones_like(code), matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    frame = frame * (1.0 - mask) + warped

    frame *= scene.brightness
    if scene.glare:
        # A specular highlight from a ceiling light on the phone's glass, off the code's centre.
        gx, gy = cx + side * 0.18, cy - side * 0.15
        sigma = side * 0.16
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        frame += scene.glare * np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma**2)))
    if scene.blur_sigma:
        frame = cv2.GaussianBlur(frame, (0, 0), scene.blur_sigma)
    if scene.noise_sigma:
        frame += rng.normal(0.0, scene.noise_sigma, frame.shape).astype(np.float32)
    gray = np.clip(frame, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def render_empty(*, width: int = 640, height: int = 480, seed: int = 0, noise_sigma: float = 4.0) -> np.ndarray:
    """A frame with no code in it: what the camera sees while nobody is at the kiosk."""
    rng = np.random.default_rng(seed)
    frame = _background(width, height, rng) + rng.normal(0.0, noise_sigma, (height, width))
    return cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@dataclass(frozen=True)
class CorpusFrame:
    """One frame of a decoder test corpus: the image, the text it holds (None: no code), its kind."""

    image: np.ndarray
    expected: str | None
    label: str


def load_corpus_recipe(path: Path) -> list[dict[str, Any]]:
    """The frames a corpus recipe file describes (bench/decoders.py --write-recipe writes one),
    each as {kind, payload text or None, size, scene}. Raises ValueError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        payloads, frames = data["payloads"], data["frames"]
        return [{**e, "payload": None if e["payload"] is None else payloads[e["payload"]]} for e in frames]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path}: not a corpus recipe ({type(exc).__name__}: {exc}); expected "
                         '{"payloads": [...], "frames": [{kind, payload index, size, scene}, ...]}; '
                         "write one with bench/decoders.py --write-recipe") from None


def render_corpus_frame(entry: dict[str, Any]) -> CorpusFrame:
    """Render one recipe entry; the same entry gives the same pixels (the scene carries its seed)."""
    width, height = entry["size"]
    if entry["payload"] is None:
        return CorpusFrame(render_empty(width=width, height=height, seed=entry["scene"]["seed"]), None, entry["kind"])
    scene = dict(entry["scene"])
    if "center" in scene:
        scene["center"] = tuple(scene["center"])
    return CorpusFrame(render_frame(entry["payload"], Scene(**scene), width=width, height=height), entry["payload"],
                       entry["kind"])


class _SimFrameSource:
    """What `sim://NAME` opens: reads the simulator's current frame."""

    def __init__(self, simulator: "CameraSimulator") -> None:
        self._simulator = simulator
        self._released = False
        self.description = simulator.source_url

    def read(self) -> np.ndarray | None:
        if self._released:
            return None
        return self._simulator._next_frame()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._simulator._note_release()

    def code_read(self, text: str) -> None:
        self._simulator._code_read(text)


class CameraSimulator:
    """A camera for simulate mode and tests, reachable as `sim://NAME`.

    Control surface (thread-safe): present(payload, distortion), present_file(path),
    take_away(), clear(), set_connected(flag), state(). Call close() to unregister.

    A presented code is taken away once a scanner reports it read, as a customer
    lowers the phone after the beep: later frames show the empty kiosk front, so
    the same code is not read again on the next screen. `hold_after_read=True`
    keeps it in view (benchmarks, tests of the scanner's own de-duplication).
    """

    def __init__(self, name: str = "camera", width: int = 640, height: int = 480, *,
                 hold_after_read: bool = False) -> None:
        self.name = name
        self.width, self.height = width, height
        self._lock = threading.Lock()
        self._empty = render_empty(width=width, height=height)
        self._empty.flags.writeable = False
        self._frame: np.ndarray = self._empty
        self._video: cv2.VideoCapture | None = None
        self._mode = "empty"
        self._payload: str | None = None
        self._distortion: str | None = None
        self._file: str | None = None
        self._connected = True
        self._frames_served = 0
        self._open_readers = 0
        self._closed = False
        self.hold_after_read = hold_after_read
        self._taken_away = 0
        register_sim_source(name, self._open)

    @property
    def source_url(self) -> str:
        return f"sim://{self.name}"

    # ------------------------------------------------------------------ control surface

    def present(self, payload: str, distortion: str = "none") -> None:
        """Hold a phone showing `payload` as a QR code in front of the camera."""
        frame = render_frame(payload, scene_for(distortion), width=self.width, height=self.height)
        frame.flags.writeable = False
        with self._lock:
            self._release_video()
            self._frame, self._mode = frame, "payload"
            self._payload, self._distortion, self._file = payload, distortion, None

    def present_file(self, path: str | Path) -> None:
        """Show an image file (held still) or play a video file (looping)."""
        path = Path(path)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
            image.flags.writeable = False
            with self._lock:
                self._release_video()
                self._frame, self._mode = image, "image"
                self._payload, self._distortion, self._file = None, None, str(path)
            return
        video = cv2.VideoCapture(str(path))
        if not video.isOpened():
            video.release()
            raise ValueError(f"{path}: neither an image nor a video file OpenCV can read")
        with self._lock:
            self._release_video()
            self._video, self._mode = video, "video"
            self._payload, self._distortion, self._file = None, None, str(path)

    def clear(self) -> None:
        """Take the phone away: the camera sees the empty kiosk front."""
        with self._lock:
            self._clear_locked()

    def take_away(self) -> None:
        """The customer lowers the phone: the code leaves the camera's view (same as clear())."""
        with self._lock:
            if self._mode != "empty":
                self._taken_away += 1
            self._clear_locked()

    def set_connected(self, connected: bool) -> None:
        """Unplug (False) or replug (True) the camera: while unplugged every read fails."""
        with self._lock:
            self._connected = bool(connected)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "source_url": self.source_url,
                "mode": self._mode,
                "payload": self._payload,
                "distortion": self._distortion,
                "file": self._file,
                "connected": self._connected,
                "frames_served": self._frames_served,
                "readers": self._open_readers,
                "taken_away": self._taken_away,
                "hold_after_read": self.hold_after_read,
                "size": [self.width, self.height],
            }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release_video()
        unregister_sim_source(self.name)

    # The simulated world stops every simulator through stop().
    stop = close

    def __enter__(self) -> "CameraSimulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frame source side

    def _open(self) -> _SimFrameSource:
        with self._lock:
            self._open_readers += 1
        return _SimFrameSource(self)

    def _note_release(self) -> None:
        with self._lock:
            self._open_readers = max(0, self._open_readers - 1)

    def _next_frame(self) -> np.ndarray | None:
        with self._lock:
            if not self._connected or self._closed:
                return None
            if self._video is not None:
                ok, frame = self._video.read()
                if not ok:
                    self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = self._video.read()
                if not ok:
                    return None
                if frame.shape[1] != self.width or frame.shape[0] != self.height:
                    frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            else:
                frame = self._frame
            self._frames_served += 1
            return frame

    def _code_read(self, text: str) -> None:
        with self._lock:
            # Only the phone showing this very code is lowered; a file or video stays in place.
            if not self.hold_after_read and self._mode == "payload" and self._payload == text:
                self._taken_away += 1
                self._clear_locked()

    def _clear_locked(self) -> None:
        self._release_video()
        self._frame, self._mode = self._empty, "empty"
        self._payload = self._distortion = self._file = None

    def _release_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
