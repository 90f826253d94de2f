"""`atm device status` and `atm device accept`: bench tools for one bill validator on its port.

Generic over hal.BillValidator (ID-003, SSP or ccNet, built by name), no kiosk and no
journal: the tool is its own small application, deciding at escrow from the room left
under --max-total. Exit codes as every `atm device` tool (atm.device_tool.EXIT_CODES):
0 ran as asked, 1 the validator failed, refused or did not answer, 2 usage or
configuration error, including a port that does not open.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import json
import queue
import sys
import threading
import time
from typing import Any

from atm.device_tool import EXIT_CODES, EXIT_DEVICE, EXIT_OK, EXIT_USAGE, exit_code_for, standalone
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import DeviceStatusChanged, Event, NoteCredited, NoteEscrowed, NoteReturned
from hal.money import Fiat
from hal.status import DeviceState
from hal.validator import BillValidator

DRIVERS = {
    "id003": "drivers.id003.driver:Id003Validator",
    "ssp": "drivers.ssp.driver:SspValidator",
    "ccnet": "drivers.ccnet.driver:CcnetValidator",
}

# After the count, limit or timeout is reached, how long a note already on its way
# into the stacker may take to be credited before the tool gives up on it.
SETTLE_S = 10.0


def register(subparsers: "argparse._SubParsersAction") -> None:
    status = subparsers.add_parser("status", help="identify a bill validator: model, firmware, serial, "
                                                  "denominations, state", epilog=EXIT_CODES)
    _common(status)
    status.set_defaults(func=run_status)

    accept = subparsers.add_parser("accept", help="take notes on a bill validator until a count, a total or a "
                                                  "timeout; stacks what fits, returns what does not",
                                   epilog=EXIT_CODES)
    _common(accept)
    accept.add_argument("--count", type=int, default=1, metavar="N", help="stop after N notes are credited (default 1)")
    accept.add_argument("--max-total", type=int, default=None, metavar="MINOR",
                        help="never credit more than this many minor units; a note that does not fit is returned")
    accept.add_argument("--timeout", type=float, default=60.0, metavar="S", help="stop after S seconds (default 60)")
    accept.set_defaults(func=run_accept)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--driver", choices=list(DRIVERS), required=True, help="validator protocol")
    parser.add_argument("--port", required=True, help="pyserial URL: /dev/ttyUSB0, socket://HOST:PORT, a pty path")
    parser.add_argument("--currency", default=None, help="ISO 4217 code of the notes (default: what the device says)")
    parser.add_argument("--denomination", action="append", default=[], metavar="CODE=MINOR",
                        help="override one denomination (ID-003 escrow code, SSP channel or ccNet bill type = "
                             "minor units), repeatable; "
                             "needs --currency")
    parser.add_argument("--encrypted", action="store_true",
                        help="SSP only: key exchange first, then every command encrypted (eSSP)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_driver(driver: str, port: str, *, currency: str | None = None,
                 denominations: dict[str, int] | None = None, encrypted: bool = False) -> BillValidator:
    """The named driver class, imported only when asked for."""
    if driver not in DRIVERS:
        raise ConfigurationError(f"unknown validator driver {driver!r}; expected one of {sorted(DRIVERS)}")
    if encrypted and driver != "ssp":
        raise ConfigurationError(f"--encrypted is for --driver ssp (eSSP); {driver} has no encryption")
    module_name, _, class_name = DRIVERS[driver].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    options: dict[str, Any] = {"name": "validator", "currency": currency, "denominations": denominations}
    if encrypted:
        options["encrypted"] = True
    return cls(port, **options)


def _parse_denominations(items: list[str]) -> dict[str, int] | None:
    if not items:
        return None
    table = {}
    for item in items:
        code, sep, minor = item.partition("=")
        text = minor.strip()
        if not sep or not (text.isascii() and text.isdigit()):
            raise ConfigurationError(f"--denomination {item!r}: expected CODE=MINOR, e.g. 0x61=500")
        table[code.strip()] = int(text)
    return table


def event_dict(event: Event) -> dict[str, Any]:
    """An event as plain JSON: money as minor units, enums as their words."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for field in dataclasses.fields(event):
        if field.name in ("device", "at"):
            continue
        value = getattr(event, field.name)
        if isinstance(value, Fiat):
            value = value.minor
        elif isinstance(value, enum.Enum):
            value = value.value
        out[field.name] = value
    return out


