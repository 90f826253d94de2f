"""Operator signatures: canonical JSON encoding, Ed25519 keys and signed documents.

Shared by the operator's offline tool (which signs) and the kiosk (which verifies).
No network and no kiosk state here: only bytes, keys and the two typed outcomes
(signature missing / invalid) that the bundle and command parsers build on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from atm.cas.errors import KeyFileError

PUBLIC_KEY_PREFIX = "ed25519:"
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
# A signed document is small; anything bigger is refused before it is parsed.
MAX_DOCUMENT_BYTES = 64 * 1024


class DocumentError(ValueError):
    """Bytes or an object that is not a well-formed signed document; says what was wrong."""


class SignatureMissing(DocumentError):
    """The document carries no signature."""


class SignatureInvalid(DocumentError):
    """The signature does not verify with the trusted operator key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise DocumentError(f"{what}: expected base64url text, got {type(text).__name__}")
    if not _B64URL.match(text):
        # The decoder would silently skip foreign characters; refuse them instead.
        raise DocumentError(f"{what}: not valid base64url (only A-Z a-z 0-9 - _ allowed)")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DocumentError(f"{what}: not valid base64url ({exc})") from None


def _check_canonical_value(value: Any, where: str) -> None:
    # Floats are refused outright: their text form is not stable across
    # encoders, and money never travels as a float anyway (decimals go as strings).
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_canonical_value(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DocumentError(f"{where}: object keys must be strings, got {key!r}")
            _check_canonical_value(item, f"{where}.{key}")
        return
    raise DocumentError(f"{where}: {type(value).__name__} cannot be signed (use a string for decimals)")


def canonical(obj: Any) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8, no floats."""
    _check_canonical_value(obj, "$")
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON's \ud800 escape yields a lone UTF-16 surrogate, which no UTF-8 byte
        # string can hold, so nothing can have been signed over it.
        raise DocumentError(f"text holds a lone UTF-16 surrogate at character {exc.start} and cannot be "
                            "encoded as UTF-8, so it cannot have been signed") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers could keep different copies of a duplicated key, so
            # what was signed and what is used could differ: refuse it.
            raise DocumentError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    raise DocumentError(f"number {text} has a fraction or exponent; decimals must be strings")


def _refuse_constant(text: str) -> Any:
    raise DocumentError(f"{text} is not JSON")


def strict_json(data: bytes | str, what: str, limit: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse JSON strictly (no duplicate keys, no floats, no NaN), refusing more than `limit` bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) > limit:
        raise DocumentError(f"{what}: {len(data)} bytes, more than the {limit} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{what}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_refuse_float,
                          parse_constant=_refuse_constant)
    except DocumentError as exc:
        raise DocumentError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise DocumentError(f"{what}: not valid JSON ({exc})") from None


def generate_operator_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The operator public key as text: 'ed25519:' + base64url of the 32 raw bytes."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + b64url(raw)


def parse_public_key(text: Any, what: str = "operator public key") -> Ed25519PublicKey:
    if not isinstance(text, str) or not text.startswith(PUBLIC_KEY_PREFIX):
        raise DocumentError(f"{what}: expected text starting with {PUBLIC_KEY_PREFIX!r}")
    raw = unb64url(text[len(PUBLIC_KEY_PREFIX):], what)
    if len(raw) != 32:
        raise DocumentError(f"{what}: expected 32 key bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short name for a key, shown to humans so they can tell two keys apart."""
    return hashlib.sha256(public_key_text(key).encode("ascii")).hexdigest()[:16]


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret file created with mode 0600 (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save_operator_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private_file(path, pem)


def check_private_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path}: secret key file has mode {mode:o}; expected 600 (run: chmod 600 {path})")


def load_operator_key(path: Path) -> Ed25519PrivateKey:
    try:
        check_private_mode(path)
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the operator key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def sign_payload(payload: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A signed document: {"payload": ..., "sig": base64url(Ed25519(canonical(payload)))}."""
    return {"payload": payload, "sig": b64url(key.sign(canonical(payload)))}


def document_payload(doc: Any, what: str) -> dict[str, Any]:
    """The payload of a document, without judging its signature."""
    if not isinstance(doc, dict):
        raise DocumentError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"payload", "sig"}
    if unknown:
        raise DocumentError(f"{what}: unexpected fields {sorted(unknown)}")
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise DocumentError(f"{what}: 'payload' must be a JSON object")
    return payload


def verify_document(doc: Any, key: Ed25519PublicKey, what: str) -> dict[str, Any]:
    """Return the payload if `key` signed it; raise SignatureMissing / SignatureInvalid / DocumentError."""
    payload = document_payload(doc, what)
    sig_text = doc.get("sig")
    if sig_text is None or sig_text == "":
        raise SignatureMissing(f"{what}: no operator signature")
    signature = unb64url(sig_text, f"{what} signature")
    try:
        key.verify(signature, canonical(payload))
    except InvalidSignature:
        raise SignatureInvalid(f"{what}: signature does not verify with operator key {key_id(key)}") from None
    return payload
