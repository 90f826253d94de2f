"""eSSP: prime generation, the key exchange, and the encrypted packet layer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from drivers.ssp import crypto
from drivers.ssp.frames import ENCRYPTED_PACKET, SspError, crc16
from hal.errors import ProtocolError


def test_miller_rabin_agrees_with_trial_division_below_ten_thousand() -> None:
    def trial(n: int) -> bool:
        return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))
    assert [n for n in range(10_000) if crypto.is_probable_prime(n)] == [n for n in range(10_000) if trial(n)]


def test_miller_rabin_knows_large_primes_and_carmichael_numbers() -> None:
    assert crypto.is_probable_prime(2 ** 61 - 1)
    assert crypto.is_probable_prime(18446744073709551557)        # largest 64-bit prime
    assert not crypto.is_probable_prime(3215031751)               # strong pseudoprime to 2, 3, 5, 7
    assert not crypto.is_probable_prime(561)


@pytest.mark.parametrize("bits", [16, 32, 63, 64])
def test_generated_primes_have_the_asked_size(bits: int) -> None:
    rng = random.Random(bits)
    p = crypto.generate_prime(bits, rng.getrandbits)
    assert p.bit_length() == bits and crypto.is_probable_prime(p)


def test_prime_size_outside_the_protocol_is_refused() -> None:
    with pytest.raises(crypto.KeyExchangeError, match="3..64 bits"):
        crypto.generate_prime(65)


def test_host_and_slave_agree_on_the_negotiated_key() -> None:
    host = crypto.KeyExchange.new_host()
    slave = crypto.KeyExchange.new_slave(host.generator, host.modulus)
    assert host.shared_key(slave.intermediate) == slave.shared_key(host.intermediate)
    assert host.secret != slave.secret


def test_slave_refuses_a_modulus_that_is_not_prime() -> None:
    with pytest.raises(crypto.KeyExchangeError, match="not prime"):
        crypto.KeyExchange.new_slave(5, 100)


@pytest.mark.parametrize("other", [0, 1, "modulus", "modulus+1"])
def test_intermediate_key_that_gives_a_guessable_key_is_refused(other) -> None:
    host = crypto.KeyExchange.new_host()
    value = {"modulus": host.modulus, "modulus+1": host.modulus + 1}.get(other, other)
    with pytest.raises(crypto.KeyExchangeError, match="0 or 1 modulo"):
        host.shared_key(value)


def test_host_numbers_stay_below_2_31_with_the_generator_larger_than_the_modulus() -> None:
    """ITL's reference host (GA973) computes in signed 64-bit arithmetic and sends the
    generator larger than the modulus; a unit is only ever met with such numbers."""
    rng = random.Random(7)
    for _ in range(50):
        host = crypto.KeyExchange.new_host(rng.getrandbits)
        assert host.modulus < host.generator < 2 ** 31
        assert 1 < host.secret < 2 ** 31
        assert crypto.is_probable_prime(host.generator) and crypto.is_probable_prime(host.modulus)
        slave = crypto.KeyExchange.new_slave(host.generator, host.modulus, rng.getrandbits)
        assert host.shared_key(slave.intermediate) == slave.shared_key(host.intermediate)


@pytest.mark.parametrize("generator, modulus", [(982451653, 1287821), (1287821, 982451653)])
def test_slave_accepts_generator_and_modulus_in_either_order(generator: int, modulus: int) -> None:
    slave = crypto.KeyExchange.new_slave(generator, modulus)
    host = crypto.KeyExchange(generator, modulus, 12345)
    assert slave.shared_key(host.intermediate) == host.shared_key(slave.intermediate)


def test_slave_refuses_the_same_prime_as_generator_and_modulus() -> None:
    with pytest.raises(crypto.KeyExchangeError, match="same prime"):
        crypto.KeyExchange.new_slave(1287821, 1287821)


def test_aes_key_is_fixed_key_then_negotiated_key_little_endian() -> None:
    key = crypto.aes_key(0x1122334455667788, 0x0123456701234567)
    assert key == bytes.fromhex("6745230167452301" "8877665544332211")


def test_u64_values_are_eight_bytes_little_endian() -> None:
    assert crypto.u64(0x4A) == bytes([0x4A, 0, 0, 0, 0, 0, 0, 0])
    assert crypto.read_u64(crypto.u64(2 ** 63 + 5), "x") == 2 ** 63 + 5
    with pytest.raises(crypto.KeyExchangeError, match="8 bytes"):
        crypto.read_u64(b"\x01", "generator")


def _pair() -> tuple[crypto.EsspSession, crypto.EsspSession]:
    key = crypto.aes_key(0xDEADBEEF)
    return crypto.EsspSession(key), crypto.EsspSession(key)


def test_encrypted_packet_layout_is_7e_then_whole_aes_blocks() -> None:
    host, _ = _pair()
    packet = host.seal(bytes([0x07]))
    assert packet[0] == ENCRYPTED_PACKET
    assert (len(packet) - 1) % 16 == 0 and len(packet) == 17


def test_encrypted_round_trip_with_counters_moving_on_both_sides() -> None:
    host, slave = _pair()
    for step, command in enumerate([b"\x07", b"\x0a", bytes(range(40)), b"\x7f\x7f\x7e"]):
        assert host.counter == slave.counter == step
        packet, sent_with = host.seal_command(command)
        assert sent_with == step
        assert slave.open_command(packet) == command
        reply = slave.seal_reply(b"\xf0" + command)
        assert slave.open(reply)[0] == step + 1          # the reply carries the moved-on count
        assert host.open_reply(reply, sent_with) == b"\xf0" + command


def test_plaintext_carries_length_counter_data_padding_and_crc() -> None:
    host = crypto.EsspSession(crypto.aes_key(1), counter=0x01020304, padding=lambda n: b"\xaa" * n)
    packet = host.seal(b"\x07")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    dec = Cipher(algorithms.AES(crypto.aes_key(1)), modes.ECB()).decryptor()
    plain = dec.update(packet[1:]) + dec.finalize()
    assert plain[:6] == bytes([1, 4, 3, 2, 1, 7])
    assert plain[6:14] == b"\xaa" * 8
    assert int.from_bytes(plain[14:], "little") == crc16(plain[:14])


def test_wrong_counter_is_a_counter_mismatch() -> None:
    host, slave = _pair()
    packet, _ = host.seal_command(b"\x07")
    slave.counter = 5
    with pytest.raises(crypto.CounterMismatch, match="command counter 0, expected 5"):
        slave.open_command(packet)


def test_reply_with_a_stale_counter_is_a_counter_mismatch() -> None:
    host, slave = _pair()
    packet, sent_with = host.seal_command(b"\x07")
    slave.open_command(packet)
    stale = slave.seal(b"\xf0", counter=sent_with)      # not moved on: an old reply
    with pytest.raises(crypto.CounterMismatch, match="reply counter 0, expected 1"):
        host.open_reply(stale, sent_with)
    assert host.counter == 0


def test_replayed_packet_is_refused_once_the_counter_moved_on() -> None:
    host, slave = _pair()
    packet, _ = host.seal_command(b"\x07")
    slave.open_command(packet)
    with pytest.raises(crypto.CounterMismatch):
        slave.open_command(packet)


def test_altered_ciphertext_is_an_encrypted_crc_error() -> None:
    host, slave = _pair()
    packet = bytearray(host.seal(b"\x07"))
    packet[5] ^= 0x40
    with pytest.raises(crypto.EncryptedCrcError):
        slave.open_command(bytes(packet))


def test_wrong_key_is_an_encrypted_crc_error() -> None:
    host = crypto.EsspSession(crypto.aes_key(1))
    other = crypto.EsspSession(crypto.aes_key(2))
    with pytest.raises(crypto.EncryptedCrcError):
        other.open(host.seal(b"\x07"))


def test_counter_wraps_at_32_bits() -> None:
    host = crypto.EsspSession(crypto.aes_key(3), counter=2 ** 32 - 1)
    slave = crypto.EsspSession(crypto.aes_key(3), counter=2 ** 32 - 1)
    packet, sent_with = host.seal_command(b"\x07")
    slave.open_command(packet)
    assert host.open_reply(slave.seal_reply(b"\xf0"), sent_with) == b"\xf0"
    assert host.counter == slave.counter == 0


def test_encryption_errors_are_protocol_errors() -> None:
    for cls in (crypto.EncryptionError, crypto.CounterMismatch, crypto.EncryptedCrcError, crypto.KeyExchangeError):
        assert issubclass(cls, SspError) and issubclass(cls, ProtocolError)


@given(st.binary(max_size=120))
def test_opening_random_bytes_raises_only_encryption_errors(packet: bytes) -> None:
    session = crypto.EsspSession(crypto.aes_key(99))
    try:
        count, data = session.open(b"\x7e" + packet)
    except crypto.EncryptionError:
        return
    assert 0 < len(data) <= 255 and count >= 0


@given(st.binary(min_size=1, max_size=200), st.integers(0, 2 ** 32 - 1))
def test_any_data_and_counter_round_trip(data: bytes, counter: int) -> None:
    host = crypto.EsspSession(crypto.aes_key(7), counter=counter)
    assert host.open(host.seal(data)) == (counter, data)
