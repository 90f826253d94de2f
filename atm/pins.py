"""Technician PIN hashes: PBKDF2-SHA256 with a per-hash salt, compared in constant time.
In production the hash arrives in the operator-signed bundle; `atm pin-hash` makes one."""

from __future__ import annotations

import hashlib
import hmac
import os

_ITERATIONS = 200_000


def hash_pin(pin: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a technician PIN is 4 to 12 digits")
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
