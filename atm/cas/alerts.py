"""Alerts for the operator: their vocabulary (kinds, severities) and the record that
travels in POST /v1/alerts. Pure: shared by the CAS client (durable outbox), the
in-process stand-in and the CAS simulator; no I/O here.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Mapping

# Any short token is a kind; these are the ones the kiosk and the CAS client raise
# (docs/cas-protocol.md section 10).
ALERT_KINDS = ("door_open", "tamper", "fraud_attempt", "wrong_pin", "cashbox_full", "paper_out", "note_parked",
               "bundle_refused", "pin_mismatch", "command_refused", "rate_refused", "address_refused",
               "cas_misbehaving")
ALERT_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SEVERITIES = ("info", "warning", "critical")


def plain_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A detail as plain JSON (Fiat, Decimal and the like become text), so a caller's
    value object can never make the durable write fail."""
    if not isinstance(detail, Mapping):
        raise ValueError(f"alert detail must be a mapping, got {type(detail).__name__}")
    return json.loads(json.dumps(dict(detail), default=str))


def make_alert(kind: str, detail: Mapping[str, Any] | None = None, severity: str = "warning") -> dict[str, Any]:
    """A new alert record with a fresh id; ValueError for a kind that is not a short
    lower-case token or a severity not in SEVERITIES."""
    if not isinstance(kind, str) or not ALERT_KIND_PATTERN.match(kind):
        raise ValueError(f"alert kind {kind!r}: expected a short lower-case token like 'door_open'")
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity {severity!r}: expected one of {SEVERITIES}")
    return {"id": str(uuid.uuid4()), "kind": kind, "severity": severity, "at": int(time.time()),
            "detail": plain_detail(detail or {})}
