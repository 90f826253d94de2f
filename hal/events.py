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


@dataclass(frozen=True, kw_only=True)
class DispenseCompleted(Event):
    """One dispense command ended. Money counts only by `exited`."""

    request_id: str
    completion: Completion
    exited: Mapping[str, int]        # cassette id -> notes that left the device
    rejected: Mapping[str, int]      # cassette id -> notes diverted to the reject bin
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
