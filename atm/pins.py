"""Technician PIN hashes: PBKDF2-SHA256 with a per-hash salt, compared in constant time.
In production the hash arrives in the operator-signed bundle; `atm pin-hash` makes one.
New hashes need a PIN of at least six digits; check_pin still accepts hashes of older
four- and five-digit PINs, so a kiosk in the field is not locked out by an update."""

from __future__ import annotations

import hashlib
import hmac
import os

_ITERATIONS = 200_000
MIN_NEW_PIN_DIGITS = 6
MAX_PIN_DIGITS = 12


def hash_pin(pin: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit()
            and MIN_NEW_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS):
        raise ValueError(f"a new technician PIN is {MIN_NEW_PIN_DIGITS} to {MAX_PIN_DIGITS} digits "
                         f"(got {len(pin) if isinstance(pin, str) else type(pin).__name__} characters)")
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str | None) -> bool:
    if not stored or not isinstance(pin, str) or not pin.isdigit() or len(pin) > 12:
        return False
    try:
        scheme, iterations, salt_hex, digest_hex = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt_hex), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)
