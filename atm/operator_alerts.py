"""How an alert reaches the operator: a log line, a fact in the journal (durable, shown by the
service menu), and the CAS link's durable upload queue. What to alert about, and what the kiosk
does next, stay with the caller (atm.kiosk, which owns the event loop and its tasks).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine

from atm.journal import Journal, JournalWriteError

log = logging.getLogger("atm.operator_alerts")

# spawn(coro, name): the kiosk's way to run background work it cancels at stop
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class OperatorAlerts:
    def __init__(self, journal: Journal, spawn: Spawn) -> None:
        self.journal = journal
        self.spawn = spawn

    def send(self, cas: Any, kind: str, text: str, severity: str, tx_id: str | None, *,
             journal_works: bool) -> str | None:
        """Log, journal (unless the journal already failed) and queue for `cas`, the link the
        caller holds at this moment (not kept here: the kiosk's link is a plain attribute that its
        owner may set). Returns the journal's error if this write failed; the alert still goes to
        the CAS, which may then be the only place it lands."""
        log.warning("alert %s (%s): %s", kind, severity, text)
        failed: str | None = None
        if journal_works:
            try:
                self.journal.record_fact("alert", tx_id, alert=kind, text=text, severity=severity)
            except JournalWriteError as exc:
                failed = str(exc)
        coro = self._upload(cas, kind, {"text": text, "tx_id": tx_id}, severity)
        try:
            self.spawn(coro, "alert-upload")
        except RuntimeError:                    # no running loop (shutting down): journaled anyway
            coro.close()
        return failed

    @staticmethod
    async def _upload(cas: Any, kind: str, detail: dict[str, Any], severity: str) -> None:
        """Hand one alert to the CAS link's durable queue. A failure here is logged and
        never raised as another alert: that alert's upload would fail the same way, for ever."""
        try:
            if (upload := getattr(cas, "report_alert", None)) is not None:
                await upload(kind, detail, severity)
            elif (upload := getattr(cas, "report_event", None)) is not None:
                await upload("alert", {"kind": kind, "severity": severity, **detail})
        except Exception as exc:
            log.error("alert %s could not be queued for the CAS: %s (it is in the journal)", kind,
                      type(exc).__name__)
