"""The camera QR scanner: captures frames in its own thread, crops the region
of interest, runs the decoder chain, and reports each code once per
presentation as a CodeScanned event. A source that fails is reported offline
and reopened with backoff, while scanning and, by a watcher thread, while the
kiosk is out of service and not scanning; nothing here raises into the kiosk.
While scanning it keeps the last frame, so a technician can see a small JPEG of
what the camera sees (preview_jpeg) to aim, focus or spot a dirty window.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

import cv2
import numpy as np

from hal.device import DeviceInfo
from hal.errors import ConfigurationError
from hal.events import CodeScanned, DeviceStatusChanged, Event, EventSink, emit_safely
from hal.scanner import CodeScanner
from hal.status import DeviceState
from drivers.camera.capture import FrameSource, open_source
from drivers.camera.decoders import DEFAULT_ORDER, DecoderChain, FallbackBudget, build_chain

log = logging.getLogger(__name__)

Roi = tuple[float, float, float, float]

# The preview is for a technician's eye on the service page, refreshed a few times a
# second: small enough to encode in a few milliseconds on a kiosk's CPU.
PREVIEW_MAX_WIDTH = 480
PREVIEW_JPEG_QUALITY = 70
# The region of interest drawn on the preview, so the technician sees where codes are read.
_ROI_COLOUR = (0, 200, 0)


def validate_roi(roi: Roi | None) -> Roi | None:
    """(x, y, width, height) as fractions of the frame; None means the whole frame."""
    if roi is None:
        return None
    if len(roi) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in roi):
        raise ConfigurationError(f"camera roi must be four numbers (x, y, width, height), got {roi!r}")
    x, y, w, h = (float(v) for v in roi)
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1 and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9):
        raise ConfigurationError(
            f"camera roi {roi!r} must lie inside the frame: fractions with 0 <= x, y, x+width <= 1, y+height <= 1"
        )
    return (x, y, w, h)


def crop(frame: np.ndarray, roi: Roi | None) -> np.ndarray:
    if roi is None:
        return frame
    height, width = frame.shape[:2]
    x, y, w, h = roi
    # Keep at least one pixel so a tiny frame yields a tiny region, never an empty array.
    x0, y0 = min(int(round(x * width)), width - 1), min(int(round(y * height)), height - 1)
    x1, y1 = max(x0 + 1, int(round((x + w) * width))), max(y0 + 1, int(round((y + h) * height)))
    return frame[y0:y1, x0:x1]


class Deduplicator:
    """Says whether a read is a new presentation of a code or the same one
    still in view: a code counts again only after it has been out of sight
    (not read) for `window_s` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last_seen: dict[str, float] = {}

    def is_new(self, text: str, now: float) -> bool:
        last = self._last_seen.get(text)
        self._last_seen[text] = now
        if len(self._last_seen) > 64:
            horizon = now - self.window_s
            self._last_seen = {t: seen for t, seen in self._last_seen.items() if seen >= horizon}
        return last is None or now - last >= self.window_s

    def forget(self) -> None:
        self._last_seen.clear()