class _Session:
    """One opened validator with its events on a queue, consumed by the main thread."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.events: queue.Queue[Event] = queue.Queue()
        self.log: list[Event] = []
        self.driver = build_driver(args.driver, args.port, currency=args.currency,
                                   denominations=_parse_denominations(args.denomination),
                                   encrypted=getattr(args, "encrypted", False))

    def device(self) -> dict[str, str]:
        info = self.driver.info()
        return {"model": info.model, "firmware": info.firmware, "serial": info.serial}

    def currency(self) -> str | None:
        denominations = self.driver.denominations
        if denominations:
            return denominations[0].currency
        return getattr(self.driver, "currency", None) or self.args.currency

    def next_event(self, timeout: float) -> Event | None:
        try:
            event = self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        self.log.append(event)
        return event

    def drain(self) -> None:
        while self.next_event(0) is not None:
            pass


def _fail(args: argparse.Namespace, exc: Exception) -> int:
    """A message a technician can act on, and the exit code for its kind."""
    if isinstance(exc, PortError):
        what = "the port did not open"
    elif isinstance(exc, ConfigurationError):
        what = "the options are wrong"
    elif isinstance(exc, DeviceTimeout):
        what = "the validator did not answer"
    elif isinstance(exc, ProtocolError):
        what = "the validator answered with bytes that are not its protocol"
    else:
        what = "the validator reported a problem"
    print(f"atm device {args.device_command}: {what} ({args.driver} on {args.port}): {exc}", file=sys.stderr)
    return exit_code_for(exc)


def _open(session: _Session) -> None:
    session.driver.open(session.events.put)


def run_status(args: argparse.Namespace) -> int:
    try:
        session = _Session(args)
        _open(session)
    except (DeviceError, ConfigurationError) as exc:
        return _fail(args, exc)
    try:
        session.drain()
        driver = session.driver
        last = [e for e in session.log if isinstance(e, DeviceStatusChanged)]
        result = {
            "driver": args.driver, "port": args.port, "device": session.device(), "currency": session.currency(),
            "denominations": [d.minor for d in driver.denominations],
            "table": {code: value.minor for code, value in getattr(driver, "escrow_table", {}).items()},
            "state": driver.state.value, "detail": last[-1].detail if last else "",
            "events": [event_dict(e) for e in session.log],
        }
    finally:
        driver.close()
    if args.json:
        print(json.dumps(result))
    else:
        device = result["device"]
        print(f"validator  {args.driver} on {args.port}")
        print(f"model      {device['model'] or '-'}")
        print(f"firmware   {device['firmware'] or '-'}")
        print(f"serial     {device['serial'] or '- (the protocol does not report one)'}")
        print(f"currency   {result['currency'] or '-'}")
        values = ", ".join(str(d) for d in driver.denominations) or "none known"
        print(f"notes      {values}")
        print(f"state      {result['state']}{' (' + result['detail'] + ')' if result['detail'] else ''}")
    return EXIT_OK


def run_accept(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("atm device accept: --count must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    credited: list[int] = []
    credit_lock = threading.Lock()

    def recorder(event: NoteCredited) -> None:
        # The bench tool's "journal" is this list; nothing here can fail.
        with credit_lock:
            if event.value is not None:
                credited.append(event.value.minor)

    try:
        session = _Session(args)
        session.driver.set_credit_recorder(recorder)
        _open(session)
    except (DeviceError, ConfigurationError) as exc:
        return _fail(args, exc)
    driver = session.driver
    returned: list[int] = []
    in_flight = 0                # minor units stacked but not credited yet
    ended = "timeout"
    stop_after_return = False
    try:
        smallest = min((d.minor for d in driver.denominations), default=None)
        driver.enable()
        deadline = time.monotonic() + args.timeout
        while True:
            with credit_lock:
                total = sum(credited)
                done_count = len(credited)
            if done_count >= args.count:
                ended = "count"
                break
            if args.max_total is not None and smallest is not None and in_flight == 0 \
                    and args.max_total - total < smallest:
                ended = "max-total"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = session.next_event(min(remaining, 0.2))
            if isinstance(event, NoteEscrowed) and event.value is not None:
                fits = args.max_total is None or total + in_flight + event.value.minor <= args.max_total
                try:
                    if fits and done_count + (1 if in_flight else 0) < args.count:
                        driver.stack()
                        in_flight += event.value.minor
                    else:
                        driver.return_note()
                        stop_after_return = not fits
                except DeviceError:
                    pass                 # the escrow already ended (timeout); the driver reports how
            elif isinstance(event, NoteCredited) and event.value is not None:
                in_flight = max(0, in_flight - event.value.minor)
            elif isinstance(event, NoteReturned):
                if event.value is not None:
                    returned.append(event.value.minor)
                if stop_after_return:
                    ended = "max-total"
                    break
        driver.disable()
        # A note already sent to the stacker is the customer's money: wait for its
        # credit. One that reached escrow after the end goes back to the customer.
        settle = time.monotonic() + SETTLE_S
        quiet_until = time.monotonic() + 0.5
        while time.monotonic() < settle and (in_flight or time.monotonic() < quiet_until):
            event = session.next_event(0.1)
            if isinstance(event, NoteCredited) and event.value is not None:
                in_flight = max(0, in_flight - event.value.minor)
            elif isinstance(event, NoteEscrowed) and event.value is not None:
                try:
                    driver.return_note()
                except DeviceError:
                    pass
                quiet_until = time.monotonic() + 0.5
            elif isinstance(event, NoteReturned) and event.value is not None:
                returned.append(event.value.minor)
        state = driver.state
    finally:
        driver.close()
    with credit_lock:
        credited_now = list(credited)
    result = {
        "driver": args.driver, "port": args.port, "device": session.device(), "currency": session.currency(),
        "credited": credited_now, "returned": returned, "total_minor": sum(credited_now), "ended": ended,
        "events": [event_dict(e) for e in session.log],
    }
    if args.json:
        print(json.dumps(result))
    else:
        currency = result["currency"] or ""
        print(f"validator  {args.driver} on {args.port} ({result['device']['model'] or 'model unknown'})")
        print(f"credited   {len(credited_now)} note(s): {', '.join(_money(m, currency) for m in credited_now) or '-'}")
        print(f"returned   {', '.join(_money(m, currency) for m in returned) or '-'}")
        print(f"total      {_money(sum(credited_now), currency)}  (ended by {ended})")
    if state == DeviceState.OFFLINE:
        print(f"atm device accept: the validator stopped answering on {args.port}; check its power and cable",
              file=sys.stderr)
        return EXIT_DEVICE
    if in_flight:
        print(f"atm device accept: a note sent to the stacker was not credited within {SETTLE_S:g} s; "
              f"check the stacker", file=sys.stderr)
        return EXIT_DEVICE
    return EXIT_OK


def _money(minor: int, currency: str) -> str:
    try:
        return str(Fiat(minor, currency))
    except ValueError:
        return f"{minor} (minor units)"


def main(argv: list[str] | None = None) -> int:
    """`python -m atm.device_tool.validator status|accept ...`, the same as `atm device ...`."""
    return standalone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
