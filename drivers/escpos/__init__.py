"""ESC/POS receipt printers (serial, network socket, USB) behind hal.ReceiptPrinter.

`frames` is the pure codec (status bytes, receipt layout, command bytes) that the
virtual printer shares; `driver` (EscposPrinter) moves those bytes over a pyserial
URL or USB and reads DLE EOT status. Nothing is imported here, so importing the
codec never pulls in the transport.
"""