class CameraScanner(CodeScanner):
    """A camera (or video/image/simulated source) read as a QR scanner.

    `open` checks the source once and frees it; `start_scanning` starts the
    capture thread, `stop_scanning` joins it and releases the camera. Whenever
    the camera is offline and no capture thread runs (it was missing at open,
    or lost during a scan that the kiosk then stopped), a watcher thread probes
    it with the same backoff and reports ONLINE once it gives a frame again, so
    a kiosk out of service for it comes back by itself.
    """

    def __init__(
        self,
        source: str,
        *,
        name: str = "scanner",
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        decoders: Sequence[str] = DEFAULT_ORDER,
        roi: Roi | None = None,
        dedupe_seconds: float = 3.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        failed_reads_offline: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not source:
            raise ConfigurationError("camera source is empty: give a device index, a file, a URL or sim://NAME")
        if width <= 0 or height <= 0 or fps <= 0:
            raise ConfigurationError(
                f"camera {name}: width, height and fps must be positive, got {width}x{height} @ {fps}"
            )
        if dedupe_seconds < 0:
            raise ConfigurationError(f"camera {name}: dedupe_seconds must be >= 0, got {dedupe_seconds}")
        self.name = name
        self.source = source
        self.width, self.height, self.fps = width, height, fps
        self.roi = validate_roi(roi)
        self.dedupe_seconds = dedupe_seconds
        self.chain: DecoderChain = build_chain(decoders)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._failed_reads_offline = max(1, failed_reads_offline)
        self._clock = clock
        self._sink: EventSink | None = None
        self._state = DeviceState.OFFLINE
        self._detail = "not opened"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._closed = False
        self._dedupe = Deduplicator(dedupe_seconds)
        # The capture thread replaces the frame (one reference, so no lock); preview_jpeg
        # encodes it in the caller's thread and keeps the JPEG while the frame is the same.
        self._frame: np.ndarray | None = None
        self._preview_lock = threading.Lock()
        self._preview: tuple[np.ndarray, bytes] | None = None
        self._stats = {"frames": 0, "fallback_frames": 0, "codes": 0, "suppressed": 0, "source_drops": 0,
                       "frame_errors": 0, "decode_us": 0}

    # ------------------------------------------------------------------ hal.Device

    def open(self, sink: EventSink) -> None:
        """Remember the sink and check the source once. A source that is not
        there now is reported offline (not raised): scanning keeps retrying it."""
        self._sink = sink
        self._closed = False
        self._set_state(DeviceState.STARTING, f"checking {self.source}")
        problem = self._probe()
        if problem is not None:
            self._set_state(DeviceState.OFFLINE, problem)
            self._start_watching()

    def close(self) -> None:
        self._closed = True
        self._stop_watching()
        self.stop_scanning()

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def detail(self) -> str:
        return self._detail

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            model="camera",
            extra={"source": self.source, "decoders": ",".join(self.chain.names),
                   "mode": f"{self.width}x{self.height}@{self.fps:g}"},
        )

    # ------------------------------------------------------------------ hal.CodeScanner

    def start_scanning(self) -> None:
        # The capture thread does its own reopening; two threads must not hold the camera.
        self._stop_watching()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            # A new scanning session shows the customer's code even if it was read in the last one.
            self._dedupe.forget()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name=f"camera-{self.name}", daemon=True
            )
            self._thread.start()

    def stop_scanning(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
            if thread.is_alive():
                log.error("camera %s: capture thread did not stop within 10 s (source %s blocked)",
                          self.name, self.source)
        self._forget_frame()
        if self._state is not DeviceState.ONLINE and not self._closed:
            self._start_watching()

    @property
    def scanning(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stats(self) -> dict[str, int]:
        """Counters for the service view and the benchmark."""
        return dict(self._stats)

    def preview_jpeg(self, max_width: int = PREVIEW_MAX_WIDTH) -> bytes | None:
        """The last frame captured in this scanning session as a JPEG at most `max_width`
        pixels wide, the region of interest outlined; None when not scanning, before the
        first frame, or while the camera gives none (a stale picture would hide a dead
        camera). Never raises: an odd frame just has no preview."""
        frame = self._frame
        if frame is None or not self.scanning:
            return None
        with self._preview_lock:
            if self._preview is not None and self._preview[0] is frame:
                return self._preview[1]
            try:
                jpeg = _encode_preview(frame, self.roi, max_width)
            except (cv2.error, ValueError, TypeError) as exc:
                log.debug("camera %s: no preview of a %s frame: %s", self.name, getattr(frame, "shape", "?"), exc)
                return None
            self._preview = (frame, jpeg)
            return jpeg

    def _forget_frame(self) -> None:
        self._frame = None
        with self._preview_lock:
            self._preview = None

    # ------------------------------------------------------------------ watcher thread

    def _probe(self) -> str | None:
        """Open the source, read one frame, free it. None if it worked, else what went wrong."""
        try:
            probe = open_source(self.source, width=self.width, height=self.height, fps=self.fps)
        except Exception as exc:  # noqa: BLE001 - OpenCV backends raise odd things; it is just "not there"
            return str(exc)
        try:
            frame = self._read(probe, log_errors=False)
        finally:
            probe.release()
        if frame is None:
            return f"camera source {self.source!r} opened but gave no frame"
        self._set_state(DeviceState.ONLINE, f"{self.source} ({frame.shape[1]}x{frame.shape[0]})")
        return None

    def _start_watching(self) -> None:
        with self._lock:
            if self._closed or (self._watcher is not None and self._watcher.is_alive()):
                return
            if self._thread is not None and self._thread.is_alive():
                return
            self._watch_stop = threading.Event()
            self._watcher = threading.Thread(target=self._watch, args=(self._watch_stop,),
                                             name=f"camera-{self.name}-watch", daemon=True)
            self._watcher.start()

    def _stop_watching(self) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
            self._watch_stop.set()
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=10)

    def _watch(self, stop: threading.Event) -> None:
        backoff = self._retry_initial_s
        while not stop.wait(backoff):
            problem = self._probe()
            if problem is None:
                return
            backoff = min(backoff * 2, self._retry_max_s)
            self._set_state(DeviceState.OFFLINE, f"{problem}; retrying in {backoff:g} s")

    # ------------------------------------------------------------------ capture thread

    def _run(self, stop: threading.Event) -> None:
        interval = 1.0 / self.fps
        budget = FallbackBudget(interval)
        source: FrameSource | None = None
        backoff = self._retry_initial_s
        failures = 0
        next_due = self._clock()
        try:
            while not stop.is_set():
                if source is None:
                    try:
                        source = open_source(self.source, width=self.width, height=self.height, fps=self.fps)
                    except Exception as exc:  # noqa: BLE001 - OpenCV backends raise odd things; keep retrying
                        self._set_state(DeviceState.OFFLINE, f"{exc}; retrying in {backoff:g} s")
                        stop.wait(backoff)
                        backoff = min(backoff * 2, self._retry_max_s)
                        continue
                    failures = 0
                    next_due = self._clock()
                frame = self._read(source, log_errors=failures == 0)
                if frame is None:
                    failures += 1
                    if failures >= self._failed_reads_offline:
                        self._forget_frame()
                        source.release()
                        source = None
                        self._stats["source_drops"] += 1
                        self._set_state(
                            DeviceState.OFFLINE,
                            f"camera source {self.source!r} stopped delivering frames; retrying in {backoff:g} s",
                        )
                        stop.wait(backoff)
                        backoff = min(backoff * 2, self._retry_max_s)
                    else:
                        stop.wait(interval)
                    continue
                failures = 0
                backoff = self._retry_initial_s
                self._frame = frame
                if self._state is not DeviceState.ONLINE:
                    self._set_state(DeviceState.ONLINE, f"reading {self.source}")
                try:
                    self._process(frame, budget, source)
                except Exception:  # noqa: BLE001 - one bad frame must not end scanning
                    self._stats["frame_errors"] += 1
                    if self._stats["frame_errors"] in (1, 10, 100, 1000):
                        log.exception("camera %s: a frame from %s could not be processed (%d so far)",
                                      self.name, self.source, self._stats["frame_errors"])
                next_due += interval
                now = self._clock()
                if next_due > now:
                    stop.wait(next_due - now)
                elif now - next_due > 1.0:
                    # Far behind (machine stalled): start a fresh schedule rather than sprint to catch up.
                    next_due = now
        except Exception:  # noqa: BLE001 - the thread must end cleanly whatever happened
            log.exception("camera %s: capture thread failed", self.name)
            self._set_state(DeviceState.HARDWARE_ERROR, "capture thread failed; see the log")
        finally:
            if source is not None:
                source.release()

    def _read(self, source: FrameSource, *, log_errors: bool) -> np.ndarray | None:
        try:
            frame = source.read()
        except Exception:  # noqa: BLE001 - a backend error is a failed read, retried like any other
            # Only the first failure of a run gets a traceback: a dead camera fails 30 times a second.
            if log_errors:
                log.exception("camera %s: reading a frame from %s failed", self.name, self.source)
            return None
        if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
            return None
        return frame

    def _process(self, frame: np.ndarray, budget: FallbackBudget, source: FrameSource | None = None) -> None:
        region = crop(frame, self.roi)
        started = time.perf_counter()
        result = self.chain.decode_primary(region)
        if result is None and len(self.chain.decoders) > 1 and budget.allow():
            self._stats["fallback_frames"] += 1
            result = self.chain.decode_fallbacks(region)
        spent = time.perf_counter() - started
        budget.spend(spent)
        self._stats["frames"] += 1
        self._stats["decode_us"] += int(spent * 1_000_000)
        if result is not None and self._on_code(result.text, result.decoder):
            # A source that shows something (the simulated phone) learns its code was read,
            # as a customer does from the beep, and may take it away.
            code_read = getattr(source, "code_read", None)
            if code_read is not None:
                code_read(result.text)

    def _on_code(self, text: str, decoder: str) -> bool:
        if not self._dedupe.is_new(text, self._clock()):
            self._stats["suppressed"] += 1
            return False
        self._stats["codes"] += 1
        self._emit(CodeScanned(device=self.name, text=text, decoder=decoder))
        return True

    # ------------------------------------------------------------------ events

    def _set_state(self, state: DeviceState, detail: str) -> None:
        if state is self._state and detail == self._detail:
            return
        changed = state is not self._state
        self._state, self._detail = state, detail
        if changed:
            log.info("camera %s: %s (%s)", self.name, state.value, detail)
            self._emit(DeviceStatusChanged(device=self.name, state=state, detail=detail))

    def _emit(self, event: Event) -> None:
        emit_safely(self._sink, event, f"camera {self.name}")


def _encode_preview(frame: np.ndarray, roi: Roi | None, max_width: int) -> bytes:
    """A downscaled copy of `frame` (never the frame itself: sources may share it) as JPEG."""
    height, width = frame.shape[:2]
    if width > max_width:
        scaled = (max_width, max(1, round(height * max_width / width)))
        small = cv2.resize(frame, scaled, interpolation=cv2.INTER_AREA)
    else:
        small = frame.copy()
    if roi is not None:
        h, w = small.shape[:2]
        x, y, rw, rh = roi
        cv2.rectangle(small, (int(x * w), int(y * h)), (int((x + rw) * w) - 1, int((y + rh) * h) - 1),
                      _ROI_COLOUR, 2)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return encoded.tobytes()
