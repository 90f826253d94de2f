"""The camera scanner's preview for the service menu's scan test: while scanning it
gives a small JPEG of the frame the camera sees now (the simulated camera's, here),
and nothing when it is not scanning, when the camera gives no frames, or when a frame
cannot be encoded."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from drivers.camera.capture import register_sim_source, unregister_sim_source
from drivers.camera.decoders import build_chain
from drivers.camera.driver import PREVIEW_MAX_WIDTH, CameraScanner
from drivers.serial_scanner.driver import SerialScanner
from hal.scanner import CodeScanner

ADDRESS_A = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
ADDRESS_B = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
_names = itertools.count()


@pytest.fixture
def scanners():
    made: list[CameraScanner] = []
    yield made
    for scanner in made:
        scanner.close()


def make(scanners, source: str, **options) -> CameraScanner:
    scanner = CameraScanner(source, name="scanner", retry_initial_s=0.02, retry_max_s=0.1, failed_reads_offline=2,
                            **options)
    scanners.append(scanner)
    return scanner


def picture(jpeg: bytes | None) -> np.ndarray:
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8", "not a JPEG"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the JPEG does not decode"
    return image


def code_in(jpeg: bytes | None) -> str | None:
    """The QR code a person (here: the decoder chain) reads in the preview, if any."""
    if jpeg is None:
        return None
    found = build_chain(("opencv",)).decode_primary(picture(jpeg))
    return found.text if found is not None else None


def test_a_scanning_camera_previews_the_frame_it_sees_now_as_a_small_jpeg(camera_sim, recorder, scanners,
                                                                          wait_until):
    scanner = make(scanners, camera_sim.source_url)
    scanner.open(recorder)
    scanner.start_scanning()
    camera_sim.present(ADDRESS_A)
    assert wait_until(lambda: code_in(scanner.preview_jpeg()) == ADDRESS_A)

    image = picture(scanner.preview_jpeg())
    # 640x480 from the simulator, downscaled to the preview's width with its aspect kept
    assert image.shape == (360, PREVIEW_MAX_WIDTH, 3)
    assert image.std() > 40, "the preview is blank: a QR code in view has black and white modules"

    camera_sim.present(ADDRESS_B)                      # the technician moves: the preview follows
    assert wait_until(lambda: code_in(scanner.preview_jpeg()) == ADDRESS_B)
    camera_sim.clear()
    assert wait_until(lambda: code_in(scanner.preview_jpeg()) is None)
    assert picture(scanner.preview_jpeg()).std() > 1, "the empty kiosk front is still a picture"


def test_a_scanner_that_is_not_scanning_gives_no_preview(camera_sim, recorder, scanners, wait_until):
    scanner = make(scanners, camera_sim.source_url)
    camera_sim.present(ADDRESS_A)
    scanner.open(recorder)                             # checked the camera once, but not scanning
    assert scanner.preview_jpeg() is None
    scanner.start_scanning()
    assert wait_until(lambda: scanner.preview_jpeg() is not None)
    scanner.stop_scanning()
    assert scanner.preview_jpeg() is None              # no last frame of a finished session is kept
    scanner.start_scanning()
    assert wait_until(lambda: scanner.preview_jpeg() is not None)


def test_a_camera_that_stops_giving_frames_shows_no_stale_picture(camera_sim, recorder, scanners, wait_until):
    scanner = make(scanners, camera_sim.source_url)
    scanner.open(recorder)
    scanner.start_scanning()
    assert wait_until(lambda: scanner.preview_jpeg() is not None)
    camera_sim.set_connected(False)                    # unplugged: an old picture would hide it
    assert wait_until(lambda: scanner.preview_jpeg() is None)
    camera_sim.set_connected(True)
    assert wait_until(lambda: scanner.preview_jpeg() is not None)


def test_the_preview_outlines_the_region_of_interest_the_decoders_read(camera_sim, recorder, scanners, wait_until):
    scanner = make(scanners, camera_sim.source_url, roi=(0.25, 0.25, 0.5, 0.5))
    scanner.open(recorder)
    scanner.start_scanning()
    assert wait_until(lambda: scanner.preview_jpeg() is not None)
    image = picture(scanner.preview_jpeg()).astype(int)
    blue, green, red = image[:, :, 0], image[:, :, 1], image[:, :, 2]
    greenish = (green - np.maximum(blue, red)) > 80    # the simulated camera sees only greys
    rows, cols = np.nonzero(greenish)
    assert rows.size > 0, "no outline drawn"
    # the outline sits on the region's border: a quarter of the way in from each side
    assert abs(cols.min() - 120) <= 3 and abs(cols.max() - 359) <= 3
    assert abs(rows.min() - 90) <= 3 and abs(rows.max() - 269) <= 3


class _OddSource:
    """A camera in a raw two-channel mode (YUYV as it comes off the wire): JPEG cannot hold it."""

    description = "odd"

    def read(self):
        return np.full((48, 64, 2), 128, np.uint8)

    def release(self) -> None:
        pass


def test_a_frame_that_cannot_be_encoded_gives_no_preview_and_scanning_goes_on(recorder, scanners, wait_until):
    name = f"odd-preview-{next(_names)}"
    register_sim_source(name, _OddSource)
    try:
        scanner = make(scanners, f"sim://{name}")
        scanner.open(recorder)
        scanner.start_scanning()
        assert wait_until(lambda: scanner.stats()["frames"] + scanner.stats()["frame_errors"] >= 3)
        assert scanner.preview_jpeg() is None
        assert scanner.scanning
    finally:
        unregister_sim_source(name)


def test_a_serial_scanner_has_no_camera_and_so_no_preview():
    scanner = SerialScanner("socket://127.0.0.1:9")    # never opened: no picture needs a port
    assert scanner.preview_jpeg() is None
    assert type(scanner).preview_jpeg is CodeScanner.preview_jpeg
