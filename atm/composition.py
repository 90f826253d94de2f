"""The composition root: the one place that turns configuration into driver
objects. Everything else in `atm` sees only hal interfaces.

Drivers are named in configuration ([devices.validator] driver = "id003").
Stand-ins (driver = "standin") exist only for simulate mode; asking for one on
a real kiosk is a configuration error, never a silent fallback.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from hal.errors import ConfigurationError
from atm.config import Config, DeviceConfig
from atm.kiosk import DeviceSet

# kind -> driver name -> "module:Class" and whether the first argument is the port.
_DRIVERS: dict[str, dict[str, tuple[str, str | None]]] = {
    "validator": {"id003": ("drivers.id003.driver:Id003Validator", "port"),
                  "ssp": ("drivers.ssp.driver:SspValidator", "port"),
                  "ccnet": ("drivers.ccnet.driver:CcnetValidator", "port"),
                  "standin": ("simulators.standin:StandinValidator", None)},
    "printer": {"escpos": ("drivers.escpos.driver:EscposPrinter", "port"),
                "standin": ("simulators.standin:StandinPrinter", None)},
    "scanner": {"camera": ("drivers.camera.driver:CameraScanner", "source"),
                "serial": ("drivers.serial_scanner.driver:SerialScanner", "port"),
                "standin": ("simulators.standin:StandinScanner", None)},
    "dispenser": {"lcdm2000": ("drivers.lcdm.driver:Lcdm2000Dispenser", "port"),
                  "lcdm4000": ("drivers.lcdm.driver:Lcdm4000Dispenser", "port"),
                  "standin": ("simulators.standin:StandinDispenser", None)},
    "sensors": {"gpio": ("drivers.gpio.driver:GpioSensors", None)},
    "indicators": {"gpio": ("drivers.gpio.driver:GpioIndicators", None)},
}

# Options the composition root supplies itself, so configuration need not repeat them.
_INJECTED = {"validator": ("currency",), "dispenser": ("currency",)}


def _load(path: str) -> Callable[..., Any]:
    module_name, _, cls = path.partition(":")
    return getattr(importlib.import_module(module_name), cls)


def build_device(config: Config, device: DeviceConfig, *, simulate: bool, pin_factory: Any = None) -> Any:
    where = f"{config.source}: [devices.{device.kind}]"
    choices = _DRIVERS[device.kind]
    if device.driver not in choices:
        raise ConfigurationError(f"{where} driver = {device.driver!r}; expected one of {', '.join(choices)}")
    if device.driver == "standin" and not simulate:
        raise ConfigurationError(f"{where} driver = \"standin\" is a simulator; a kiosk needs a real driver "
                                 f"({', '.join(d for d in choices if d != 'standin') or 'none available'})")
    path, first = choices[device.driver]
    cls = _load(path)
    options = dict(device.options)
    args: list[Any] = []
    if first is not None:
        if first not in options:
            raise ConfigurationError(f"{where} needs {first} = \"...\" (a pyserial URL such as /dev/ttyUSB0 or "
                                     f"socket://127.0.0.1:7001)")
        args.append(options.pop(first))
    if device.kind in ("sensors", "indicators"):
        from drivers.gpio.driver import make_pin_factory
        factory_name = options.pop("pin_factory", "lgpio")
        options["pin_factory"] = pin_factory if pin_factory is not None else make_pin_factory(factory_name,
                                                                                              simulate=simulate)
    accepted = inspect.signature(cls).parameters
    for key in _INJECTED.get(device.kind, ()):
        if key in accepted and key not in options:
            options[key] = config.currency
    if "name" in accepted:
        options.setdefault("name", device.kind)
    unknown = [k for k in options if k not in accepted and not any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in accepted.values())]
    if unknown:
        known = ", ".join(k for k in accepted if k not in ("self",))
        raise ConfigurationError(f"{where} unknown key {unknown[0]!r} for driver {device.driver!r}; known keys: {known}")
    try:
        return cls(*args, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where} driver {device.driver!r} refused its options: {exc}") from exc


def build_devices(config: Config, *, simulate: bool) -> DeviceSet:
    for kind in ("validator", "scanner"):
        if kind not in config.devices:
            raise ConfigurationError(f"{config.source}: a kiosk needs [devices.{kind}] with a driver")
    built: dict[str, Any] = {}
    pin_factory = None
    for kind, device in config.devices.items():
        if kind in ("sensors", "indicators") and pin_factory is None:
            from drivers.gpio.driver import make_pin_factory
            pin_factory = make_pin_factory(str(device.options.get("pin_factory", "lgpio")), simulate=simulate)
        built[kind] = build_device(config, device, simulate=simulate, pin_factory=pin_factory)
    return DeviceSet(**built)


def port_of(config: Config, kind: str) -> str:
    device = config.devices.get(kind)
    if device is None:
        return ""
    return str(device.options.get("port", device.options.get("source", "")))
