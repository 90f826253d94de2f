"""Pinned mutual TLS: the kiosk's own key and certificate, SPKI pins, and the client
SSL context in which the pin check is part of the handshake itself.

The system CA store plays no part: the only server the kiosk accepts is the one whose
SubjectPublicKeyInfo hashes to a pinned value. The check runs inside the TLS handshake
(a custom SSLObject class), so no HTTP byte is written to a server that fails it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path
from typing import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atm.cas.errors import KeyFileError
from atm.cas.signing import check_private_mode, write_private_file


def spki_pin(cert_der: bytes) -> str:
    """SHA-256 of the certificate's SubjectPublicKeyInfo, lower-case hex."""
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def spki_pin_of_pem(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return spki_pin(cert.public_bytes(serialization.Encoding.DER))


def make_key_and_certificate(common_name: str, *, days: int = 3650,
                             san_ip: str | None = None) -> tuple[bytes, bytes]:
    """A fresh P-256 key and a self-signed certificate for it, both PEM.

    Self-signed is enough on both sides: trust comes from the pin (kiosk -> CAS)
    and from the certificate registered at pairing (CAS -> kiosk), never from a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if san_ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_key_and_certificate(key_path: Path, cert_path: Path, common_name: str) -> str:
    """Make the kiosk's key pair (key file 0600) and certificate; return the cert's SPKI pin."""
    key_pem, cert_pem = make_key_and_certificate(common_name)
    write_private_file(key_path, key_pem)
    cert_path.write_bytes(cert_pem)
    return spki_pin_of_pem(cert_pem)


PinObserver = Callable[[str, bool], None]


class PinnedServerRejected(ssl.SSLCertVerificationError):
    """Raised from inside the handshake when the server's key is not pinned."""

    def __init__(self, seen_pin: str) -> None:
        super().__init__(f"server public key {seen_pin} is not the pinned CAS key")
        self.seen_pin = seen_pin


def _pinned_sslobject_class(pins: frozenset[str], observer: PinObserver | None) -> type[ssl.SSLObject]:
    class PinnedSSLObject(ssl.SSLObject):
        # asyncio drives TLS through SSLObject.do_handshake(); checking here means a
        # wrong server fails the handshake, before aiohttp can write a request.
        def do_handshake(self) -> None:
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            seen = spki_pin(der) if der else "(no certificate)"
            ok = seen in pins
            if observer is not None:
                observer(seen, ok)
            if not ok:
                raise PinnedServerRejected(seen)

    return PinnedSSLObject


def pinned_client_context(pins: Iterable[str], *, cert_path: Path | None = None,
                          key_path: Path | None = None,
                          observer: PinObserver | None = None) -> ssl.SSLContext:
    """A client context that trusts only servers whose SPKI SHA-256 is in `pins`,
    presenting the kiosk's certificate when given (every request after pairing)."""
    pin_set = frozenset(p.lower() for p in pins)
    if not pin_set:
        raise ValueError("at least one CAS pin is needed")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Chain and host name checks are replaced by the pin, which is stricter: no CA,
    # not even the system store, can vouch for a different key.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # The pin is checked once per handshake; a TLS 1.2 renegotiation could bring a
    # second certificate after that check, so it is not allowed.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    if cert_path is not None and key_path is not None:
        try:
            check_private_mode(key_path)
            ctx.load_cert_chain(str(cert_path), str(key_path))
        except (OSError, ssl.SSLError) as exc:
            raise KeyFileError(f"{cert_path} / {key_path}: kiosk certificate or key not usable ({exc})") from None
    ctx.sslobject_class = _pinned_sslobject_class(pin_set, observer)
    return ctx
