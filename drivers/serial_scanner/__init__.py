"""Serial barcode scanner in COM mode: codes arrive as lines of text over a
pyserial URL. frames.py frames the lines (pure), driver.py reads the port."""

from drivers.serial_scanner.driver import SerialScanner
from drivers.serial_scanner.frames import LineAssembler, ScannerFrameError, encode_line

__all__ = ["SerialScanner", "LineAssembler", "ScannerFrameError", "encode_line"]
