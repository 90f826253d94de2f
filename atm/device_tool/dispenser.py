"""`atm device status|dispense --driver {lcdm2000,lcdm4000}`: bench tools for one Puloon
cash dispenser on its port, without the kiosk and without books.

`status` shares its subcommand with the validator tool (the --driver choice decides);
`dispense` pays notes per cassette and never sends a dispense command twice: a lost
answer is reported as it is (partial or unknown), for the technician to count.
Exit codes: 0 every requested note exited (status: the unit answered); 1 the device
failed, refused or could not tell; 2 usage or configuration (bad port, bad --notes).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
import uuid

from drivers.lcdm.driver import LcdmDispenser
from drivers.lcdm.frames import MODELS
from hal.errors import ConfigurationError, DeviceError, PortError
from hal.events import DispenseCompleted, Event

DRIVERS = ("lcdm2000", "lcdm4000")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: "argparse._SubParsersAction") -> None:
    dispense = subparsers.add_parser("dispense", help="pay notes from a cash dispenser (per cassette, in cassette "
                                                      "order); never sends a dispense twice")
    dispense.add_argument("--driver", choices=DRIVERS, required=True, help="dispenser model")
    dispense.add_argument("--port", required=True, help="pyserial URL: /dev/ttyUSB0, socket://HOST:PORT, a pty path")
    dispense.add_argument("--notes", required=True, metavar="N1[,N2,...]",
                          help="notes per cassette in cassette order, e.g. 3,0,2")
    dispense.add_argument("--response-timeout", type=float, default=60.0, metavar="S",
                          help="seconds to wait for the dispenser's answer, plus 1 s per note (default 60, "
                               "the specification's figure); a late answer is never met by a second dispense")
    _options(dispense)
    dispense.set_defaults(func=run_dispense)

    status = subparsers.choices.get("status")
    if status is None:
        status = subparsers.add_parser("status", help="identify a device on its port")
        status.add_argument("--driver", choices=DRIVERS, required=True)
        status.add_argument("--port", required=True)
        status.add_argument("--json", action="store_true")
        status.set_defaults(func=run_status)
        _options(status)
        return
    # `atm device status` already exists (the validator tool): add the dispensers to its
    # --driver choices and let the choice decide which tool answers. argparse has no public
    # way to widen a choice list, hence _actions; the validator tool needs no change.
    for action in status._actions:
        if "--driver" in action.option_strings and action.choices is not None:
            action.choices = [*action.choices, *(d for d in DRIVERS if d not in action.choices)]
            action.help = f"{action.help or 'device protocol'}; or a dispenser model ({', '.join(DRIVERS)})"
    other = status.get_default("func")
    status.set_defaults(func=lambda args: run_status(args) if args.driver in DRIVERS else other(args))
    _options(status)


def _options(parser: argparse.ArgumentParser) -> None:
    if not any("--json" in a.option_strings for a in parser._actions):
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--parity", choices=("none", "even", "auto"), default=None,
                        help="dispenser line parity (default: none on the LCDM-2000, auto on the LCDM-4000)")


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    print(f"atm device {args.device_command}: {message}", file=sys.stderr)
    return code


def _open(args: argparse.Namespace, sink) -> LcdmDispenser:
    options = {}
    if getattr(args, "response_timeout", None) is not None:
        if not args.response_timeout > 0:
            raise ConfigurationError(f"--response-timeout {args.response_timeout}: must be above 0 seconds")
        options["response_timeout"] = args.response_timeout
    driver = LcdmDispenser(args.port, model=args.driver, parity=getattr(args, "parity", None), **options)
    driver.open(sink)
    return driver


def parse_notes(text: str, cassettes: int) -> list[int]:
    """`3,0,2` -> [3, 0, 2]; ConfigurationError naming what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ConfigurationError(f"--notes {text!r}: expected whole numbers >= 0 separated by commas, e.g. 3,0,2")
    notes = [int(p) for p in parts]
    if len(notes) > cassettes:
        raise ConfigurationError(f"--notes {text!r}: the dispenser has {cassettes} cassettes, got {len(notes)} counts")
    if not sum(notes):
        raise ConfigurationError(f"--notes {text!r}: at least one note must be asked for")
    return notes


