"""In-process stand-ins for the hal device classes that have no wire-level
simulator yet (cash dispenser) and for fast kiosk-core tests (validator,
scanner, printer). They implement the hal interfaces directly, keep the same
control surface as the wire simulators, and never pretend to be hardware:
the composition root uses them only when configuration says driver = "standin".
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Mapping

from hal import (
    BillValidator, CashDispenser, Cassette, CodeScanned, CodeScanner, Completion, DeviceState,
    DeviceStatusChanged, DispenseCompleted, EventSink, Fiat, NoteCredited, NoteEscrowed, NoteRejected,
    NoteReturned, NoteStacked, PaperState, PrinterStatus, Receipt, ReceiptPrinter,
)
from hal.events import NoteOutcomeUnknown
from hal.errors import DeviceError
from hal.printer import PairLine, QrBlock, Rule, TextLine


class _Worker:
    """One thread that runs device-side steps in order, like a device's own firmware would."""

    def __init__(self, name: str) -> None:
        self._jobs: "queue.Queue[Callable[[], None] | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


class StandinValidator(BillValidator):
    def __init__(self, *, name: str = "validator", currency: str = "EUR",
                 notes: Iterable[int] = (500, 1000, 2000, 5000, 10000, 20000)) -> None:
        self.name = name
        self._denominations = [Fiat(n, currency) for n in notes]
        self._sink: EventSink | None = None
        self._recorder: Callable[[NoteCredited], None] | None = None
        self._worker: _Worker | None = None
        self._state = DeviceState.OFFLINE
        self._accept: set[Fiat] = set()
        self._enabled = False
        self._escrow: Fiat | None = None
        self._counterfeit_next = False
        self._stall_next: str | None = None         # stall_stacking(then): where the stalled note ends up
        self._stalled: tuple[Fiat, str] | None = None
        self._lose_ack = False
        self.cashbox: list[int] = []

    # hal.BillValidator
    def open(self, sink: EventSink) -> None:
        self._sink = sink
        self._worker = _Worker(f"{self.name}-standin")
        self._state = DeviceState.ONLINE

    def close(self) -> None:
        if self._worker:
            self._worker.stop()
            self._worker = None
        self._state = DeviceState.OFFLINE

    @property
    def state(self) -> DeviceState:
        return self._state

    def set_credit_recorder(self, recorder: Callable[[NoteCredited], None]) -> None:
        self._recorder = recorder

    @property
    def denominations(self) -> list[Fiat]:
        return list(self._denominations)

    def enable(self, accept: Iterable[Fiat] | None = None) -> None:
        self._accept = set(accept) if accept is not None else set(self._denominations)
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def stack(self) -> None:
        self._require_worker().submit(self._do_stack)

    def return_note(self) -> None:
        self._require_worker().submit(self._do_return)

    def resolve_note(self) -> None:
        """Answers from what this stand-in did with the stalled note (see stall_stacking)."""
        self._require_worker().submit(self._do_resolve)

    # control surface (same names as the wire simulators)
    def insert_note(self, minor: int) -> bool:
        """A customer pushes a note in. False when the device would not take it in at all."""
        value = Fiat(int(minor), self._denominations[0].currency)
        if not self._enabled or self._escrow is not None or self._state != DeviceState.ONLINE:
            return False
        if self._counterfeit_next:
            self._counterfeit_next = False
            self._require_worker().submit(lambda: self._emit(NoteRejected(device=self.name, reason="counterfeit")))
            return False
        if value not in self._accept:
            self._require_worker().submit(lambda: self._emit(NoteRejected(device=self.name, reason="inhibited denomination")))
            return False
        self._escrow = value
        self._require_worker().submit(lambda: self._emit(NoteEscrowed(device=self.name, value=value, code=str(minor))))
        return True

    def insert_counterfeit(self) -> None:
        self._counterfeit_next = True

    def stall_stacking(self, then: str) -> None:
        """The next note told to stack stalls mid-stack (no settled event). Asked with
        resolve_note(), the unit has it in the "stacker" (credited) or back in the
        "acceptor" (returned); stand-in extras: "unknown" (it cannot tell) and "silent"
        (it never answers)."""
        if then not in ("stacker", "acceptor", "unknown", "silent"):
            raise ValueError(f"stall_stacking(then={then!r}): expected stacker, acceptor, unknown or silent")
        self._stall_next = then

    def lose_host_ack_once(self) -> None:
        """The next settled event's acknowledgement is lost: the unit reports it again."""
        self._lose_ack = True

    def jam(self, where: str = "acceptor") -> None:
        self._state = DeviceState.HARDWARE_ERROR
        self._emit(DeviceStatusChanged(device=self.name, state=self._state, detail=f"{where} jam"))

    def clear_jam(self) -> None:
        self._state = DeviceState.ONLINE
        self._emit(DeviceStatusChanged(device=self.name, state=self._state, detail=""))

    def state_info(self) -> dict:
        return {"state": self._state.value, "enabled": self._enabled,
                "escrow": self._escrow.minor if self._escrow else None, "cashbox": list(self.cashbox),
                "stalled": self._stalled[0].minor if self._stalled else None}

    # device-side steps, in the worker thread
    def _do_stack(self) -> None:
        note, self._escrow = self._escrow, None
        if note is None:
            return
        if self._stall_next is not None:
            self._stalled, self._stall_next = (note, self._stall_next), None
            return
        self._settle(note)

    def _settle(self, note: Fiat) -> None:
        event = NoteCredited(device=self.name, value=note, code=str(note.minor))
        repeats = 2 if self._lose_ack else 1
        self._lose_ack = False
        for _ in range(repeats):        # a lost ACK: the unit reports the same settled event again
            if self._recorder is not None:
                try:
                    self._recorder(event)       # durable before the "device" is acknowledged
                except Exception:           # not acknowledged: the unit keeps the note unsettled
                    self._stalled = (note, "stacker")
                    return
            self._emit(event)
        self.cashbox.append(note.minor)
        self._emit(NoteStacked(device=self.name, value=note))

    def _do_resolve(self) -> None:
        stalled, self._stalled = self._stalled, None
        if stalled is None:
            return
        note, then = stalled
        if then == "stacker":
            self._settle(note)
        elif then == "acceptor":
            self._emit(NoteReturned(device=self.name, value=note, reason="returned after a stacking fault"))
        elif then == "unknown":
            self._emit(NoteOutcomeUnknown(device=self.name, value=note, code=str(note.minor),
                                          detail="the unit reset mid-stack and cannot tell where the note went"))

    def _do_return(self) -> None:
        note, self._escrow = self._escrow, None
        self._emit(NoteReturned(device=self.name, value=note, reason="host decision"))

    def _emit(self, event) -> None:
        if self._sink is not None:
            self._sink(event)

    def _require_worker(self) -> _Worker:
        if self._worker is None:
            raise DeviceError(f"{self.name}: stand-in validator is not open")
        return self._worker


