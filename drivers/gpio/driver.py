"""GPIO sensors and indicators on gpiozero.

The pin factory is chosen by configuration, never guessed: `pin_factory =
"mock"` is only accepted when the caller says it is simulating, so a real
kiosk with a broken GPIO library fails closed with a message instead of
quietly reading a fake door that is always shut.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from hal import DeviceState, EventSink, Indicators, Light, SensorChanged, Sensors
from hal.errors import ConfigurationError, PortError

DEFAULT_SENSOR_PINS = {"door": 17, "tamper": 27, "service_switch": 22}
DEFAULT_LIGHT_PINS = {"validator": 5, "dispenser": 6, "scanner": 13, "printer": 19}


def make_pin_factory(kind: str, *, simulate: bool) -> Any:
    """Build the gpiozero pin factory named in configuration."""
    if kind == "mock":
        if not simulate:
            raise ConfigurationError("[devices.sensors] pin_factory = \"mock\" is for simulate mode only; "
                                     "on a kiosk use \"lgpio\" or \"rpigpio\"")
        from gpiozero.pins.mock import MockFactory
        return MockFactory()
    try:
        if kind == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory
            return LGPIOFactory()
        if kind == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory
            return RPiGPIOFactory()
    except Exception as exc:       # the GPIO libraries raise their own types for a missing chip
        raise PortError(f"GPIO pin factory {kind!r} did not start: {exc}") from exc
    raise ConfigurationError(f"[devices.sensors] pin_factory = {kind!r}; expected \"lgpio\", \"rpigpio\" or \"mock\"")


class GpioSensors(Sensors):
    """Inputs that report SensorChanged. active_high: a closed contact reads as active
    unless the sensor is listed in `invert` (a door switch that opens the circuit when the door opens)."""

    def __init__(self, *, name: str = "sensors", pin_factory: Any, pins: Mapping[str, int] | None = None,
                 invert: tuple[str, ...] = ()) -> None:
        self.name = name
        self._factory = pin_factory
        self._pins = dict(pins or DEFAULT_SENSOR_PINS)
        self._invert = set(invert)
        self._inputs: dict[str, Any] = {}
        self._sink: EventSink | None = None
        self._lock = threading.Lock()

    def open(self, sink: EventSink) -> None:
        from gpiozero import DigitalInputDevice
        self._sink = sink
        for sensor, pin in self._pins.items():
            device = DigitalInputDevice(pin, pull_up=False, pin_factory=self._factory)
            device.when_activated = lambda _d=None, s=sensor: self._changed(s)
            device.when_deactivated = lambda _d=None, s=sensor: self._changed(s)
            self._inputs[sensor] = device

    def _changed(self, sensor: str) -> None:
        if self._sink is not None:
            self._sink(SensorChanged(device=self.name, sensor=sensor, active=self._value(sensor)))

    def _value(self, sensor: str) -> bool:
        raw = bool(self._inputs[sensor].value)
        return not raw if sensor in self._invert else raw

    def read(self) -> dict[str, bool]:
        return {sensor: self._value(sensor) for sensor in self._inputs}

    def close(self) -> None:
        for device in self._inputs.values():
            device.close()
        self._inputs.clear()

    @property
    def state(self) -> DeviceState:
        return DeviceState.ONLINE if self._inputs else DeviceState.OFFLINE

    def pin(self, sensor: str) -> Any:
        """The factory's pin behind a sensor (the simulator drives mock pins through this)."""
        return self._factory.pin(self._pins[sensor])


class GpioIndicators(Indicators):
    def __init__(self, *, name: str = "indicators", pin_factory: Any, pins: Mapping[str, int] | None = None) -> None:
        self.name = name
        self._factory = pin_factory
        self._pins = dict(pins or DEFAULT_LIGHT_PINS)
        self._leds: dict[str, Any] = {}
        self.modes: dict[str, str] = {}

    def open(self, sink: EventSink) -> None:
        from gpiozero import LED
        self._leds = {light: LED(pin, pin_factory=self._factory) for light, pin in self._pins.items()}

    def close(self) -> None:
        for led in self._leds.values():
            led.close()
        self._leds.clear()

    @property
    def state(self) -> DeviceState:
        return DeviceState.ONLINE if self._leds else DeviceState.OFFLINE

    def set_light(self, light: Light, mode: str) -> None:
        led = self._leds.get(light.value)
        if led is None:
            return
        if mode == "on":
            led.on()
        elif mode == "blink":
            led.blink(on_time=0.5, off_time=0.5)
        else:
            led.off()
        self.modes[light.value] = mode
