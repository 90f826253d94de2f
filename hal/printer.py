"""Receipt printer contract and the receipt document model.

The application builds a `Receipt` out of a few block types; a printer driver
lays it out for its paper width and encodes it. Status reports paper as
UNKNOWN where the link cannot answer: never assume paper is there.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Literal, Union

from hal.device import Device
from hal.status import DeviceState, PaperState


@dataclass(frozen=True)
class TextLine:
    text: str
    align: Literal["left", "center", "right"] = "left"
    bold: bool = False
    large: bool = False


@dataclass(frozen=True)
class PairLine:
    """A label on the left and a value on the right, wrapped to fit the width."""

    label: str
    value: str


@dataclass(frozen=True)
class QrBlock:
    data: str
    caption: str = ""


@dataclass(frozen=True)
class Rule:
    char: str = "-"


Block = Union[TextLine, PairLine, QrBlock, Rule]


@dataclass(frozen=True)
class Receipt:
    blocks: tuple[Block, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PrinterStatus:
    state: DeviceState
    paper: PaperState
    detail: str = ""


class ReceiptPrinter(Device):
    @abstractmethod
    def print_receipt(self, receipt: Receipt) -> None:
        """Print and cut. Raises DeviceError when it cannot."""

    @abstractmethod
    def status(self) -> PrinterStatus:
        """Ask the printer now (DLE EOT where the link answers)."""