class StandinScanner(CodeScanner):
    def __init__(self, *, name: str = "scanner") -> None:
        self.name = name
        self._sink: EventSink | None = None
        self._scanning = False
        self._open = False

    def open(self, sink: EventSink) -> None:
        self._sink, self._open = sink, True

    def close(self) -> None:
        self._open = self._scanning = False

    @property
    def state(self) -> DeviceState:
        return DeviceState.ONLINE if self._open else DeviceState.OFFLINE

    def start_scanning(self) -> None:
        self._scanning = True

    def stop_scanning(self) -> None:
        self._scanning = False

    def present(self, payload: str, distortion: str = "none") -> bool:
        """Show a code to the scanner; read only while scanning, like a real one."""
        if self._scanning and self._sink is not None:
            self._sink(CodeScanned(device=self.name, text=payload, decoder="standin"))
            return True
        return False

    def state_info(self) -> dict:
        return {"scanning": self._scanning}


def receipt_text(receipt: Receipt, width: int = 32) -> str:
    """Plain text of a receipt, for the stand-in printer and logs."""
    lines: list[str] = []
    for block in receipt.blocks:
        if isinstance(block, TextLine):
            text = block.text
            lines.append(text.center(width) if block.align == "center" else
                         text.rjust(width) if block.align == "right" else text)
        elif isinstance(block, PairLine):
            gap = width - len(block.label) - len(block.value)
            lines.append(block.label + " " * gap + block.value if gap > 0 else f"{block.label}\n  {block.value}")
        elif isinstance(block, QrBlock):
            lines.append(f"[QR: {block.data}]")
            if block.caption:
                lines.append(block.caption)
        elif isinstance(block, Rule):
            lines.append(block.char * width)
    return "\n".join(lines)