def run_status(args: argparse.Namespace) -> int:
    try:
        driver = _open(args, lambda event: None)
    except (PortError, ConfigurationError) as exc:
        return _fail(args, EXIT_USAGE, f"the port did not open: {exc}" if isinstance(exc, PortError) else str(exc))
    except DeviceError as exc:
        return _fail(args, EXIT_FAILED, f"the dispenser did not answer properly ({args.driver} on {args.port}): {exc}")
    try:
        status = driver.status()
        rom = driver.rom_version()
    except DeviceError as exc:
        return _fail(args, EXIT_FAILED, f"the dispenser stopped answering ({args.driver} on {args.port}): {exc}")
    finally:
        driver.close()
    result = {
        "driver": args.driver, "port": args.port, "model": driver.model.title, "rom": rom,
        "state": status.state.value, "detail": status.detail, "code": status.code,
        "cassettes": [{"id": c.id, "present": c.present, "near_end": c.near_end} for c in status.cassettes],
        "reject_tray_present": status.reject_tray_present, "path_blocked": status.path_blocked,
    }
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(f"dispenser  {args.driver} on {args.port}")
    print(f"model      {result['model']}")
    print(f"rom        {rom or '- (this model has no ROM version command)'}")
    print(f"state      {status.state.value}{' (' + status.detail + ')' if status.detail else ''}")
    for c in status.cassettes:
        words = "missing" if not c.present else "present, near end" if c.near_end else "present"
        print(f"cassette {c.id:<5} {words}")
    if status.reject_tray_present is not None:
        print(f"reject tray {'present' if status.reject_tray_present else 'MISSING'}")
    return EXIT_OK


def run_dispense(args: argparse.Namespace) -> int:
    cassettes = MODELS[args.driver].cassettes
    try:
        notes = parse_notes(args.notes, len(cassettes))
    except ConfigurationError as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    events: queue.Queue[Event] = queue.Queue()
    try:
        driver = _open(args, events.put)
    except (PortError, ConfigurationError) as exc:
        return _fail(args, EXIT_USAGE, f"the port did not open: {exc}" if isinstance(exc, PortError) else str(exc))
    except DeviceError as exc:
        return _fail(args, EXIT_FAILED, f"the dispenser did not answer ({args.driver} on {args.port}); nothing "
                                        f"was dispensed: {exc}")
    request_id = f"bench-{uuid.uuid4().hex[:12]}"
    plan = {cid: n for cid, n in zip(cassettes, notes) if n}
    try:
        driver.dispense(request_id, plan)
        # The answer, or the LAST STATUS that recovers it, within the driver's own bounds.
        bound = driver.dispense_time_bound(sum(notes)) + driver.dispense_time_bound(driver.model.max_per_command)
        done = _wait_for(events, request_id, bound + 10)
    finally:
        driver.close()
    if done is None:
        # The driver always ends a dispense with one event; this is a bug guard, not a path.
        return _fail(args, EXIT_FAILED, "no result from the driver; the outcome is unknown: count the cassettes")
    ids = list(cassettes[:len(notes)])
    result = {
        "driver": args.driver, "requested": notes,
        "exited": [done.exited.get(cid, 0) for cid in ids],
        "rejected": [done.rejected.get(cid, 0) for cid in ids],
        "error": done.error, "outcome": done.outcome,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"dispenser  {args.driver} on {args.port}")
        print(f"requested  {_per(ids, notes)}")
        print(f"exited     {_per(ids, result['exited'])}")
        print(f"rejected   {_per(ids, result['rejected'])}")
        print(f"outcome    {done.outcome}{' (' + done.error + ')' if done.error else ''}")
    if done.outcome == "complete" and done.error is None:
        return EXIT_OK
    if done.outcome == "unknown":
        maybe = ", ".join(f"{n} from cassette {cid}" for cid, n in done.uncertain.items())
        message = (f"the dispenser's answer was lost; whether {maybe} left is unknown. It was NOT sent again: "
                   f"count the cassettes and the reject tray. {done.detail}")
    else:
        message = f"the dispense stopped short: {done.detail or done.error}"
    return _fail(args, EXIT_FAILED, message)


def _per(ids: list[str], values: list[int]) -> str:
    return "  ".join(f"{cid}:{n}" for cid, n in zip(ids, values))


def _wait_for(events: "queue.Queue[Event]", request_id: str, timeout: float) -> DispenseCompleted | None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            event = events.get(timeout=remaining)
        except queue.Empty:
            return None
        if isinstance(event, DispenseCompleted) and event.request_id == request_id:
            return event


def main(argv: list[str] | None = None) -> int:
    """`python -m atm.device_tool.dispenser status|dispense ...`, the same as `atm device ...`."""
    parser = argparse.ArgumentParser(prog="atm device")
    sub = parser.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
