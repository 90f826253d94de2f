"""Typed events that drivers hand to the application.

A driver runs its I/O in its own thread (or task) and calls an `EventSink`
with these; the application's sink is thread-safe and queues them onto its
single event loop. Events say what happened at the device, never what the
books should say: totals are the application's job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from hal.money import Fiat
from hal.status import Completion, DeviceState, PaperState, UnitStatus


@dataclass(frozen=True, kw_only=True)
class Event:
    device: str                      # the device's configured name, e.g. "validator"
    at: float = field(default_factory=time.time)


EventSink = Callable[[Event], None]


def emit_safely(sink: EventSink | None, event: Event, who: str) -> None:
    """Hand `event` to the application's sink from a driver's I/O thread. The sink is
    the application's code: a bug there is logged, and never stops the thread that is
    moving a note or reading a frame."""
    if sink is None:
        return
    try:
        sink(event)
    except Exception:
        logging.getLogger(f"drivers.{who}").exception("%s: event sink raised on %r", who, event)


@dataclass(frozen=True, kw_only=True)
class DeviceStatusChanged(Event):
    state: DeviceState
    detail: str = ""                 # words a technician can act on ("acceptor jam", "stacker open")
    code: str | None = None          # protocol-level code, e.g. "0x45"


@dataclass(frozen=True, kw_only=True)
class NoteEscrowed(Event):
    """A note sits in escrow; the application must answer with stack() or return_note().

    `value` is None when the driver could not map the escrow code to a value; the
    driver has then already returned the note on its own."""

    value: Fiat | None
    code: str


@dataclass(frozen=True, kw_only=True)
class NoteCredited(Event):
    """The device's settled event (ID-003 vend valid, SSP credit, ccNet stacked).

    By the time the sink sees this, the driver has passed it to the
    CreditRecorder (which made it durable) and only then acknowledged it."""

    # None only when the driver restarted mid-note and the protocol does not repeat the
    # denomination (ID-003 VEND VALID carries no escrow code): the recorder takes the
    # value from its journal, where the escrow decision was written before STACK.
    value: Fiat | None
    code: str


@dataclass(frozen=True, kw_only=True)
class NoteStacked(Event):
    """The note has reached the cashbox (after it was credited)."""

    value: Fiat | None = None


@dataclass(frozen=True, kw_only=True)
class NoteReturned(Event):
    """A note went back to the customer (host asked, or the driver refused an unknown code)."""

    value: Fiat | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class NoteOutcomeUnknown(Event):
    """The answer to BillValidator.resolve_note() when the device cannot tell whether a
    note told to stack reached the cashbox or went back (it was reset, or it does not
    answer). The application parks the note for the operator, with `value` when known;
    it never credits it to whoever stands at the kiosk."""

    value: Fiat | None = None
    code: str | None = None
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class NoteRejected(Event):
    """The device refused a note on its own (not recognised, fake, wrong size...)."""

    reason: str
    code: str | None = None


@dataclass(frozen=True, kw_only=True)
class CashboxChanged(Event):
    status: UnitStatus               # OK (replaced), MISSING (removed/open), FULL


@dataclass(frozen=True, kw_only=True)
class FraudDetected(Event):
    detail: str


# What a dispense came to, for the books: every requested note exited, fewer did, or the
# device could not say (its answer was lost and it has no record to ask).
DISPENSE_OUTCOMES = ("complete", "partial", "unknown")


@dataclass(frozen=True, kw_only=True)
class DispenseCompleted(Event):
    """One dispense command ended. Money counts only by `exited`.

    `outcome` "unknown" means the notes in `uncertain` (cassette id -> notes asked in a
    command whose answer never came) may or may not have left: the application parks
    them for reconciliation and never pays them again on its own. `exited` then holds only
    what the device did report. `error` is a short code ("jam", "cassetteEmpty", ...) or None.
    Without an explicit outcome, SUCCESS reads "complete" and anything else "partial"."""

    request_id: str
    completion: Completion
    exited: Mapping[str, int]        # cassette id -> notes that left the device
    rejected: Mapping[str, int]      # cassette id -> notes diverted to the reject bin
    detail: str = ""
    requested: Mapping[str, int] = field(default_factory=dict)
    outcome: str = ""
    uncertain: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", "complete" if self.completion == Completion.SUCCESS else "partial")
        if self.outcome not in DISPENSE_OUTCOMES:
            raise ValueError(f"DispenseCompleted.outcome must be one of {DISPENSE_OUTCOMES}, got {self.outcome!r}")


@dataclass(frozen=True, kw_only=True)
class CassetteStatusChanged(Event):
    """The dispenser's own view of one cassette changed (its sensors or an error code):
    MISSING, EMPTY, LOW (near-end sensor), INOPERATIVE, or OK again. The application's
    books, not this event, say how many notes are inside."""

    cassette: str
    status: UnitStatus
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class CodeScanned(Event):
    text: str
    decoder: str = ""                # "zxing", "pyzbar", "opencv", "serial", "simulator"


@dataclass(frozen=True, kw_only=True)
class SensorChanged(Event):
    sensor: str                      # "door", "tamper", "service_switch"
    active: bool                     # door open, tamper tripped, switch on


@dataclass(frozen=True, kw_only=True)
class PrinterStatusChanged(Event):
    state: DeviceState
    paper: PaperState
