"""Code scanner contract: a camera or a serial scanner that reports each code it
reads (once per presentation) as a CodeScanned event while started."""

from __future__ import annotations

from abc import abstractmethod

from hal.device import Device


class CodeScanner(Device):
    @abstractmethod
    def start_scanning(self) -> None:
        """Begin reading codes (camera on, scanner armed)."""

    @abstractmethod
    def stop_scanning(self) -> None:
        """Stop reading codes and free the light/camera while idle."""
