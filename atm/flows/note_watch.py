"""A note on its way: every note told to stack must settle within a bound.

When the settled event does not come, the watch asks the device (resolve_note(),
non-blocking; the answer is a NoteCredited, NoteReturned or NoteOutcomeUnknown
event); when the device does not answer within a second bound, or cannot tell,
the note is parked in the journal with its amount for the operator. No screen
waits for ever and no note changes owner. Timers post their expiry through the
kiosk's one event queue; nothing here touches screens or the state table.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from atm.flows.base import Alert
from atm.journal import Journal
from hal import BillValidator, Fiat
from hal.errors import DeviceError

log = logging.getLogger("atm.flows.note_watch")


@dataclass(frozen=True)
class NoteOverdue:
    """Timer expiry (phase 1: ask the device; phase 2: the device did not answer)."""

    token: int
    device: str
    phase: int


class NoteWatch:
    def __init__(self, journal: Journal, validator: BillValidator, alert: Alert, post: Callable[[Any], None],
                 settle_bound_s: float = 15.0, resolve_bound_s: float = 5.0) -> None:
        self.journal = journal
        self.validator = validator
        self.alert = alert
        self.post = post
        self.settle_bound_s = settle_bound_s
        self.resolve_bound_s = resolve_bound_s
        self._token = 0
        self._timer: asyncio.TimerHandle | None = None
        self._resolving: str | None = None           # device asked what became of a stalled note

    def watch(self, device: str) -> None:
        """STACK went out: its settled event must come within the bound."""
        self.stop()
        self._arm(self.settle_bound_s, NoteOverdue(self._token, device, 1))

    def stop(self) -> None:
        self._token += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, seconds: float, item: NoteOverdue) -> None:
        try:
            self._timer = asyncio.get_running_loop().call_later(seconds, self.post, item)
        except RuntimeError:            # no loop: nothing is running, nothing to watch
            self._timer = None

    def settled(self, device: str) -> bool:
        """A settled or returned note that leaves nothing of this device on its way ends the
        watch. True when it was the device's answer to resolve_note()."""
        if self.journal.unresolved_on(device):
            return False
        self.stop()
        resolving, self._resolving = self._resolving, None
        return resolving == device

    async def overdue(self, item: NoteOverdue) -> tuple[str, Fiat] | None:
        """A timer expired. Returns (transaction, amount) when the note was parked."""
        if item.token != self._token or not self.journal.unresolved_on(item.device):
            return None
        if item.phase == 1:
            self.alert("note_stalled", f"{item.device}: no settled event {self.settle_bound_s:g} s after STACK; "
                       "asking the device what became of the note", "warning")
            self._resolving = item.device
            try:
                await asyncio.to_thread(self.validator.resolve_note)
            except DeviceError as exc:
                log.warning("resolve_note on %s failed: %s", item.device, exc)
            if item.token == self._token:
                self._arm(self.resolve_bound_s, NoteOverdue(item.token, item.device, 2))
            return None
        return self.park(item.device, f"the device did not answer within {self.resolve_bound_s:g} s")

    def park(self, device: str, detail: str) -> tuple[str, Fiat] | None:
        """Nobody can tell where the note went: parked with its amount for the operator."""
        self.stop()
        self._resolving = None
        tx_id, value = self.journal.note_unresolved(device, detail)
        if tx_id is None or value is None:
            return None
        self.alert("note_parked", f"{device}: note of {value} in {tx_id} parked for reconciliation ({detail})",
                   "critical")
        return tx_id, value
