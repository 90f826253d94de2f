"""`atm device scan`: reads a code from an image file or a serial scanner and
prints one JSON object; exits non-zero when nothing was read in time."""

from __future__ import annotations

import json
import threading

import cv2
import pytest

from atm.cli import main
from drivers.camera.decoders import DEFAULT_ORDER
from simulators.camera import render_empty, render_frame, scene_for
from simulators.serial_scanner import SerialScannerSimulator

BIP21 = "bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4?amount=0.001"
INVOICE = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn"
    "3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
)


def scan(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["device", "scan", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("payload,kind", [(BIP21, "bip21"), (INVOICE, "lightning"),
                                          ("atmpair:opaque-token", "pairing"), ("hello kiosk", "unknown")])
def test_image_file_source_prints_one_json_object_with_the_kind(tmp_path, capsys, payload, kind):
    image = tmp_path / "code.png"
    cv2.imwrite(str(image), render_frame(payload, scene_for("rotation")))
    code, out, _err = scan(capsys, "--driver", "camera", "--source", str(image), "--timeout", "10", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"text", "kind", "decoder", "ms"}
    assert (result["text"], result["kind"]) == (payload, kind)
    assert result["decoder"] in DEFAULT_ORDER
    assert isinstance(result["ms"], int) and result["ms"] >= 0


def test_address_for_another_network_is_reported_as_unknown_with_the_reason(tmp_path, capsys):
    image = tmp_path / "code.png"
    cv2.imwrite(str(image), render_frame(BIP21))
    code, out, _err = scan(capsys, "--driver", "camera", "--source", str(image), "--network", "test")
    assert code == 0
    assert "kind: unknown" in out and "wrong_network" in out


def test_nothing_read_before_the_timeout_exits_non_zero_and_prints_no_object(tmp_path, capsys):
    image = tmp_path / "empty.png"
    cv2.imwrite(str(image), render_empty())
    code, out, err = scan(capsys, "--driver", "camera", "--source", str(image), "--timeout", "0.5", "--json")
    assert code == 1
    assert out == ""
    assert "nothing read" in err and str(image) in err


def test_missing_camera_source_is_explained_on_stderr(tmp_path, capsys):
    missing = tmp_path / "gone.png"
    code, out, err = scan(capsys, "--driver", "camera", "--source", str(missing), "--timeout", "0.3")
    assert code == 2 and out == ""
    assert "no such device or file" in err


def test_serial_scanner_source_reads_a_line(capsys):
    with SerialScannerSimulator() as sim:
        url = sim.start("tcp")
        result: dict = {}

        def run_tool() -> None:
            result["code"] = main(["device", "scan", "--driver", "serial", "--source", url,
                                   "--timeout", "10", "--json"])

        worker = threading.Thread(target=run_tool)
        worker.start()
        # Like a technician pulling the trigger until the tool answers: codes sent
        # before the tool armed the scanner are drained, not reported.
        for _ in range(60):
            sim.scan("atmredeem:R-7F3K-92QX")
            worker.join(timeout=0.25)
            if not worker.is_alive():
                break
        assert not worker.is_alive()
    out, _err = capsys.readouterr()
    assert result["code"] == 0
    assert json.loads(out) == {"text": "atmredeem:R-7F3K-92QX", "kind": "redeem", "decoder": "serial",
                               "ms": json.loads(out)["ms"]}


def test_serial_port_that_does_not_open_exits_with_a_usage_error(tmp_path, capsys):
    code, out, err = scan(capsys, "--driver", "serial", "--source", str(tmp_path / "ttyUSB7"), "--timeout", "1")
    assert code == 2 and out == ""
    assert "ttyUSB7" in err
