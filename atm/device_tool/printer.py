"""`atm device print-test`: print a test receipt on one printer and report the status it read.

A bench tool for technicians: no kiosk, no journal. It says in plain words
why nothing printed (port does not open, paper out, printer silent or offline), and
exits as every `atm device` tool: 0 printed, 1 the printer failed or refused, 2 usage or
configuration error, including a port that does not open.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from atm.device_tool import EXIT_CODES, EXIT_DEVICE, EXIT_OK, exit_code_for, standalone
from hal.errors import ConfigurationError, DeviceError
from hal.printer import PairLine, PrinterStatus, QrBlock, Receipt, Rule, TextLine

TEST_QR = "atm print-test: if you can scan this, QR printing works"

_PAPER_WORDS = {"ok": "paper ok", "nearEnd": "paper near end", "out": "paper out", "unknown": "paper unknown"}


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "print-test", help="print a test receipt and report the printer's paper and online status",
        epilog=EXIT_CODES)
    parser.add_argument("--driver", choices=("escpos",), required=True, help="printer protocol")
    parser.add_argument("--port", required=True,
                        help="pyserial URL (/dev/ttyUSB0, socket://HOST:9100, a pty path) or usb://VID:PID")
    parser.add_argument("--width-mm", type=int, choices=(58, 80), default=80, help="paper width (default 80)")
    parser.add_argument("--baudrate", type=int, default=19200, help="serial speed (default 19200)")
    parser.add_argument("--link", choices=("auto", "two-way", "one-way"), default="auto",
                        help="whether the printer answers status requests (default auto)")
    parser.add_argument("--status-timeout", type=float, default=0.5, metavar="S",
                        help="seconds to wait for each status answer (default 0.5)")
    parser.add_argument("--native-qr", action="store_true", help="use the printer's own QR command, not an image")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def build_test_receipt(port: str, width_mm: int, columns: int, when: datetime) -> Receipt:
    ruler = "".join(str(i % 10) for i in range(1, columns + 1))
    return Receipt((
        TextLine("PRINTER TEST", align="center", bold=True, large=True),
        Rule("="),
        PairLine("Date", when.strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
        PairLine("Port", port),
        PairLine("Paper", f"{width_mm} mm, {columns} columns"),
        Rule(),
        TextLine(ruler),
        TextLine("Left"),
        TextLine("Centre", align="center"),
        TextLine("Right", align="right"),
        TextLine("Bold", bold=True),
        TextLine("Characters: äöüß ñ áéíóú ¿¡"),
        QrBlock(TEST_QR, caption="QR test"),
        Rule(),
    ))


def _status_dict(status: PrinterStatus | None) -> dict[str, str | None]:
    if status is None:
        return {"state": None, "paper": None, "detail": ""}
    return {"state": status.state.value, "paper": status.paper.value, "detail": status.detail}


def run(args: argparse.Namespace) -> int:
    from drivers.escpos.driver import EscposPrinter
    from drivers.escpos.frames import columns_for

    result: dict[str, object] = {"driver": args.driver, "port": args.port, "printed": False, "error": None}
    status: PrinterStatus | None = None
    exit_code = EXIT_OK
    try:
        printer = EscposPrinter(args.port, name="printer", width_mm=args.width_mm, baudrate=args.baudrate,
                                link=args.link, native_qr=args.native_qr, status_timeout=args.status_timeout)
        printer.open(lambda event: None)
    except (DeviceError, ConfigurationError) as exc:
        result["error"] = f"cannot open the printer: {exc}"
        exit_code = exit_code_for(exc)
    else:
        try:
            receipt = build_test_receipt(args.port, args.width_mm, columns_for(args.width_mm), datetime.now(timezone.utc))
            printer.print_receipt(receipt)
            result["printed"] = True
        except DeviceError as exc:
            result["error"] = str(exc)
            exit_code = EXIT_DEVICE
        status = printer.status()
        printer.close()
    result.update(_status_dict(status))

    if not result["printed"]:
        print(f"print-test failed on {args.port}: {result['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    elif status is not None:
        verb = "test receipt sent to" if result["printed"] else "status read from"
        print(f"{verb} {args.port}: printer {status.state.value}, {_PAPER_WORDS[status.paper.value]}"
              + (f" ({status.detail})" if status.detail else ""))
    return exit_code if not result["printed"] else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the tool on its own (tests, or before atm/cli.py wires it in)."""
    return standalone(register, argv)


if __name__ == "__main__":
    raise SystemExit(main())
