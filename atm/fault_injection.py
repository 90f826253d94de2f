"""Deliberate crashes at named write-ahead points, for the crash-safety tests.

`ATM_CRASH_AT=credit_recorded:2` kills the process with SIGKILL right after the
second `credit_recorded` fact is durable. Unset (always, on a real kiosk), it
does nothing. SIGKILL rather than an exception: a power cut runs no handlers.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "ATM_CRASH_AT"


class CrashPoints:
    def __init__(self, spec: str | None = None) -> None:
        spec = os.environ.get(ENV, "") if spec is None else spec
        self._target: str | None = None
        self._nth = 1
        if spec:
            name, _, nth = spec.partition(":")
            self._target = name.strip()
            self._nth = int(nth) if nth else 1
        self._seen = 0
        self._lock = threading.Lock()

    def reached(self, point: str) -> None:
        if point != self._target:
            return
        with self._lock:
            self._seen += 1
            if self._seen == self._nth:
                os.kill(os.getpid(), signal.SIGKILL)
