"""The base every device class shares: a name, open/close, a state, an identity."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from hal.events import EventSink
from hal.status import DeviceState


@dataclass(frozen=True)
class DeviceInfo:
    """What a technician needs to identify a unit. Empty string where the protocol does not say."""

    model: str = ""
    firmware: str = ""
    serial: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Device(ABC):
    """A device with its own I/O. `open` starts it and may block briefly (port
    open, initialisation); events go to `sink` from the driver's thread."""

    name: str

    @abstractmethod
    def open(self, sink: EventSink) -> None:
        """Open the port and start the device's I/O. Raises PortError / DeviceTimeout."""

    @abstractmethod
    def close(self) -> None:
        """Stop I/O and free the port. Safe to call twice."""

    @property
    @abstractmethod
    def state(self) -> DeviceState: ...

    def info(self) -> DeviceInfo:
        return DeviceInfo()
