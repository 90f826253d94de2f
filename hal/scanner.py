"""Code scanner contract: a camera or a serial scanner that reports each code it
reads (once per presentation) as a CodeScanned event while started. A scanner with
a camera may also show what it sees (preview_jpeg), for a technician aiming it."""

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

    def preview_jpeg(self) -> bytes | None:
        """What the camera sees now, as a small JPEG image, while scanning; None when
        not scanning or no picture has come yet. A scanner without a camera (a serial
        scanner) keeps this default and never has a picture: callers tell the two apart
        by whether a subclass overrides this method."""
        return None
