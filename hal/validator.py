"""Bill validator contract.

Money flow: the driver reports NoteEscrowed; the application journals its
decision and calls stack() or return_note(); at the device's settled event
the driver calls the CreditRecorder (durable when it returns) and only then
acknowledges the device and emits NoteCredited. A driver never credits at
escrow and never stacks a note whose value it cannot name.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Callable, Iterable

from hal.device import Device
from hal.events import NoteCredited
from hal.money import Fiat

# Called in the driver's thread before the settled event is acknowledged. It must
# make the credit durable before returning and be idempotent for a note the device
# repeats after a host restart. If it raises, the driver does not acknowledge.
CreditRecorder = Callable[[NoteCredited], None]


class BillValidator(Device):
    @abstractmethod
    def set_credit_recorder(self, recorder: CreditRecorder) -> None: ...

    @property
    @abstractmethod
    def denominations(self) -> list[Fiat]:
        """Note values the device knows (read from it, or from configuration)."""

    @abstractmethod
    def enable(self, accept: Iterable[Fiat] | None = None) -> None:
        """Start taking notes: only `accept` values (None = all known)."""

    @abstractmethod
    def disable(self) -> None:
        """Stop taking notes. A note already in escrow still needs stack()/return_note()."""

    @abstractmethod
    def stack(self) -> None:
        """Accept the note in escrow into the cashbox."""

    @abstractmethod
    def return_note(self) -> None:
        """Give the note in escrow back to the customer."""

    def resolve_note(self) -> None:
        """Ask the device what became of the note last told to stack whose settled event
        has not come within the application's bound (a stall, a reset, a lost frame).

        Non-blocking, like stack(). The answer arrives as exactly one event: NoteCredited
        (through the CreditRecorder, as for any settled event) when the note is in the
        cashbox, NoteReturned when it went back to the customer, NoteOutcomeUnknown when
        the device cannot tell. A driver that cannot ask its device sends nothing; the
        application then parks the note after a second bound, so no screen waits for ever.
        """
