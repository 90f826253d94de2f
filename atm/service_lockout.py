"""The technician PIN guard: every attempt checked off the event loop, a lockout that
grows after five wrong PINs, kept across restarts.

The count of wrong attempts is durable (a small file in the state folder, mode 0600,
written before the answer is given), so pulling the power does not reset the
lockout. Lockout deadlines run on the monotonic clock; after a restart the full delay
for the count on file starts again, so stepping the wall clock gains a guesser
nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from atm.pins import check_pin

FREE_ATTEMPTS = 5                  # wrong PINs before the first delay
FIRST_DELAY_S = 30.0
MAX_DELAY_S = 3600.0


def lockout_delay(failures: int) -> float:
    """Seconds a technician must wait after `failures` wrong PINs in a row: nothing for
    the first four, then 30 s, doubling with each further wrong PIN, at most an hour."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures - FREE_ATTEMPTS))


@dataclass(frozen=True)
class PinVerdict:
    ok: bool
    locked_for_s: float            # > 0: the attempt was not even checked; try again after this
    failures: int                  # wrong PINs in a row, after this attempt

    @property
    def message(self) -> str:
        if self.ok:
            return ""
        if self.locked_for_s > 0:
            return f"Too many wrong PINs. Try again in {_human(self.locked_for_s)}."
        wait = lockout_delay(self.failures)
        if wait > 0:
            return f"Wrong PIN. The PIN pad is locked for {_human(wait)}."
        left = FREE_ATTEMPTS - self.failures
        return f"Wrong PIN. {left} attempt{'s' if left != 1 else ''} left before the PIN pad locks."


class PinGuard:
    """Checks PIN attempts against a hash, with a persisted, growing lockout."""

    def __init__(self, state_file: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._file = Path(state_file)
        self._clock = clock
        self._failures = self._load()
        # After a restart the delay for the count on file runs again from now.
        self._locked_until = self._clock() + lockout_delay(self._failures)
        self._lock = asyncio.Lock()

    @property
    def failures(self) -> int:
        return self._failures

    def locked_for(self) -> float:
        return max(0.0, self._locked_until - self._clock())

    async def attempt(self, pin: str, pin_hash: str | None) -> PinVerdict:
        """Check one attempt. The slow hash runs in a thread, so the kiosk's loop keeps
        serving the screen; attempts are taken one at a time, so two taps cannot both
        slip through one free attempt."""
        async with self._lock:
            wait = self.locked_for()
            if wait > 0:
                return PinVerdict(False, wait, self._failures)
            ok = await asyncio.to_thread(check_pin, pin if isinstance(pin, str) else "", pin_hash)
            self._failures = 0 if ok else self._failures + 1
            self._save()           # durable before the answer: a power cut cannot forget a wrong PIN
            self._locked_until = self._clock() + lockout_delay(self._failures)
            return PinVerdict(ok, 0.0, self._failures)

    def _load(self) -> int:
        try:
            data = json.loads(self._file.read_text())
            failures = data["failures"]
            if isinstance(failures, int) and not isinstance(failures, bool) and failures >= 0:
                return failures
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError):
            pass
        # An unreadable file is treated as locked, never as a fresh start: corrupting it
        # must not reset a guesser's count.
        return FREE_ATTEMPTS

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"failures": self._failures}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._file)


def _human(seconds: float) -> str:
    seconds = int(seconds + 0.999)
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"
