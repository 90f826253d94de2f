"""ESC/POS receipt printers (serial, network socket, USB) behind hal.ReceiptPrinter.

`frames` is the pure codec (status bytes, receipt layout, command bytes);
`driver` moves those bytes over a pyserial URL or USB and reads DLE EOT status.
"""

from drivers.escpos.driver import EscposPrinter, PaperOutError, PrinterOfflineError

__all__ = ["EscposPrinter", "PaperOutError", "PrinterOfflineError"]
