"""Cash dispenser contract. The driver moves notes and reports what exited and
what was rejected, per cassette; the application owns the counts. A dispense is
never resent blindly: after a lost answer, ask `last_result` what happened."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Mapping

from hal.device import Device
from hal.events import DispenseCompleted
from hal.money import Fiat


@dataclass(frozen=True)
class Cassette:
    id: str                          # "upper", "lower", "1".."4"
    denomination: Fiat


class CashDispenser(Device):
    @property
    @abstractmethod
    def cassettes(self) -> list[Cassette]: ...

    @abstractmethod
    def dispense(self, request_id: str, plan: Mapping[str, int]) -> None:
        """Start paying out `plan` (cassette id -> notes). The result arrives as one
        DispenseCompleted event carrying `request_id`."""

    @abstractmethod
    def last_result(self, request_id: str) -> DispenseCompleted | None:
        """Ask the device what happened to the last dispense, if it was `request_id`.
        None when the device has no record of it (the command never arrived)."""
