"""CameraScanner end to end against the camera simulator and real files: the
capture thread starts, reads, de-duplicates, honours the region of interest,
stops and frees the source, and survives a source that disappears."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from drivers.camera import decoders as decoders_module
from drivers.camera.decoders import DEFAULT_ORDER
from drivers.camera.driver import CameraScanner, Deduplicator, crop, validate_roi
from hal.errors import ConfigurationError
from hal.events import CodeScanned, DeviceStatusChanged
from hal.status import DeviceState
from simulators.camera import Scene, render_frame

ADDRESS = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
BIP21 = f"bitcoin:{ADDRESS}?amount=0.001"


def make_scanner(source: str, **options) -> CameraScanner:
    options.setdefault("retry_initial_s", 0.02)
    options.setdefault("retry_max_s", 0.1)
    options.setdefault("failed_reads_offline", 2)
    return CameraScanner(source, name="scanner", **options)


@pytest.fixture
def scanners():
    made: list[CameraScanner] = []
    yield made
    for scanner in made:
        scanner.close()


def started(scanners, recorder, source: str, **options) -> CameraScanner:
    scanner = make_scanner(source, **options)
    scanners.append(scanner)
    scanner.open(recorder)
    scanner.start_scanning()
    return scanner


def test_scanner_reports_a_presented_code_as_code_scanned(camera_sim, recorder, scanners):
    started(scanners, recorder, camera_sim.source_url)
    camera_sim.present(BIP21, "perspective")
    assert recorder.wait_for(lambda events: any(isinstance(e, CodeScanned) for e in events))
    code = recorder.codes()[0]
    assert (code.device, code.text) == ("scanner", BIP21)
    assert code.decoder in DEFAULT_ORDER


def test_open_reports_online_for_a_working_source(camera_sim, recorder, scanners):
    scanner = make_scanner(camera_sim.source_url)
    scanners.append(scanner)
    scanner.open(recorder)
    assert scanner.state is DeviceState.ONLINE
    assert recorder.states() == [DeviceState.STARTING, DeviceState.ONLINE]
    assert camera_sim.state()["readers"] == 0, "open must free the camera again"


def test_a_code_held_in_view_is_reported_once(camera_sim, recorder, scanners, wait_until):
    scanner = started(scanners, recorder, camera_sim.source_url, dedupe_seconds=3600)
    camera_sim.present(BIP21)
    assert wait_until(lambda: scanner.stats()["suppressed"] >= 5)
    assert [c.text for c in recorder.codes()] == [BIP21]


def test_without_dedupe_every_frame_with_the_code_is_reported(camera_sim, recorder, scanners):
    started(scanners, recorder, camera_sim.source_url, dedupe_seconds=0)
    camera_sim.present(BIP21)
    assert recorder.wait_for(lambda events: len([e for e in events if isinstance(e, CodeScanned)]) >= 3)


def test_a_different_code_is_reported_while_the_first_is_suppressed(camera_sim, recorder, scanners):
    started(scanners, recorder, camera_sim.source_url, dedupe_seconds=3600)
    camera_sim.present(BIP21)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    camera_sim.present(ADDRESS, "rotation")
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 2)
    assert [c.text for c in recorder.codes()] == [BIP21, ADDRESS]


def test_a_new_scanning_session_reports_the_same_code_again(camera_sim, recorder, scanners):
    scanner = started(scanners, recorder, camera_sim.source_url, dedupe_seconds=3600)
    camera_sim.present(BIP21)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    scanner.stop_scanning()
    scanner.start_scanning()
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 2)


def test_deduplicator_counts_a_code_again_only_after_it_was_out_of_sight_for_the_window():
    dedupe = Deduplicator(window_s=3.0)
    assert dedupe.is_new("a", now=0.0)
    assert not dedupe.is_new("a", now=2.0)
    assert not dedupe.is_new("a", now=4.5)      # still in view: each read extends the presentation
    assert dedupe.is_new("b", now=4.6)
    assert dedupe.is_new("a", now=7.6)          # gone for 3.1 s, shown again
    dedupe.forget()
    assert dedupe.is_new("a", now=7.7)


def test_region_of_interest_excludes_a_code_outside_it(camera_sim, recorder, scanners, wait_until):
    # The "small" scene places the code in the upper-left part of the frame.
    scanner = started(scanners, recorder, camera_sim.source_url, roi=(0.6, 0.0, 0.4, 1.0))
    camera_sim.present(BIP21, "small")
    assert wait_until(lambda: scanner.stats()["frames"] >= 15 and scanner.stats()["fallback_frames"] >= 3)
    assert recorder.codes() == []


def test_region_of_interest_around_the_code_reads_it(camera_sim, recorder, scanners):
    started(scanners, recorder, camera_sim.source_url, roi=(0.0, 0.0, 0.6, 0.8))
    camera_sim.present(BIP21, "small")
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)


@pytest.mark.parametrize("roi", [(0.5, 0.5, 0.6, 0.2), (-0.1, 0, 0.5, 0.5), (0, 0, 0, 1), (0, 0, 1), ("a", 0, 1, 1)])
def test_a_region_of_interest_outside_the_frame_is_a_configuration_error(roi):
    with pytest.raises(ConfigurationError, match="roi"):
        validate_roi(roi)


def test_crop_takes_the_fractional_region():
    frame = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200)
    region = crop(frame, (0.25, 0.5, 0.5, 0.5))
    assert region.shape == (50, 100)
    assert region[0, 0] == frame[50, 50]


def test_stop_scanning_joins_the_thread_and_frees_the_source(camera_sim, recorder, scanners, wait_until):
    scanner = started(scanners, recorder, camera_sim.source_url)
    assert wait_until(lambda: camera_sim.state()["readers"] == 1 and scanner.stats()["frames"] > 0)
    thread_names = {t.name for t in threading.enumerate()}
    assert "camera-scanner" in thread_names
    scanner.stop_scanning()
    assert not scanner.scanning
    assert "camera-scanner" not in {t.name for t in threading.enumerate()}
    assert camera_sim.state()["readers"] == 0
    frames = camera_sim.state()["frames_served"]
    scanner.stop_scanning()      # twice is harmless
    scanner.close()
    assert camera_sim.state()["frames_served"] == frames


def test_unplugged_camera_is_reported_offline_and_reading_resumes_when_replugged(camera_sim, recorder, scanners):
    started(scanners, recorder, camera_sim.source_url)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
    camera_sim.set_connected(False)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.OFFLINE])
    offline = [e for e in recorder.events if isinstance(e, DeviceStatusChanged)][-1]
    assert camera_sim.source_url in offline.detail
    camera_sim.present(BIP21)
    camera_sim.set_connected(True)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert recorder.states()[-1] is DeviceState.ONLINE


def test_simulator_that_goes_away_is_retried_until_it_comes_back(recorder, scanners):
    from simulators.camera import CameraSimulator

    sim = CameraSimulator(name="camera-comes-back")
    scanner = started(scanners, recorder, sim.source_url)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
    sim.close()
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.OFFLINE])
    with CameraSimulator(name="camera-comes-back") as again:
        again.present(ADDRESS)
        assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert scanner.scanning


def test_image_file_that_disappears_goes_offline_and_a_new_file_is_read(tmp_path, recorder, scanners):
    image = tmp_path / "code.png"
    cv2.imwrite(str(image), render_frame(BIP21))
    started(scanners, recorder, str(image))
    assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [BIP21])
    image.unlink()
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.OFFLINE])
    cv2.imwrite(str(image), render_frame(ADDRESS, Scene(rotation_deg=45)))
    assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [BIP21, ADDRESS])
    assert recorder.states()[-1] is DeviceState.ONLINE


def test_video_file_source_is_read_and_loops(tmp_path, recorder, scanners):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    assert writer.isOpened()
    for index in range(6):
        writer.write(render_frame(BIP21, Scene(rotation_deg=index * 5)))
    writer.release()
    scanner = started(scanners, recorder, str(video), dedupe_seconds=3600)
    assert recorder.wait_for(lambda events: [c.text for c in recorder.codes()] == [BIP21])
    assert recorder.wait_for(lambda events: scanner.stats()["frames"] > 12), "a 6-frame clip must loop"


def test_missing_source_at_open_is_reported_offline_without_raising(tmp_path, recorder, scanners):
    missing = tmp_path / "nowhere.png"
    scanner = make_scanner(str(missing))
    scanners.append(scanner)
    scanner.open(recorder)
    assert scanner.state is DeviceState.OFFLINE
    assert str(missing) in scanner.detail


def test_unknown_simulated_camera_name_is_reported_offline(recorder, scanners):
    scanner = make_scanner("sim://no-such-camera")
    scanners.append(scanner)
    scanner.open(recorder)
    assert scanner.state is DeviceState.OFFLINE
    assert "no simulated camera named 'no-such-camera'" in scanner.detail


def test_a_sink_that_raises_does_not_stop_capture(camera_sim, scanners, wait_until):
    calls = []

    def bad_sink(event):
        calls.append(event)
        raise RuntimeError("application bug")

    scanner = started(scanners, bad_sink, camera_sim.source_url, dedupe_seconds=0)
    camera_sim.present(BIP21)
    assert wait_until(lambda: sum(isinstance(e, CodeScanned) for e in calls) >= 3)
    assert scanner.scanning


def test_a_decoder_that_keeps_failing_does_not_stop_the_scanner(monkeypatch, camera_sim, recorder, scanners):
    class Broken:
        name = "broken"

        def decode(self, gray):
            raise MemoryError("decoder exploded")

    monkeypatch.setitem(decoders_module.DECODERS, "broken", Broken)
    started(scanners, recorder, camera_sim.source_url, decoders=("broken", "zxing"))
    camera_sim.present(BIP21)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert recorder.codes()[0].decoder == "zxing"


@pytest.mark.parametrize("options,words", [
    ({"fps": 0}, "positive"),
    ({"width": -1}, "positive"),
    ({"dedupe_seconds": -1}, "dedupe_seconds"),
    ({"decoders": ("nope",)}, "unknown decoder"),
])
def test_bad_scanner_options_are_configuration_errors(options, words):
    with pytest.raises(ConfigurationError, match=words):
        CameraScanner("sim://x", **options)


def test_device_info_names_source_decoders_and_mode(camera_sim):
    info = CameraScanner(camera_sim.source_url, decoders=("zxing", "opencv"), fps=15).info()
    assert info.extra == {"source": camera_sim.source_url, "decoders": "zxing,opencv", "mode": "640x480@15"}


def test_frames_too_small_or_odd_never_crash_the_capture_thread(camera_sim, recorder, scanners, wait_until, tmp_path):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    scanner = started(scanners, recorder, str(tiny), roi=(0.9, 0.9, 0.1, 0.1))
    assert wait_until(lambda: scanner.stats()["frames"] >= 5)
    assert scanner.state is DeviceState.ONLINE


def test_a_frame_that_cannot_be_processed_is_counted_and_scanning_goes_on(camera_sim, recorder, scanners,
                                                                          wait_until):
    scanner = started(scanners, recorder, camera_sim.source_url)
    original = scanner.chain.decode_primary
    failures = iter([True, True, True])

    def flaky(frame):
        if next(failures, False):
            raise ValueError("odd frame")
        return original(frame)

    scanner.chain.decode_primary = flaky
    camera_sim.present(BIP21)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    assert scanner.stats()["frame_errors"] >= 1


class CountingSource:
    """A frame source that records opens and releases, and can be told to fail."""

    def __init__(self, log: dict, frame: np.ndarray) -> None:
        self.description = "counting"
        self._log = log
        self._frame = frame
        log["opened"] += 1

    def read(self):
        if self._log["explode"]:
            raise OSError("USB transfer failed")
        return self._frame

    def release(self) -> None:
        self._log["released"] += 1


@pytest.fixture
def counting_source():
    from drivers.camera.capture import register_sim_source, unregister_sim_source

    log = {"opened": 0, "released": 0, "explode": False}
    frame = render_frame(BIP21)
    register_sim_source("counting", lambda: CountingSource(log, frame))
    yield "sim://counting", log
    unregister_sim_source("counting")


def test_every_opened_source_is_released_after_stop(counting_source, recorder, scanners, wait_until):
    url, log = counting_source
    scanner = started(scanners, recorder, url)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    scanner.stop_scanning()
    assert log["opened"] == log["released"] == 2     # the probe in open() and the capture thread's


def test_a_source_whose_reads_raise_is_dropped_reopened_and_released(counting_source, recorder, scanners,
                                                                     wait_until):
    url, log = counting_source
    scanner = started(scanners, recorder, url)
    assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
    log["explode"] = True
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.OFFLINE])
    assert wait_until(lambda: log["opened"] >= 4)
    log["explode"] = False
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
    scanner.stop_scanning()
    assert log["opened"] == log["released"]
    assert scanner.stats()["source_drops"] >= 1


# --- recovery while not scanning, and the phone taken away ------------------------------


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "camera-scanner-watch" and t.is_alive()]


def test_camera_lost_in_a_scan_that_was_then_stopped_comes_back_online_by_itself(camera_sim, recorder, scanners,
                                                                                  wait_until):
    """What the kiosk does: a camera lost mid-scan puts it out of service, which stops the
    scan; nothing starts a scan again, so only the driver can notice the camera is back."""
    scanner = started(scanners, recorder, camera_sim.source_url)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
    camera_sim.set_connected(False)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.OFFLINE])
    scanner.stop_scanning()
    assert wait_until(lambda: "retrying" in scanner.detail)
    assert scanner.state is DeviceState.OFFLINE
    camera_sim.set_connected(True)
    assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])
    assert wait_until(lambda: not _watchers())
    assert camera_sim.state()["readers"] == 0, "the watcher frees the camera after its probe"
    assert not scanner.scanning


def test_camera_missing_at_open_is_probed_until_it_appears(recorder, scanners):
    from simulators.camera import CameraSimulator

    scanner = make_scanner("sim://camera-plugged-in-later")
    scanners.append(scanner)
    scanner.open(recorder)
    assert scanner.state is DeviceState.OFFLINE
    with CameraSimulator(name="camera-plugged-in-later"):
        assert recorder.wait_for(lambda events: recorder.states()[-1:] == [DeviceState.ONLINE])


def test_close_stops_the_watcher(recorder, scanners, wait_until):
    scanner = make_scanner("sim://camera-never-there")
    scanner.open(recorder)
    assert _watchers()
    scanner.close()
    assert wait_until(lambda: not _watchers())


def test_a_code_read_once_is_taken_away_and_not_read_in_the_next_session(recorder, scanners, wait_until):
    from simulators.camera import CameraSimulator

    with CameraSimulator(name="phone-taken-away") as sim:
        scanner = started(scanners, recorder, sim.source_url, dedupe_seconds=0)
        sim.present(BIP21)
        assert recorder.wait_for(lambda events: len(recorder.codes()) == 1)
        assert wait_until(lambda: sim.state()["mode"] == "empty")
        assert sim.state()["taken_away"] == 1
        scanner.stop_scanning()
        scanner.start_scanning()            # the next screen scans again: the phone is gone
        frames = scanner.stats()["frames"]
        assert wait_until(lambda: scanner.stats()["frames"] > frames + 10)
        sim.present(ADDRESS)                # a new code is read as usual
        assert recorder.wait_for(lambda events: len(recorder.codes()) == 2)
    assert [c.text for c in recorder.codes()] == [BIP21, ADDRESS]
