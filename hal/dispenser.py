"""Cash dispenser contract. The driver moves notes and reports what exited and
what was rejected, per cassette; the application owns the counts. A dispense is
never resent blindly: after a lost answer, ask `last_result` / `last_operation`
what happened, and park what the device cannot tell for reconciliation."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Mapping

from hal.device import Device
from hal.errors import DeviceError
from hal.events import DispenseCompleted
from hal.money import Fiat
from hal.status import DeviceState


@dataclass(frozen=True)
class Cassette:
    id: str                          # "upper", "lower", "1".."4"
    denomination: Fiat


@dataclass(frozen=True)
class CassetteState:
    """One cassette position as the device's sensors see it (not how many notes it holds)."""

    id: str
    present: bool
    near_end: bool


@dataclass(frozen=True)
class DispenserStatus:
    """The answer to CashDispenser.status(): device state in XFS4IoT words, per-cassette
    presence and near-end, and what a technician needs to act (detail, device code)."""

    state: DeviceState
    cassettes: tuple[CassetteState, ...]
    detail: str = ""
    code: str | None = None          # the device's own error code, e.g. "0x35"
    reject_tray_present: bool | None = None   # None where the protocol does not say
    path_blocked: bool = False       # a note in the transport: purge before dispensing


@dataclass(frozen=True)
class LastOperation:
    """What the device itself remembers of its last purge / dispense / test dispense
    (LCDM-4000 LAST STATUS), with no request id: the device does not know ours."""

    command: str                     # "dispense", "test", "purge", "none"
    exited: Mapping[str, int]
    rejected: Mapping[str, int]
    error: str | None                # short code, None when it ended well
    code: str | None = None


class CashDispenser(Device):
    @property
    @abstractmethod
    def cassettes(self) -> list[Cassette]: ...

    @abstractmethod
    def dispense(self, request_id: str, plan: Mapping[str, int]) -> None:
        """Start paying out `plan` (cassette id -> notes). The result arrives as one
        DispenseCompleted event carrying `request_id`. The driver splits a plan larger than
        one command takes into several commands, stops at the first failure, and never
        sends a dispense command a second time."""

    @abstractmethod
    def last_result(self, request_id: str) -> DispenseCompleted | None:
        """Ask the device what happened to the last dispense, if it was `request_id`.
        None when the device has no record of it (the command never arrived)."""

    # The operations below block for at most the device's answer time. They are for the
    # technician tool and for a device service thread, never for a state-machine callback.
    # A dispenser that lacks one raises DeviceError saying so.

    def status(self) -> DispenserStatus:
        """Ask the device for its state and per-cassette presence / near-end."""
        raise DeviceError(f"{type(self).__name__} cannot report its status")

    def purge(self) -> Mapping[str, int]:
        """Clear the note path into the reject tray; returns notes moved there per cassette,
        to be booked as rejected. Empty where the device does not say (LCDM-2000: its
        driver books a stuck note as rejected in the DispenseCompleted of the jam)."""
        raise DeviceError(f"{type(self).__name__} has no purge")

    def test_dispense(self, request_id: str, cassette: str) -> None:
        """Pick one note (LCDM-2000) or the device's test count from `cassette` into the
        reject tray, nothing to the customer; the result arrives as DispenseCompleted with
        nothing in `exited`."""
        raise DeviceError(f"{type(self).__name__} has no test dispense")

    def last_operation(self) -> LastOperation | None:
        """The device's own record of its last operation; None on a model that keeps none
        (LCDM-2000): a lost answer there is an "unknown" outcome for the operator."""
        return None
