"""`atm device ...`: bench tools a technician runs against one device on its port,
without the kiosk. Each device family registers its subcommands here."""

from __future__ import annotations

import argparse
import importlib

# Modules that add subcommands under `atm device`; each has register(subparsers).
_FAMILIES = ("atm.device_tool.validator", "atm.device_tool.printer", "atm.device_tool.scanner",
             "atm.device_tool.dispenser")


def register(subparsers: "argparse._SubParsersAction") -> None:
    device = subparsers.add_parser("device", help="talk to one device on its port (technician bench tool)")
    device_sub = device.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    for module_name in _FAMILIES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(device_sub)
