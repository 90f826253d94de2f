"""`atm cas pair`: a technician on site pairs the kiosk with the operator's CAS from
the pairing code the operator's offline tool made, typed in, read from a file, or
scanned with the kiosk's own camera or serial scanner."""

from __future__ import annotations

import argparse
import dataclasses
import json
import queue
import shutil
import sys
import time
from pathlib import Path

from atm.cas.check import state_dir_from_config
from atm.cas.errors import CasError
from atm.cas.link import STAGING_DIR, install_staged_pairing
from atm.cas.pairing import pair_blocking
from atm.payloads import PairingCode, PayloadError, parse_payload
from hal.events import CodeScanned


def _scan_code(driver: str, source: str, timeout_s: float) -> str:
    """Read codes until one is a pairing code; other codes are reported and skipped."""
    if driver == "camera":
        from drivers.camera.driver import CameraScanner
        scanner = CameraScanner(source, name="scanner")
    else:
        from drivers.serial_scanner.driver import SerialScanner
        scanner = SerialScanner(source, name="scanner")
    seen: "queue.Queue[str]" = queue.Queue()
    scanner.open(lambda event: seen.put(event.text) if isinstance(event, CodeScanned) else None)
    try:
        scanner.start_scanning()
        print(f"Show the pairing QR code to the {driver} scanner ({timeout_s:.0f} s)...", file=sys.stderr)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = seen.get(timeout=left)
            except queue.Empty:
                break
            try:
                if isinstance(parse_payload(text), PairingCode):
                    return text
            except PayloadError:
                pass
            print("That code is not a pairing code; keep showing the operator's pairing QR code.", file=sys.stderr)
    finally:
        scanner.close()
    raise CasError(f"no pairing code was scanned within {timeout_s:.0f} s")


def _command(args: argparse.Namespace) -> int:
    try:
        state_dir = Path(args.state_dir) if args.state_dir else state_dir_from_config(args.config)
        if args.code:
            code = args.code
        elif args.code_file:
            code = Path(args.code_file).read_text(encoding="utf-8").strip()
        else:
            code = _scan_code(args.scan_driver, args.scan_source, args.timeout)
        # Staged, then installed by the rules of a switch in the running kiosk
        # (atm.cas.link): another operator's bundle, version floor and queued uploads
        # are archived with its pairing, never taken over by the new one.
        staging = state_dir / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)
        try:
            result = pair_blocking(code, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _same_operator, archive = install_staged_pairing(state_dir, staging)
        result = dataclasses.replace(result, state_dir=state_dir)
    except (CasError, OSError, ValueError) as exc:
        report = {"ok": False, "error": str(exc)}
        print(json.dumps(report) if args.json else f"pairing failed: {exc}")
        return 1
    report = {"ok": True, "kiosk_id": result.kiosk_id, "cas_url": result.cas_url, "cas_pin": result.cas_pin,
              "operator_key_id": result.operator_key_id, "state_dir": str(result.state_dir)}
    if args.json:
        print(json.dumps(report))           # the report's shape stays as it was
        if archive is not None:
            print(f"the previous pairing is kept in {archive}", file=sys.stderr)
    else:
        print(f"paired kiosk {result.kiosk_id} with {result.cas_url}\n  CAS pin {result.cas_pin}\n"
              f"  operator key {result.operator_key_id}\n  trust anchors stored in {result.state_dir}"
              + (f"\n  the previous pairing is kept in {archive}" if archive is not None else ""))
    return 0


def register(cas_sub: "argparse._SubParsersAction") -> None:
    p = cas_sub.add_parser("pair", help="pair this kiosk with the CAS from the operator's pairing code")
    p.add_argument("--config", type=Path, default=None, help="kiosk TOML config (reads [cas] state_dir)")
    p.add_argument("--state-dir", help="where the pairing is stored (overrides the config)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--code", help="the pairing code text (atmpair:...)")
    src.add_argument("--code-file", help="a file holding the pairing code text")
    src.add_argument("--scan-source", help="scan the code: camera index/file/URL, or the serial scanner port")
    p.add_argument("--scan-driver", choices=("camera", "serial"), default="camera")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a scanned code (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_command)
