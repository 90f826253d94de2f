"""Hardware contracts: device interfaces, value types, events and the status vocabulary.

This package is the seam between the application (`atm`) and the device
drivers (`drivers`): both import it, it imports nothing of ours. Drivers
report *what happened*; the application keeps the books.
"""

from hal.money import Fiat, Sats, minor_digits
from hal.status import Completion, DeviceState, PaperState, UnitStatus
from hal.errors import DeviceError, PortError, ProtocolError, DeviceTimeout, ConfigurationError
from hal.events import (
    Event,
    EventSink,
    DeviceStatusChanged,
    NoteEscrowed,
    NoteCredited,
    NoteStacked,
    NoteReturned,
    NoteOutcomeUnknown,
    NoteRejected,
    CashboxChanged,
    FraudDetected,
    DispenseCompleted,
    CassetteStatusChanged,
    CodeScanned,
    SensorChanged,
    PrinterStatusChanged,
)
from hal.device import Device, DeviceInfo
from hal.validator import BillValidator, CreditRecorder
from hal.dispenser import CashDispenser, Cassette, CassetteState, DispenserStatus, LastOperation
from hal.printer import ReceiptPrinter, PrinterStatus, Receipt, TextLine, PairLine, QrBlock, Rule
from hal.scanner import CodeScanner
from hal.sensors import Sensors, Indicators, Light

__all__ = [name for name in dir() if not name.startswith("_")]
