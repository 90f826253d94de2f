"""A virtual ESC/POS receipt printer: the device side of drivers/escpos, on a pty or a loopback socket.

It parses the byte stream a host sends (text, styles, alignment, raster images,
native QR, cut), turns each cut receipt into text and a PNG, and answers DLE EOT
from its switches (paper ok / near end / out, offline, silent). Status bytes come
from drivers.escpos.frames, so host and device cannot disagree on a bit.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import segno
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from drivers.escpos import frames
from hal.status import PaperState
from simulators.serial_endpoint import SerialEndpoint

log = logging.getLogger(__name__)

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
# A declared length above this is taken as garbage, not waited for: a real
# receipt never carries a single command this large.
_MAX_COMMAND = 1 << 21
_CELL = (12, 24)  # font A character cell in dots
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


@dataclass
class _Segment:
    text: str
    bold: bool
    width: int    # character magnification across
    height: int   # and down


@dataclass
class _TextRow:
    segments: list[_Segment]
    align: str

    def cells(self) -> int:
        return sum(len(s.text) * s.width for s in self.segments)


@dataclass
class _ImageRow:
    image: Image.Image   # mode "1"-like L image, black = 0
    align: str
    label: str


@dataclass
class _Style:
    bold: bool = False
    width: int = 1
    height: int = 1
    align: str = "left"
    codepage: int = 0


@dataclass
class PrintedReceipt:
    rows: list[_TextRow | _ImageRow] = field(default_factory=list)


def _qr_text(image: Image.Image) -> str | None:
    """Read a QR back from a printed raster, so tests can check the data round trip."""
    # A quiet zone of white around the code makes the decoder's life easy.
    padded = Image.new("L", (image.width + 40, image.height + 40), 255)
    padded.paste(image, (20, 20))
    try:
        results = zxingcpp.read_barcodes(padded, formats=zxingcpp.BarcodeFormat.QRCode)
    except Exception:  # a decoder hiccup on garbage must not stop the printer
        log.debug("QR decoding failed", exc_info=True)
        return None
    return results[0].text if results else None


class EscposStreamParser:
    """Incremental ESC/POS parser. Never raises on any input: unknown commands are
    skipped the way a printer skips them, and a command split across reads waits
    for its remaining bytes. The same bytes give the same receipts however chunked."""

    def __init__(self, columns: int, can_print: Callable[[], bool] = lambda: True) -> None:
        self.columns = columns
        self._can_print = can_print
        self._buffer = bytearray()
        self._style = _Style()
        self._line: list[_Segment] = []
        self._line_align: str | None = None
        self._current = PrintedReceipt()
        self._qr_store = b""
        self._qr_module = 3
        self.receipts: list[PrintedReceipt] = []
        self.overflowed_lines = 0
        self.skipped_commands = 0

    # --- input ------------------------------------------------------------

    def feed(self, data: bytes) -> list[int]:
        """Consume bytes; returns the DLE EOT requests (n values) met, in order."""
        self._buffer += data
        requests: list[int] = []
        pos = 0
        while pos < len(self._buffer):
            used = self._step(pos, requests)
            if used is None:
                break
            pos += used
        del self._buffer[:pos]
        return requests

    def _need(self, pos: int, count: int) -> bytes | None:
        if pos + count > len(self._buffer):
            return None
        return bytes(self._buffer[pos:pos + count])

    def _step(self, pos: int, requests: list[int]) -> int | None:
        byte = self._buffer[pos]
        if byte == 0x0A:
            self._end_line()
            return 1
        if byte == 0x09:
            filled = sum(len(s.text) for s in self._line)
            self._add_text(" " * (8 - filled % 8))
            return 1
        if byte == DLE:
            return self._dle(pos, requests)
        if byte == ESC:
            return self._esc(pos)
        if byte == GS:
            return self._gs(pos)
        if byte == FS:
            head = self._need(pos, 2)
            return None if head is None else 2
        if byte < 0x20:
            return 1  # CR and other controls have no effect in standard mode
        end = pos
        while end < len(self._buffer) and self._buffer[end] >= 0x20:
            end += 1
        codec = frames.CODEPAGES.get(self._style.codepage, "cp437")
        self._add_text(bytes(self._buffer[pos:end]).decode(codec, errors="replace"))
        return end - pos

    def _dle(self, pos: int, requests: list[int]) -> int | None:
        head = self._need(pos, 3)
        if head is None:
            return None
        if head[1] == frames.EOT and 1 <= head[2] <= 4:
            requests.append(head[2])
            return 3
        return 1

    def _esc(self, pos: int) -> int | None:
        head = self._need(pos, 2)
        if head is None:
            return None
        cmd = head[1]
        one_arg = b"!EG-atdJMV{ 3RUr%=cTp"
        if cmd == ord("@"):
            self._style = _Style()
            self._line, self._line_align = [], None  # ESC @ clears the unprinted line
            return 2
        if cmd in b"im":  # partial cut on printers that keep the old command
            self._cut()
            return 2
        if cmd in b"2<":
            return 2
        if cmd in b"c":
            return 4 if self._need(pos, 4) is not None else None
        if cmd == ord("p"):
            return 5 if self._need(pos, 5) is not None else None
        if cmd == ord("*"):
            args = self._need(pos, 5)
            if args is None:
                return None
            total = 5 + (args[3] | args[4] << 8) * (3 if args[2] in (32, 33) else 1)
            return total if self._need(pos, total) is not None else None
        if cmd in b"$\\":
            return 4 if self._need(pos, 4) is not None else None
        if cmd in one_arg:
            args = self._need(pos, 3)
            if args is None:
                return None
            self._esc_with_arg(cmd, args[2])
            return 3
        self.skipped_commands += 1
        return 2

    def _esc_with_arg(self, cmd: int, n: int) -> None:
        style = self._style
        if cmd == ord("!"):
            style.bold, style.height, style.width = bool(n & 0x08), 2 if n & 0x10 else 1, 2 if n & 0x20 else 1
        elif cmd in b"EG":
            style.bold = bool(n & 1)
        elif cmd == ord("a"):
            style.align = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}.get(n, style.align)
        elif cmd == ord("t"):
            style.codepage = n
        elif cmd == ord("d"):
            if self._line:
                self._end_line()
                n -= 1
            for _ in range(max(n, 0)):
                self._end_line()
        elif cmd == ord("J") and self._line:
            self._end_line()

    def _gs(self, pos: int) -> int | None:
        head = self._need(pos, 2)
        if head is None:
            return None
        cmd = head[1]
        if cmd == ord("V"):
            args = self._need(pos, 3)
            if args is None:
                return None
            size = 4 if args[2] in (65, 66, 97, 98, 103, 104) else 3
            if self._need(pos, size) is None:
                return None
            self._cut()
            return size
        if cmd == ord("!"):
            args = self._need(pos, 3)
            if args is None:
                return None
            self._style.width = min((args[2] >> 4) + 1, 8)
            self._style.height = min((args[2] & 0x0F) + 1, 8)
            return 3
        if cmd == ord("v"):
            return self._raster(pos)
        if cmd == ord("("):
            args = self._need(pos, 5)
            if args is None:
                return None
            length = args[3] | args[4] << 8
            body = self._need(pos + 5, length)
            if body is None:
                return None
            if args[2] == ord("k"):
                self._two_d(body)
            return 5 + length
        if cmd == ord("k"):
            return self._barcode(pos)
        if cmd in b"LW$\\P":
            return 4 if self._need(pos, 4) is not None else None
        if cmd in b"BbHhwfaIrE":
            return 3 if self._need(pos, 3) is not None else None
        self.skipped_commands += 1
        return 2

    def _raster(self, pos: int) -> int | None:
        args = self._need(pos, 8)
        if args is None:
            return None
        if args[2] not in (0x30, 0x00):
            self.skipped_commands += 1
            return 3
        width_bytes = args[4] | args[5] << 8
        height = args[6] | args[7] << 8
        size = width_bytes * height
        if size > _MAX_COMMAND:
            self.skipped_commands += 1
            return 8
        data = self._need(pos + 8, size)
        if data is None:
            return None
        if size:
            bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).reshape(height, width_bytes * 8)
            image = Image.fromarray(np.where(bits == 1, 0, 255).astype(np.uint8))
            if args[3] & 1:
                image = image.resize((image.width * 2, image.height), Image.NEAREST)
            if args[3] & 2:
                image = image.resize((image.width, image.height * 2), Image.NEAREST)
            text = _qr_text(image)
            label = f"[QR: {text}]" if text is not None else f"[QR image {image.width}x{image.height}]"
            self._add_image(image, label)
        return 8 + size

    def _two_d(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != 0x31:  # cn 49 = QR; other symbologies are skipped
            return
        fn = body[1]
        if fn == 67 and len(body) >= 3:
            self._qr_module = max(1, min(body[2], 16))
        elif fn == 80:
            self._qr_store = body[3:]
        elif fn == 81 and self._qr_store:
            text = self._qr_store.decode("utf-8", errors="replace")
            try:
                qr = segno.make_qr(text, error="m", boost_error=False)
                rows = [[0 if dark else 255 for dark in row] for row in qr.matrix_iter(scale=self._qr_module, border=1)]
                image = Image.fromarray(np.array(rows, dtype=np.uint8))
            except Exception:  # data a printer could not encode prints nothing
                log.debug("native QR not renderable", exc_info=True)
                return
            self._add_image(image, f"[QR: {text}]")

    def _barcode(self, pos: int) -> int | None:
        head = self._need(pos, 3)
        if head is None:
            return None
        kind = head[2]
        if kind <= 6:
            # Look for the NUL only within a fixed window, so the outcome never
            # depends on how the stream was split into reads.
            window = 255
            end = self._buffer.find(b"\x00", pos + 3, pos + 3 + window)
            if end < 0:
                return None if len(self._buffer) - pos < 3 + window else 3
            return end + 1 - pos
        body_length = self._need(pos, 4)
        if body_length is None:
            return None
        length = body_length[3]
        return 4 + length if self._need(pos, 4 + length) is not None else None

    # --- model ------------------------------------------------------------

    def _add_text(self, text: str) -> None:
        style = self._style
        for char in text:
            if self._line_cells() + style.width > self.columns:
                # The printer wraps on its own; a receipt that relies on it is laid out wrong.
                self.overflowed_lines += 1
                self._end_line()
            if self._line_align is None:
                self._line_align = style.align
            last = self._line[-1] if self._line else None
            if last and (last.bold, last.width, last.height) == (style.bold, style.width, style.height):
                last.text += char
            else:
                self._line.append(_Segment(char, style.bold, style.width, style.height))

    def _line_cells(self) -> int:
        return sum(len(s.text) * s.width for s in self._line)

    def _end_line(self) -> None:
        row = _TextRow(self._line, self._line_align or self._style.align)
        self._line, self._line_align = [], None
        if self._can_print():
            self._current.rows.append(row)

    def _add_image(self, image: Image.Image, label: str) -> None:
        if self._line:
            self._end_line()
        if self._can_print():
            self._current.rows.append(_ImageRow(image, self._style.align, label))

    def _cut(self) -> None:
        if self._line:
            self._end_line()
        if self._current.rows:
            self.receipts.append(self._current)
        self._current = PrintedReceipt()


def receipt_text(receipt: PrintedReceipt, columns: int) -> str:
    """What a person reads on the paper, one line per printed line, alignment applied."""
    lines = []
    for row in receipt.rows:
        if isinstance(row, _ImageRow):
            lines.append(row.label)
            continue
        content = "".join(s.text for s in row.segments)
        free = max(columns - row.cells(), 0)
        pad = {"center": free // 2, "right": free}.get(row.align, 0)
        lines.append((" " * pad + content).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _font(bold: bool, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = _FONT_DIR / ("DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf")
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size)


def render_png(receipt: PrintedReceipt, dots: int) -> Image.Image:
    """The receipt as the paper would look: 203 dpi, black on white."""
    columns = dots // _CELL[0]
    heights = [row.image.height if isinstance(row, _ImageRow)
               else _CELL[1] * max((s.height for s in row.segments), default=1) for row in receipt.rows]
    margin = 16
    page = Image.new("L", (dots, sum(heights) + 2 * margin), 255)
    draw = ImageDraw.Draw(page)
    y = margin
    for row, height in zip(receipt.rows, heights):
        if isinstance(row, _ImageRow):
            free = max(dots - row.image.width, 0)
            page.paste(row.image, ({"center": free // 2, "right": free}.get(row.align, 0), y))
        else:
            free = max(columns - row.cells(), 0)
            x = {"center": free // 2, "right": free}.get(row.align, 0) * _CELL[0]
            for segment in row.segments:
                font = _font(segment.bold, 20 * segment.height)
                step = _CELL[0] * segment.width
                for char in segment.text:
                    draw.text((x, y + height - _CELL[1] * segment.height), char, fill=0, font=font)
                    x += step
        y += height
    return page


class VirtualPrinter:
    """A receipt printer you can reach as `socket://127.0.0.1:PORT` or a pty path."""

    def __init__(self, width_mm: int = 80, *, on_receipt: Callable[[int], None] | None = None) -> None:
        self.width_mm = width_mm
        self.columns = frames.columns_for(width_mm)
        self._lock = threading.Condition()
        self._paper = PaperState.OK
        self._offline = False
        self._answering = True
        self._parser = EscposStreamParser(self.columns, self._can_print)
        self._status_requests = 0
        self._bytes_received = 0
        self._on_receipt = on_receipt
        self._link = SerialEndpoint()
        self.url: str | None = None

    # --- control surface --------------------------------------------------

    def paper(self, state: Literal["ok", "near_end", "out"]) -> None:
        states = {"ok": PaperState.OK, "near_end": PaperState.NEAR_END, "out": PaperState.OUT}
        if state not in states:
            raise ValueError(f"paper state must be ok, near_end or out, got {state!r}")
        with self._lock:
            self._paper = states[state]

    def set_offline(self, on: bool) -> None:
        with self._lock:
            self._offline = bool(on)

    def answer_status(self, on: bool) -> None:
        """Off = a one-way link: DLE EOT requests get no answer."""
        with self._lock:
            self._answering = bool(on)

    def unplug(self) -> None:
        """Pull the cable (or the power) until replug(): over TCP the host's connection drops
        and new ones are refused; on a pty started with a link the pty and its link vanish."""
        self._link.unplug()

    def replug(self) -> None:
        """Cable back in: the printer takes connections again at the same URL."""
        self._link.replug()

    def state(self) -> dict:
        with self._lock:
            return {
                "paper": {PaperState.NEAR_END: "near_end"}.get(self._paper, self._paper.value),
                "offline": self._offline,
                "answering_status": self._answering,
                "receipts_printed": len(self._parser.receipts),
                "status_requests": self._status_requests,
                "bytes_received": self._bytes_received,
                "overflowed_lines": self._parser.overflowed_lines,
                "url": self.url,
                "plugged": self._link.plugged,
                "connections": self._link.connections,
            }

    def receipts(self) -> list[str]:
        with self._lock:
            return [receipt_text(r, self.columns) for r in self._parser.receipts]

    def save_png(self, index: int, path: str | os.PathLike) -> None:
        with self._lock:
            receipt = self._parser.receipts[index]
            image = render_png(receipt, frames.DOTS[self.width_mm])
        image.save(path, format="PNG")

    def wait_for_receipts(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` receipts are cut or the timeout ends (for tests and tools)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._parser.receipts) >= count, timeout)

    def feed(self, data: bytes) -> bytes:
        """Process bytes as if received on the wire; returns the printer's answer bytes."""
        with self._lock:
            before = len(self._parser.receipts)
            self._bytes_received += len(data)
            requests = self._parser.feed(data)
            self._status_requests += len(requests)
            answer = b"".join(self._answer(n) for n in requests) if self._answering else b""
            after = len(self._parser.receipts)
            self._lock.notify_all()
        if self._on_receipt is not None:
            for index in range(before, after):
                self._on_receipt(index)
        return answer

    # --- transport --------------------------------------------------------

    def start(self, transport: Literal["tcp", "pty"] = "tcp", port: int = 0, *, link: str | None = None) -> str:
        """Serve on 127.0.0.1:`port` or a pty (through the symlink `link` if given, which
        unplug() needs on a pty); returns the URL the host opens."""
        if self.url is not None:
            raise RuntimeError(f"virtual printer already running at {self.url}")
        self.url = self._link.open(transport, port, serve=self._serve, name="virtual-printer", link=link)
        return self.url

    def stop(self) -> None:
        self._link.close(join_timeout=5)
        self.url = None

    def __enter__(self) -> "VirtualPrinter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals --------------------------------------------------------

    def _can_print(self) -> bool:
        return self._paper is not PaperState.OUT and not self._offline

    def _answer(self, n: int) -> bytes:
        paper_out = self._paper is PaperState.OUT
        if n == frames.STATUS_PRINTER:
            return frames.encode_printer_status(self._offline or paper_out)
        if n == frames.STATUS_PAPER:
            return frames.encode_paper_status(self._paper)
        if n == frames.STATUS_OFFLINE_CAUSE:
            return bytes((0x12 | (0x04 if self._offline else 0) | (0x20 if paper_out else 0),))
        return bytes((0x12,))

    def _serve(self) -> None:
        link = self._link
        while link.serving():
            data = link.read(0.1)
            if data:
                answer = self.feed(data)
                if answer:
                    link.write(answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.printer",
                                     description="Virtual ESC/POS printer on loopback; writes each receipt as PNG and text.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT (9100 like a network printer)")
    where.add_argument("--pty", action="store_true", help="open a pty and print its path")
    parser.add_argument("--width-mm", type=int, choices=(58, 80), default=80)
    parser.add_argument("--out", default="printed-receipts", help="folder for receipt-N.png and receipt-N.txt")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> None:
        printer.save_png(index, out / f"receipt-{index + 1}.png")
        (out / f"receipt-{index + 1}.txt").write_text(printer.receipts()[index], encoding="utf-8")
        print(f"receipt {index + 1} -> {out / f'receipt-{index + 1}.png'}", flush=True)

    printer = VirtualPrinter(args.width_mm, on_receipt=write)
    url = printer.start("pty" if args.pty else "tcp", port=args.tcp if args.tcp is not None else 9100)
    print(f"virtual printer ({args.width_mm} mm) at {url}; receipts go to {out}/; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        printer.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
