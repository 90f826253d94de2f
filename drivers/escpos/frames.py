"""ESC/POS codec: DLE EOT status bytes, receipt layout for 58/80 mm paper, command bytes.

Pure functions, no ports and no threads. The driver sends what `encode_receipt`
returns and decodes status with `interpret_status`; the virtual printer in
simulators/ answers with `encode_*_status` and decodes with the same constants.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, Union

import segno
from escpos.capabilities import Profile, get_profile_class
from escpos.constants import QR_ECLEVEL_M
from escpos.exceptions import ImageWidthError
from escpos.printer import Dummy

from hal.errors import ConfigurationError, DeviceError, ProtocolError
from hal.printer import PairLine, QrBlock, Receipt, Rule, TextLine
from hal.printer import PrinterStatus
from hal.status import DeviceState, PaperState

DLE, EOT, ESC, GS, LF = 0x10, 0x04, 0x1B, 0x1D, 0x0A

STATUS_PRINTER = 1        # DLE EOT 1: printer status
STATUS_OFFLINE_CAUSE = 2  # DLE EOT 2: offline cause
STATUS_ERROR_CAUSE = 3    # DLE EOT 3: error cause
STATUS_PAPER = 4          # DLE EOT 4: roll paper sensor
REQUEST_PRINTER_STATUS = bytes((DLE, EOT, STATUS_PRINTER))
REQUEST_PAPER_STATUS = bytes((DLE, EOT, STATUS_PAPER))

# Every DLE EOT answer has bits 1 and 4 set and bits 0 and 7 clear. Checking them
# is how a wrong baud rate or a stray byte is told apart from a real answer.
_FIXED_MASK = 0x93
_FIXED_VALUE = 0x12
OFFLINE_BIT = 0x08
NEAR_END_BITS = 0x0C
PAPER_OUT_BITS = 0x60

COLUMNS = {58: 32, 80: 48}   # font A characters per line
DOTS = {58: 384, 80: 576}    # printable dots per line at 203 dpi

# PC858 = Latin-1 letters plus the euro sign; German and Spanish texts fit in it.
CODEPAGE_NUMBER = 19
CODEPAGE_NAME = "CP858"
CODEPAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}


class StatusByteError(ProtocolError):
    """A DLE EOT answer that is not a valid status byte."""


class ReceiptLayoutError(DeviceError):
    """A receipt that cannot be laid out or encoded (a QR payload too long, say)."""


# --- status ---------------------------------------------------------------

def _one_status_byte(data: bytes, what: str) -> int:
    if len(data) != 1:
        raise StatusByteError(f"{what}: expected exactly one status byte, got {len(data)} ({data[:8].hex()})")
    value = data[0]
    if value & _FIXED_MASK != _FIXED_VALUE:
        raise StatusByteError(
            f"{what}: byte 0x{value:02x} is not a DLE EOT answer (bits 1 and 4 must be set, 0 and 7 clear);"
            " check the baud rate and that nothing else talks on the line")
    return value


def decode_printer_status(data: bytes) -> bool:
    """DLE EOT 1 answer -> True when the printer says it is offline."""
    return bool(_one_status_byte(data, "printer status (DLE EOT 1)") & OFFLINE_BIT)


def decode_paper_status(data: bytes) -> PaperState:
    """DLE EOT 4 answer -> paper state. Either bit of a pair counts: a half-set pair
    is read as the worse state, since the kiosk must never believe paper it lacks."""
    value = _one_status_byte(data, "paper status (DLE EOT 4)")
    if value & PAPER_OUT_BITS:
        return PaperState.OUT
    if value & NEAR_END_BITS:
        return PaperState.NEAR_END
    return PaperState.OK


def encode_printer_status(offline: bool) -> bytes:
    return bytes((_FIXED_VALUE | (OFFLINE_BIT if offline else 0),))


def encode_paper_status(paper: PaperState) -> bytes:
    bits = {PaperState.OK: 0, PaperState.NEAR_END: NEAR_END_BITS,
            PaperState.OUT: NEAR_END_BITS | PAPER_OUT_BITS}
    if paper not in bits:
        raise ValueError(f"a printer reports paper ok, nearEnd or out, not {paper!r}")
    return bytes((_FIXED_VALUE | bits[paper],))


def interpret_status(printer: bytes | None, paper: bytes | None, *,
                     silent_state: DeviceState, where: str) -> PrinterStatus:
    """Both DLE EOT answers (None = no answer) -> PrinterStatus. Never OK paper without an answer."""
    if printer is None and paper is None:
        return PrinterStatus(silent_state, PaperState.UNKNOWN,
                             f"no answer to DLE EOT from {where}: paper state unknown")
    try:
        offline = decode_printer_status(printer) if printer is not None else None
        paper_state = decode_paper_status(paper) if paper is not None else PaperState.UNKNOWN
    except StatusByteError as exc:
        return PrinterStatus(DeviceState.HARDWARE_ERROR, PaperState.UNKNOWN, f"{where}: {exc}")
    if paper_state is PaperState.OUT:
        return PrinterStatus(DeviceState.USER_ERROR, paper_state, "paper out: load a new roll")
    if offline:
        return PrinterStatus(DeviceState.OFFLINE, paper_state,
                             "printer reports itself offline (cover open, paper feed button or error)")
    details = []
    if offline is None:
        details.append(f"no answer to DLE EOT 1 from {where}")
    if paper is None:
        details.append(f"no answer to DLE EOT 4 from {where}: paper state unknown")
    if paper_state is PaperState.NEAR_END:
        details.append("paper near end: change the roll soon")
    return PrinterStatus(DeviceState.ONLINE, paper_state, "; ".join(details))


# --- layout ---------------------------------------------------------------

@dataclass(frozen=True)
class PrintLine:
    """One printed line, already fitted to the width (large text counts double)."""

    text: str
    align: Literal["left", "center", "right"] = "left"
    bold: bool = False
    large: bool = False


@dataclass(frozen=True)
class PrintQr:
    data: str


Laid = Union[PrintLine, PrintQr]


def columns_for(width_mm: int) -> int:
    if width_mm not in COLUMNS:
        raise ConfigurationError(f"printer width_mm must be 58 or 80, got {width_mm!r}")
    return COLUMNS[width_mm]


def _clean(text: str) -> str:
    # Control characters in receipt text would be taken as printer commands.
    return "".join(ch if ch.isprintable() else " " for ch in text)


def wrap(text: str, width: int) -> list[str]:
    """Words onto lines of at most `width` characters; a word longer than a line
    (an address, a txid) is cut into pieces rather than pushed past the edge."""
    lines: list[str] = []
    for paragraph in _clean_lines(text):
        current = ""
        for word in paragraph.split():
            while len(word) > width:
                if current:
                    lines.append(current)
                    current = ""
                lines.append(word[:width])
                word = word[width:]
            if not word:
                continue
            if not current:
                current = word
            elif len(current) + 1 + len(word) <= width:
                current += " " + word
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def _clean_lines(text: str) -> list[str]:
    # Not str.splitlines: it also splits on GS and FS, which must print as blanks.
    return [_clean(part) for part in text.replace("\r\n", "\n").split("\n")]


def _pair_lines(label: str, value: str, width: int) -> list[str]:
    label, value = " ".join(_clean(label).split()), " ".join(_clean(value).split())
    if len(label) + 1 + len(value) <= width:
        return [label + " " * (width - len(label) - len(value)) + value]
    # Too long for one line: label on its own, the value right-aligned below it.
    return wrap(label, width) + [piece.rjust(width) for piece in wrap(value, width)]


def layout_receipt(receipt: Receipt, width_mm: int) -> list[Laid]:
    columns = columns_for(width_mm)
    laid: list[Laid] = []
    for block in receipt.blocks:
        if isinstance(block, TextLine):
            width = columns // 2 if block.large else columns
            laid.extend(PrintLine(line, block.align, block.bold, block.large)
                        for line in wrap(block.text, width))
        elif isinstance(block, PairLine):
            laid.extend(PrintLine(line) for line in _pair_lines(block.label, block.value, columns))
        elif isinstance(block, Rule):
            char = _clean(block.char)[:1] or "-"
            laid.append(PrintLine(char * columns))
        elif isinstance(block, QrBlock):
            if block.data:
                laid.append(PrintQr(block.data))
            if block.caption:
                laid.extend(PrintLine(line, "center") for line in wrap(block.caption, columns))
        else:
            raise ReceiptLayoutError(f"receipt block {block!r} is not a TextLine, PairLine, QrBlock or Rule")
    return laid


# --- command bytes ---------------------------------------------------------

def _profile(width_mm: int) -> Profile:
    # python-escpos needs the paper width in dots to centre images; its default
    # profile leaves it unknown, so give it ours instead of editing the shared one.
    data = copy.deepcopy(get_profile_class("default").profile_data)
    data["media"] = {"dpi": 203, "width": {"mm": width_mm, "pixels": DOTS[width_mm]}}
    profile_class = type("KioskPaperProfile", (Profile,), {"profile_data": data})
    return profile_class(columns=COLUMNS[width_mm], features=data["features"])


def _qr_module_size(data: str, dots: int) -> int:
    modules = segno.make_qr(data, error="m", boost_error=False).symbol_size(border=1)[0]
    # About two thirds of the paper: big enough for a phone, with room to spare.
    return max(1, min(8, (dots * 2 // 3) // modules))


def _encode_qr(printer: Dummy, data: str, width_mm: int, native: bool) -> None:
    try:
        size = _qr_module_size(data, DOTS[width_mm])
    except segno.DataOverflowError as exc:
        raise ReceiptLayoutError(f"QR payload of {len(data)} characters is too long for a QR code") from exc
    # Centred by justification (ESC a 1), not by padding the image to the paper
    # width: half the bytes, which matters at 19200 baud.
    printer.set(align="center")
    if native:
        printer.qr(data, ec=QR_ECLEVEL_M, size=size, native=True)
        printer.text("\n")
        return
    while True:
        attempt = Dummy(profile=printer.profile)
        attempt.charcode(CODEPAGE_NAME)  # else its newlines would switch the printer to PC437
        try:
            attempt.qr(data, ec=QR_ECLEVEL_M, size=size, center=False)
        except ImageWidthError:
            # qrcode may pick a larger version than segno did; shrink the modules.
            if size == 1:
                raise ReceiptLayoutError(f"QR for {data[:20]!r}... does not fit {width_mm} mm paper") from None
            size -= 1
            continue
        except Exception as exc:  # qrcode raises its own DataOverflowError
            raise ReceiptLayoutError(f"cannot render QR for {data[:20]!r}...: {exc}") from exc
        printer._raw(attempt.output)
        return


def encode_receipt(receipt: Receipt, width_mm: int, *, native_qr: bool = False) -> bytes:
    """The bytes that print `receipt` and cut the paper (GS V)."""
    laid = layout_receipt(receipt, width_mm)
    printer = Dummy(profile=_profile(width_mm))
    printer.hw("INIT")
    printer.charcode(CODEPAGE_NAME)
    for item in laid:
        if isinstance(item, PrintLine):
            printer.set(align=item.align, bold=item.bold, normal_textsize=not item.large,
                        double_width=item.large, double_height=item.large)
            printer.text(item.text + "\n")
        else:
            printer.set(align="left", bold=False, normal_textsize=True)
            _encode_qr(printer, item.data, width_mm, native_qr)
    printer.set(align="left", bold=False, normal_textsize=True)
    printer.cut()
    return printer.output