class StandinPrinter(ReceiptPrinter):
    def __init__(self, *, name: str = "printer", width_chars: int = 32) -> None:
        self.name = name
        self.width = width_chars
        self._paper = PaperState.OK
        self._open = False
        self.printed: list[str] = []

    def open(self, sink: EventSink) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    @property
    def state(self) -> DeviceState:
        return DeviceState.ONLINE if self._open else DeviceState.OFFLINE

    def status(self) -> PrinterStatus:
        return PrinterStatus(self.state, self._paper)

    def print_receipt(self, receipt: Receipt) -> None:
        if self._paper == PaperState.OUT:
            raise DeviceError(f"{self.name}: paper out")
        self.printed.append(receipt_text(receipt, self.width))

    def paper(self, state: str) -> None:
        self._paper = {"ok": PaperState.OK, "near_end": PaperState.NEAR_END, "out": PaperState.OUT}[state]

    def state_info(self) -> dict:
        return {"paper": self._paper.value, "printed": len(self.printed)}


class StandinDispenser(CashDispenser):
    """Pays out from configured cassettes; `fail_next(exited)` makes the next dispense stop short."""

    def __init__(self, *, name: str = "dispenser", currency: str = "EUR",
                 cassettes: Mapping[str, tuple[int, int]] = {"upper": (2000, 100), "lower": (5000, 100)}) -> None:
        self.name = name
        self._cassettes = [Cassette(cid, Fiat(value, currency)) for cid, (value, _) in cassettes.items()]
        self._stock = {cid: count for cid, (_, count) in cassettes.items()}
        self._sink: EventSink | None = None
        self._last: DispenseCompleted | None = None
        self._short: int | None = None

    def open(self, sink: EventSink) -> None:
        self._sink = sink

    def close(self) -> None:
        self._sink = None

    @property
    def state(self) -> DeviceState:
        return DeviceState.ONLINE if self._sink else DeviceState.OFFLINE

    @property
    def cassettes(self) -> list[Cassette]:
        return list(self._cassettes)

    def dispense(self, request_id: str, plan: Mapping[str, int]) -> None:
        exited: dict[str, int] = {}
        completion = Completion.SUCCESS
        for cid, want in plan.items():
            give = min(want, self._stock.get(cid, 0))
            if self._short is not None:
                give, self._short, completion = min(give, self._short), None, Completion.HARDWARE_ERROR
            self._stock[cid] = self._stock.get(cid, 0) - give
            exited[cid] = give
            if give < want and completion == Completion.SUCCESS:
                completion = Completion.USER_ERROR
        self._last = DispenseCompleted(device=self.name, request_id=request_id, completion=completion,
                                       exited=exited, rejected={cid: 0 for cid in plan})
        if self._sink:
            self._sink(self._last)

    def last_result(self, request_id: str) -> DispenseCompleted | None:
        return self._last if self._last and self._last.request_id == request_id else None

    def fail_next(self, exited: int = 0) -> None:
        self._short = exited

    def state_info(self) -> dict:
        return {"stock": dict(self._stock)}
