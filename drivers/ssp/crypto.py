"""eSSP: the Diffie-Hellman key exchange and the AES-128 encrypted packet layer of SSP.

Pure arithmetic and byte layout, no I/O: the host driver and the device simulator both
use it, each with its own `EsspSession` (one packet counter per side).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from drivers.ssp.frames import ENCRYPTED_PACKET, SspError, crc16

DEFAULT_FIXED_KEY = 0x0123456701234567

# Deterministic Miller-Rabin bases: with these, the test is exact for every n < 3.3e24,
# which covers the 64-bit numbers eSSP uses.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


class EncryptionError(SspError):
    """An encrypted SSP packet could not be opened or trusted."""


class CounterMismatch(EncryptionError):
    """The packet counter is not the one this side expected: a replayed or lost packet."""


class EncryptedCrcError(EncryptionError):
    """The CRC inside the decrypted packet is wrong: wrong key, or the packet was altered."""


class KeyExchangeError(EncryptionError):
    """A generator, modulus or intermediate key is not usable."""


def is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def generate_prime(bits: int = 32, randbits: Callable[[int], int] = secrets.randbits) -> int:
    """A random prime of exactly `bits` bits (<= 64: the protocol carries 8-byte values)."""
    if not 3 <= bits <= 64:
        raise KeyExchangeError(f"eSSP primes are 3..64 bits, asked for {bits}")
    while True:
        candidate = randbits(bits) | (1 << (bits - 1)) | 1
        if is_probable_prime(candidate):
            return candidate


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def read_u64(data: bytes, what: str) -> int:
    if len(data) != 8:
        raise KeyExchangeError(f"eSSP {what} must be 8 bytes little endian, got {len(data)}: {data.hex(' ')}")
    return int.from_bytes(data, "little")


@dataclass
class KeyExchange:
    """One side of the Diffie-Hellman exchange: generator and modulus are shared, `secret`
    stays here, `intermediate` goes over the wire (0x4C from the host, its reply from the slave)."""

    generator: int
    modulus: int
    secret: int

    @classmethod
    def new_host(cls, randbits: Callable[[int], int] = secrets.randbits) -> "KeyExchange":
        """The host's numbers as ITL's reference host makes them: generator, modulus and the
        secret all below 2^31 (that host computes in signed 64-bit arithmetic, so a unit is
        only ever met with such numbers), and the generator larger than the modulus (GA973:
        "the Generator must be larger than the Modulus")."""
        first = generate_prime(HOST_BITS, randbits)
        second = generate_prime(HOST_BITS, randbits)
        while second == first:
            second = generate_prime(HOST_BITS, randbits)
        generator, modulus = max(first, second), min(first, second)
        return cls(generator, modulus, _secret(modulus, randbits))

    @classmethod
    def new_slave(cls, generator: int, modulus: int,
                  randbits: Callable[[int], int] = secrets.randbits) -> "KeyExchange":
        check_parameters(generator, modulus)
        return cls(generator, modulus, _secret(modulus, randbits))

    @property
    def intermediate(self) -> int:
        return pow(self.generator, self.secret, self.modulus)

    def shared_key(self, other_intermediate: int) -> int:
        """The key from the other side's intermediate key. A unit answers with a number below
        the modulus; a host may send any 64-bit number (GA138's own example sends one larger
        than its modulus), which the arithmetic takes modulo the modulus."""
        if other_intermediate % self.modulus in (0, 1):
            raise KeyExchangeError(
                f"eSSP intermediate key {other_intermediate} is 0 or 1 modulo {self.modulus}: "
                "it would give a key anyone can guess")
        return pow(other_intermediate, self.secret, self.modulus)


# ITL's reference host keeps every key-exchange number below 2^31.
HOST_BITS = 31


def _secret(modulus: int, randbits: Callable[[int], int]) -> int:
    while True:
        value = randbits(max(8, min(HOST_BITS, modulus.bit_length() - 1))) % modulus
        if value > 1:
            return value


def check_parameters(generator: int, modulus: int) -> None:
    """Generator and modulus as a unit checks them: both prime and different. Either may be
    the larger (ITL's hosts send the generator larger, GA138's example too)."""
    if not is_probable_prime(modulus):
        raise KeyExchangeError(f"eSSP modulus {modulus} is not prime")
    if not is_probable_prime(generator):
        raise KeyExchangeError(f"eSSP generator {generator} is not prime")
    if generator == modulus:
        raise KeyExchangeError(f"eSSP generator and modulus are the same prime ({modulus}): no key can come of it")


def aes_key(negotiated: int, fixed_key: int = DEFAULT_FIXED_KEY) -> bytes:
    """The 16-byte AES key. ITL's own host libraries put the fixed (preset) key in the low
    eight bytes and the negotiated key in the high eight, both little endian; we follow the
    manufacturer because a real unit only decrypts that order."""
    return u64(fixed_key & 0xFFFFFFFFFFFFFFFF) + u64(negotiated & 0xFFFFFFFFFFFFFFFF)


class EsspSession:
    """Seals and opens encrypted packets with one key and this side's packet counter.

    Counter rule, as ITL's host libraries apply it: the host seals a command with its counter
    N; the slave opens it only if N is the count it expects, moves on to N+1 and seals its
    reply with N+1; the host accepts only a reply carrying N+1 and sends its next command
    with N+1. A resent frame (same sequence bit) is answered from the slave's cache, so a
    resend never moves a counter twice. Counters are 32 bits and wrap."""

    def __init__(self, key: bytes, counter: int = 0, padding: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != 16:
            raise EncryptionError(f"eSSP key must be 16 bytes, got {len(key)}")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())
        self.counter = counter & 0xFFFFFFFF
        self._padding = padding

    def seal(self, data: bytes, counter: int | None = None) -> bytes:
        """0x7E + AES-ECB(eLEN, eCOUNT (4, LE), DATA, padding, eCRC (LE))."""
        count = self.counter if counter is None else counter
        if not 0 < len(data) <= 255:
            raise EncryptionError(f"eSSP data must be 1..255 bytes, got {len(data)}")
        plain = bytes([len(data)]) + (count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(data)
        pad = (-(len(plain) + 2)) % 16
        plain += self._padding(pad)
        plain += crc16(plain).to_bytes(2, "little")
        enc = self._cipher.encryptor()
        return bytes([ENCRYPTED_PACKET]) + enc.update(plain) + enc.finalize()

    def open(self, packet: bytes) -> tuple[int, bytes]:
        """(counter, data) of an encrypted packet; typed errors for anything wrong."""
        packet = bytes(packet)
        if not packet or packet[0] != ENCRYPTED_PACKET:
            raise EncryptionError(f"eSSP packet must start with 7e, got {packet[:1].hex() or 'nothing'}")
        body = packet[1:]
        if not body or len(body) % 16:
            raise EncryptionError(f"eSSP ciphertext must be a non-empty multiple of 16 bytes, got {len(body)}")
        dec = self._cipher.decryptor()
        plain = dec.update(body) + dec.finalize()
        expected = crc16(plain[:-2])
        got = int.from_bytes(plain[-2:], "little")
        if expected != got:
            raise EncryptedCrcError(
                f"eSSP packet CRC mismatch after decryption (expected {expected:04x}, got {got:04x}): "
                "wrong key or altered packet")
        length = plain[0]
        if length == 0 or 5 + length > len(plain) - 2:
            raise EncryptionError(f"eSSP packet eLEN {length} does not fit its {len(plain)} bytes")
        count = int.from_bytes(plain[1:5], "little")
        return count, plain[5:5 + length]

    def _expect(self, count: int, wanted: int, what: str) -> None:
        if count != wanted & 0xFFFFFFFF:
            raise CounterMismatch(f"eSSP {what} counter {count}, expected {wanted & 0xFFFFFFFF}")

    # host side
    def seal_command(self, data: bytes) -> tuple[bytes, int]:
        """The encrypted command and the counter it carries (keep it: a resend reuses the bytes)."""
        return self.seal(data, self.counter), self.counter

    def open_reply(self, packet: bytes, command_counter: int) -> bytes:
        """Data of the slave's reply to the command sealed with `command_counter`."""
        count, data = self.open(packet)
        self._expect(count, command_counter + 1, "reply")
        self.counter = (command_counter + 1) & 0xFFFFFFFF
        return data

    # slave side
    def open_command(self, packet: bytes) -> bytes:
        count, data = self.open(packet)
        self._expect(count, self.counter, "command")
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        return data

    def seal_reply(self, data: bytes) -> bytes:
        return self.seal(data, self.counter)
