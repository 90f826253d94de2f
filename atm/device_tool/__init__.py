"""`atm device ...`: bench tools a technician runs against one device on its port,
without the kiosk. Each device family registers its subcommands here; every one of them
ends with the same exit codes (EXIT_CODES below), so scripts can tell a broken device
from a wrong command line."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from typing import Any, Callable

from hal.errors import ConfigurationError, DeviceError, PortError

# Modules that add subcommands under `atm device`; each has register(subparsers).
_FAMILIES = ("atm.device_tool.validator", "atm.device_tool.printer", "atm.device_tool.scanner",
             "atm.device_tool.dispenser")

EXIT_OK = 0          # the tool did what was asked
EXIT_DEVICE = 1      # the device failed, refused, or did not answer
EXIT_USAGE = 2       # usage or configuration error, including a port or source that does not open

EXIT_CODES = ("exit codes: 0 ok; 1 the device failed or refused (no answer, garbage, jam, paper out, "
              "nothing read); 2 usage or configuration error, including a port or source that does not open")


def register(subparsers: "argparse._SubParsersAction") -> None:
    device = subparsers.add_parser("device", help="talk to one device on its port (technician bench tool)",
                                   epilog=EXIT_CODES)
    device_sub = device.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    for module_name in _FAMILIES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(device_sub)
    for parser in device_sub.choices.values():
        if parser.epilog is None:
            parser.epilog = EXIT_CODES
        func = parser.get_default("func")
        if func is not None:
            parser.set_defaults(func=guarded(func))


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A tool's run function that keeps to EXIT_CODES whatever escapes it: a port that does
    not open or a configuration error is 2, any other device error is 1."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (PortError, ConfigurationError) as exc:
            return fail(args, EXIT_USAGE, str(exc))
        except DeviceError as exc:
            return fail(args, EXIT_DEVICE, str(exc))

    return run


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error a tool caught itself."""
    return EXIT_USAGE if isinstance(exc, (PortError, ConfigurationError)) else EXIT_DEVICE


def fail(args: argparse.Namespace, code: int, message: str) -> int:
    command = getattr(args, "device_command", None) or "device"
    print(f"atm device {command}: {message}", file=sys.stderr)
    return code


def standalone(register_family: Callable[[Any], None], argv: list[str] | None) -> int:
    """Run one family's tools on their own (`python -m atm.device_tool.validator ...`) with
    the same guard and epilog as under `atm device`."""
    parser = argparse.ArgumentParser(prog="atm device", epilog=EXIT_CODES)
    sub = parser.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    register_family(sub)
    for child in sub.choices.values():
        if child.epilog is None:
            child.epilog = EXIT_CODES
    args = parser.parse_args(argv)
    return guarded(args.func)(args)
