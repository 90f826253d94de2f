"""Remote commands from the CAS and the rule for each: deactivate is always obeyed
(failing safe costs nothing), activate and unpair only with the operator's signature,
for this kiosk, with a sequence number higher than any obeyed before (no replay).

Pure policy: a command document in, a decision or a typed refusal out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from atm.cas.signing import DocumentError, SignatureInvalid, SignatureMissing, document_payload, verify_document

COMMAND_TYPE = "atm-command"
ALWAYS_OBEYED = frozenset({"deactivate"})
SIGNED_ONLY = frozenset({"activate", "unpair"})
KNOWN = ALWAYS_OBEYED | SIGNED_ONLY


class CommandError(DocumentError):
    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Command:
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    signed: bool = False
    sequence: int | None = None


def command_name(doc: Any) -> str:
    """The command's name as the document states it, before any judgement."""
    payload = document_payload(doc, "command")
    name = payload.get("name")
    if not isinstance(name, str):
        raise CommandError("command: 'name' must be a string")
    return name


def decide(doc: Any, operator_key: Ed25519PublicKey, *, kiosk_id: str, last_sequence: int) -> Command:
    """The command to obey, or CommandError saying why not."""
    payload = document_payload(doc, "command")
    name = command_name(doc)
    if name not in KNOWN:
        raise CommandError(f"command {name!r} is not one this kiosk knows ({sorted(KNOWN)})", "unknown")
    args = payload.get("args", {})
    if not isinstance(args, dict):
        raise CommandError(f"command {name}: 'args' must be a JSON object")
    if name in ALWAYS_OBEYED:
        # Obeyed whoever sent it: stopping the kiosk can never route money anywhere.
        return Command(name=name, args=args, signed=bool(doc.get("sig")))
    try:
        verify_document(doc, operator_key, f"command {name}")
    except SignatureMissing as exc:
        raise CommandError(str(exc), "unsigned") from None
    except SignatureInvalid as exc:
        raise CommandError(str(exc), "bad-signature") from None
    if payload.get("type") != COMMAND_TYPE:
        raise CommandError(f"command {name}: type must be {COMMAND_TYPE!r}, got {payload.get('type')!r}")
    if payload.get("kiosk_id") != kiosk_id:
        raise CommandError(f"command {name} is for kiosk {payload.get('kiosk_id')!r}, this kiosk is {kiosk_id!r}",
                           "other-kiosk")
    sequence = payload.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise CommandError(f"command {name}: 'sequence' must be an integer")
    if sequence <= last_sequence:
        raise CommandError(f"command {name} sequence {sequence} is not above the last obeyed ({last_sequence}): replayed",
                           "replayed")
    return Command(name=name, args=args, signed=True, sequence=sequence)
