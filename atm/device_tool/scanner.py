"""`atm device scan`: read one code from a camera or a serial scanner and say
what it is. A bench tool for technicians: no kiosk, no journal. Exit codes as every
`atm device` tool: 0 a code was read, 1 nothing read before the timeout (or the scanner
failed), 2 usage or configuration error, including a source or port that does not open.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time

from atm.device_tool import EXIT_CODES, EXIT_DEVICE, EXIT_OK, EXIT_USAGE, exit_code_for
from atm.payloads import NETWORK_NAMES, PayloadError, parse_payload, payload_kind
from hal.errors import ConfigurationError, DeviceError
from hal.events import CodeScanned, DeviceStatusChanged, Event
from hal.status import DeviceState

EXIT_NOTHING_READ = EXIT_DEVICE


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "scan", help="read one QR/barcode from a camera or serial scanner and show what it is",
        epilog=EXIT_CODES)
    parser.add_argument("--driver", choices=("camera", "serial"), required=True, help="scanner kind")
    parser.add_argument("--source", required=True,
                        help="camera: device index (0), image or video file, stream URL, sim://NAME; "
                             "serial: pyserial URL (/dev/ttyACM0, socket://HOST:PORT, a pty path)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="give up after this many seconds (default 30)")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object {"text", "kind", "decoder", "ms"}')
    parser.add_argument("--network", choices=NETWORK_NAMES, default="main",
                        help="chain to validate addresses against (default main)")
    parser.add_argument("--decoders", default=None, metavar="LIST",
                        help="camera: comma-separated decoder order (default: the measured default)")
    parser.add_argument("--size", default="640x480", metavar="WxH", help="camera: frame size (default 640x480)")
    parser.add_argument("--baudrate", type=int, default=9600, help="serial: speed (default 9600)")
    parser.add_argument("--terminator", choices=("any", "cr", "lf", "crlf"), default="any",
                        help="serial: line end the scanner sends (default any)")
    parser.set_defaults(func=run)


def _build(args: argparse.Namespace):
    if args.driver == "camera":
        from drivers.camera.decoders import DEFAULT_ORDER
        from drivers.camera.driver import CameraScanner

        try:
            width, height = (int(part) for part in args.size.lower().split("x"))
        except ValueError:
            raise ConfigurationError(f"--size must look like 640x480, got {args.size!r}") from None
        decoders = tuple(d.strip() for d in args.decoders.split(",") if d.strip()) if args.decoders else DEFAULT_ORDER
        return CameraScanner(args.source, name="scanner", width=width, height=height, decoders=decoders)
    from drivers.serial_scanner.driver import SerialScanner

    return SerialScanner(args.source, name="scanner", baudrate=args.baudrate, terminator=args.terminator)


def describe(text: str, network: str) -> tuple[str, str]:
    """(kind, words) for scanned text; kind is "unknown" when the parser refuses it."""
    try:
        payload = parse_payload(text, network=network, lightning=True)
    except PayloadError as exc:
        return "unknown", f"not accepted ({exc.reason}): {exc}"
    return payload_kind(payload), "accepted"


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ConfigurationError(f"--timeout must be positive, got {args.timeout}")
    events: "queue.Queue[Event]" = queue.Queue()
    scanner = _build(args)
    try:
        scanner.open(events.put)
    except DeviceError as exc:
        print(f"cannot open the scanner on {args.source}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    if scanner.state == DeviceState.OFFLINE:
        # The camera driver reports a source it cannot open as offline rather than raising
        # (the kiosk keeps retrying it); for the bench tool that is a wrong --source.
        detail = getattr(scanner, "detail", "") or "it is offline"
        print(f"cannot open the scanner on {args.source}: {detail}", file=sys.stderr)
        scanner.close()
        return EXIT_USAGE
    # Events carry wall-clock times; measure from the same clock.
    started_wall = time.time()
    deadline = time.monotonic() + args.timeout
    code: CodeScanned | None = None
    try:
        scanner.start_scanning()
        while code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(event, CodeScanned):
                code = event
            elif isinstance(event, DeviceStatusChanged) and event.state.value == "offline":
                print(f"scanner offline: {event.detail}", file=sys.stderr)
    finally:
        scanner.stop_scanning()
        scanner.close()
    if code is None:
        print(f"nothing read from {args.source} within {args.timeout:g} s", file=sys.stderr)
        return EXIT_NOTHING_READ
    elapsed_ms = max(0, int(round((code.at - started_wall) * 1000)))
    kind, words = describe(code.text, args.network)
    if args.json:
        print(json.dumps({"text": code.text, "kind": kind, "decoder": code.decoder, "ms": elapsed_ms}))
    else:
        print(code.text)
        print(f"kind: {kind} ({words}); decoder: {code.decoder}; {elapsed_ms} ms")
    return EXIT_OK
