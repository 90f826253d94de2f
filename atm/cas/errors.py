"""Typed errors of the CAS link, below the three of atm.cas.interface.

The kiosk only needs to tell "retry later with the same id" (CasUnavailable and
its subclasses) from "the answer was refused" (CasRefused and its subclasses).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from atm.cas.interface import CasError, CasRefused, CasUnavailable


def plain_text(text: str, limit: int = 500) -> str:
    """`text` made safe for a log line, the SQLite store and a terminal: a lone UTF-16
    surrogate from a hostile answer (JSON's \\ud800) is shown escaped, never raised
    as UnicodeEncodeError where the refusal is being recorded."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def crash_site(exc: BaseException) -> str:
    """Where an unexpected exception came from, without its message: a message can echo
    what a hostile server sent or a secret a caller held, a type and a line cannot."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"


class NotPaired(CasError):
    """The state dir holds no pairing: a technician must scan the operator's pairing code."""


class PairingCodeError(CasError):
    """The text given as a pairing code is not one (wrong prefix, encoding, field or value)."""


class PairingFailed(CasError):
    """Pairing did not complete; the message says which step and why."""


class PinMismatch(CasUnavailable):
    """The server's public key is not the pinned one: nothing was sent to it.

    A subclass of CasUnavailable because the kiosk's answer is the same as for an
    outage: keep every id, send nothing, retry later (the real CAS may come back)."""


class AnswerMalformed(CasUnavailable):
    """The server answered something that is not the protocol (bad JSON, missing or
    wrong-typed field, too large). Nothing in it was used; retrying with the same id
    is safe because every request is idempotent."""


class AnswerTimeout(CasUnavailable):
    """The server accepted the connection but did not answer in time."""


class BundleRefused(CasRefused):
    """A configuration bundle was refused (signature, version, kiosk id, content)."""


class CommandRefused(CasRefused):
    """A remote command was refused (unsigned where a signature is needed, replayed, unknown)."""


class AddressRefused(CasRefused):
    """A sell deposit address does not derive from the operator's signed xpub."""


class NotConfigured(CasRefused):
    """No operator-signed configuration has been accepted yet, so nothing that routes money may run."""


class KeyFileError(CasError):
    """A key or certificate file is missing, unreadable, has loose permissions or the wrong content."""


class RecordRefused(CasRefused, ValueError):
    """A transaction record the outbox cannot key (no string id, no integer version)."""


class RateRefused(CasRefused):
    """The CAS's exchange rate lies outside the bounds the operator signed."""
