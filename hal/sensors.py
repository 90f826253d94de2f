"""Sensors and indicators: door, tamper and service switch in; bezel lights out.
On a real kiosk these are GPIO lines driven through gpiozero; the application
sees only SensorChanged events and Light commands."""

from __future__ import annotations

from abc import abstractmethod
from enum import Enum

from hal.device import Device


class Light(str, Enum):
    """Bezel lights that show the customer where to act."""

    VALIDATOR = "validator"
    DISPENSER = "dispenser"
    SCANNER = "scanner"
    PRINTER = "printer"


class Sensors(Device):
    @abstractmethod
    def read(self) -> dict[str, bool]:
        """Current value of every sensor, by name ("door": True means open)."""


class Indicators(Device):
    @abstractmethod
    def set_light(self, light: Light, mode: str) -> None:
        """mode: "off", "on" or "blink"."""
