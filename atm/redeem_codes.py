"""Redeem codes: what a sell customer takes away when the kiosk still owes them cash
(the payment was unconfirmed at the expiry, or the dispense was partial).

A code names this kiosk and the transaction and carries a MAC under a secret that
never leaves the kiosk (a 0600 key file in the state folder), so it cannot be guessed
or forged, and a code from another kiosk is recognised as such. What is owed, and
whether it was already paid, lives in the journal: a code is only a claim ticket,
and paying it out exactly once is the journal's job.
"""

from __future__ import annotations

import base64
import hmac
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ATMREDEEM"
VERSION = "1"
MAC_BYTES = 16                      # 128 bits: no guessing within any kiosk's lifetime
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAC = re.compile(r"^[A-Za-z2-7]{1,64}$")     # base32, unpadded
MAX_CODE_LENGTH = 240


class RedeemCodeError(ValueError):
    """A scanned text that is not a redeem code this kiosk can honour. `reason`:
    not_a_code, malformed, other_kiosk, forged."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RedeemClaim:
    kiosk_id: str
    tx_id: str


def load_or_create_secret(path: Path) -> bytes:
    """The kiosk's redeem-code secret: 32 random bytes, made once, mode 0600."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            data = secrets.token_bytes(32)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return data
    if len(data) != 32:
        raise RedeemCodeError(f"{path}: a redeem secret is 32 bytes, found {len(data)}; restore it from the "
                              "backup (codes already printed depend on it)", "malformed")
    return data


class RedeemCodes:
    """Issues and checks the codes of one kiosk."""

    def __init__(self, secret: bytes, kiosk_id: str) -> None:
        if len(secret) < 16:
            raise ValueError("a redeem secret needs at least 16 bytes")
        if not _ID.match(kiosk_id):
            raise ValueError(f"kiosk id {kiosk_id!r} cannot be put in a redeem code")
        self._secret = secret
        self.kiosk_id = kiosk_id

    def _mac(self, kiosk_id: str, tx_id: str) -> str:
        digest = hmac.new(self._secret, f"{PREFIX}|{VERSION}|{kiosk_id}|{tx_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:MAC_BYTES]).decode().rstrip("=")

    def issue(self, tx_id: str) -> str:
        """The text to print as a QR code for `tx_id`."""
        if not _ID.match(tx_id):
            raise ValueError(f"transaction id {tx_id!r} cannot be put in a redeem code")
        return f"{PREFIX}:{VERSION}:{self.kiosk_id}:{tx_id}:{self._mac(self.kiosk_id, tx_id)}"

    def check(self, text: str) -> RedeemClaim:
        """The claim a scanned text makes, if it is a genuine code of this kiosk."""
        if not isinstance(text, str) or not text.upper().startswith(PREFIX + ":"):
            raise RedeemCodeError("this is not a redeem code", "not_a_code")
        if len(text) > MAX_CODE_LENGTH:
            raise RedeemCodeError("redeem code too long", "malformed")
        parts = text.strip().split(":")
        if len(parts) != 5 or parts[1] != VERSION or not _ID.match(parts[2]) or not _ID.match(parts[3]):
            raise RedeemCodeError("this redeem code is damaged or of an unknown kind", "malformed")
        _, _, kiosk_id, tx_id, mac = parts
        if kiosk_id != self.kiosk_id:
            raise RedeemCodeError(f"this code belongs to kiosk {kiosk_id}; please use that kiosk", "other_kiosk")
        # compare_digest takes ASCII only: anything else in the MAC place is no MAC of ours
        if not _MAC.match(mac) or not hmac.compare_digest(mac.upper().encode(), self._mac(kiosk_id, tx_id).encode()):
            raise RedeemCodeError("this redeem code is not genuine", "forged")
        return RedeemClaim(kiosk_id, tx_id)
