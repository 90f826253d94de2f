"""The camera simulator: renders payloads in each distortion at the configured
size, plays image and video files, registers and unregisters as sim://NAME,
and serves frames the real decoder chain can read."""

from __future__ import annotations

import itertools
import threading

import cv2
import numpy as np
import pytest

from drivers.camera.capture import open_source, registered_sim_sources
from drivers.camera.decoders import build_chain
from hal.errors import PortError
from simulators.camera import DISTORTIONS, CameraSimulator, Scene, render_frame, scene_for

PAYLOAD = "bitcoin:tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7?amount=0.5"
_names = itertools.count()


@pytest.fixture
def sim():
    camera = CameraSimulator(name=f"sim-test-{next(_names)}", width=800, height=600)
    yield camera
    camera.close()


@pytest.fixture(scope="module")
def chain():
    return build_chain(["zxing", "pyzbar", "opencv"])


def read_one(camera: CameraSimulator) -> np.ndarray | None:
    source = open_source(camera.source_url)
    try:
        return source.read()
    finally:
        source.release()


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
def test_presented_payload_is_served_at_the_configured_size_and_decodes(sim, chain, distortion):
    sim.present(PAYLOAD, distortion)
    frame = read_one(sim)
    assert frame.shape == (600, 800, 3) and frame.dtype == np.uint8
    assert chain.decode(frame).text == PAYLOAD
    state = sim.state()
    assert (state["mode"], state["payload"], state["distortion"]) == ("payload", PAYLOAD, distortion)


def test_each_distortion_changes_the_picture():
    clean = render_frame(PAYLOAD, scene_for("none"))
    for name in DISTORTIONS:
        if name != "none":
            assert not np.array_equal(render_frame(PAYLOAD, scene_for(name)), clean), name


def test_rendering_is_repeatable_for_the_same_seed_and_varies_with_another():
    scene = Scene(noise_sigma=10, perspective=0.1, seed=5)
    assert np.array_equal(render_frame(PAYLOAD, scene), render_frame(PAYLOAD, scene))
    assert not np.array_equal(render_frame(PAYLOAD, scene), render_frame(PAYLOAD, Scene(noise_sigma=10,
                                                                                        perspective=0.1, seed=6)))


def test_unknown_distortion_is_refused_with_the_known_names(sim):
    with pytest.raises(ValueError, match="expected one of .*glare"):
        sim.present(PAYLOAD, "fisheye")
    assert sim.state()["mode"] == "empty"


def test_payload_too_long_for_a_qr_code_is_refused(sim):
    with pytest.raises(ValueError, match="does not fit"):
        sim.present("x" * 8000)


def test_clear_shows_an_empty_scene_without_a_code(sim, chain):
    sim.present(PAYLOAD)
    sim.clear()
    assert chain.decode(read_one(sim)) is None
    assert sim.state()["mode"] == "empty" and sim.state()["payload"] is None


def test_image_file_is_shown_resized_to_the_camera(sim, chain, tmp_path):
    image = tmp_path / "phone.png"
    cv2.imwrite(str(image), render_frame(PAYLOAD, width=1280, height=960))
    sim.present_file(image)
    frame = read_one(sim)
    assert frame.shape == (600, 800, 3)
    assert chain.decode(frame).text == PAYLOAD
    assert sim.state()["file"] == str(image) and sim.state()["mode"] == "image"


def test_video_file_plays_frame_by_frame_and_loops(sim, chain, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (800, 600))
    payloads = ["first code", "second code"]
    for text in payloads:
        writer.write(render_frame(text, width=800, height=600))
    writer.release()
    sim.present_file(video)
    source = open_source(sim.source_url)
    try:
        seen = [chain.decode(source.read()).text for _ in range(4)]
    finally:
        source.release()
    assert seen == payloads * 2


def test_a_file_that_is_neither_image_nor_video_is_refused(sim, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a picture")
    with pytest.raises(ValueError, match="notes.txt"):
        sim.present_file(junk)


def test_unplugged_camera_serves_no_frames_until_replugged(sim):
    sim.set_connected(False)
    assert read_one(sim) is None
    assert sim.state()["connected"] is False
    sim.set_connected(True)
    assert read_one(sim) is not None


def test_simulator_registers_its_url_and_close_unregisters_it():
    camera = CameraSimulator(name="registry-check")
    assert "registry-check" in registered_sim_sources()
    assert camera.source_url == "sim://registry-check"
    with pytest.raises(ValueError, match="already registered"):
        CameraSimulator(name="registry-check")
    camera.close()
    camera.close()
    assert "registry-check" not in registered_sim_sources()
    with pytest.raises(PortError, match="no simulated camera named 'registry-check'"):
        open_source("sim://registry-check")


def test_state_counts_open_readers_and_served_frames(sim):
    source = open_source(sim.source_url)
    source.read()
    source.read()
    assert sim.state()["readers"] == 1 and sim.state()["frames_served"] == 2
    source.release()
    source.release()
    assert sim.state()["readers"] == 0
    assert source.read() is None, "a released source serves nothing"


def test_control_and_reading_from_different_threads_stay_consistent(sim):
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        source = open_source(sim.source_url)
        try:
            while not done.is_set():
                frame = source.read()
                if frame is None or frame.shape != (600, 800, 3):
                    errors.append(AssertionError(f"bad frame {None if frame is None else frame.shape}"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            source.release()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for index in range(10):
        sim.present(f"code {index}", "noise" if index % 2 else "none")
        sim.clear()
    done.set()
    for thread in threads:
        thread.join(timeout=5)
    assert errors == []


def test_take_away_empties_the_view_and_is_counted(sim, chain):
    sim.present(PAYLOAD)
    sim.take_away()
    frame = read_one(sim)
    assert chain.decode(frame) is None
    assert sim.state()["mode"] == "empty" and sim.state()["taken_away"] == 1
    sim.take_away()                       # nothing shown: nothing more to take away
    assert sim.state()["taken_away"] == 1


def test_a_read_of_the_shown_code_takes_it_away_unless_held():
    from simulators.camera import CameraSimulator

    with CameraSimulator(name="read-then-lowered") as lowered, \
            CameraSimulator(name="read-and-held", hold_after_read=True) as held:
        for camera in (lowered, held):
            camera.present(PAYLOAD)
            source = open_source(camera.source_url)
            source.code_read("some other code")      # not what this phone shows: stays
            assert camera.state()["mode"] == "payload"
            source.code_read(PAYLOAD)
            source.release()
        assert lowered.state()["mode"] == "empty"
        assert held.state()["mode"] == "payload"
