"""Technician PIN hashes: new ones need six digits at least; hashes of older, shorter
PINs already in the field still check, so an update does not lock a technician out."""

from __future__ import annotations

import hashlib

import pytest

from atm.pins import check_pin, hash_pin


@pytest.mark.parametrize("pin", ["1234", "12345", "", "12a456", "１２３４５６", "1" * 13])
def test_a_new_hash_needs_a_pin_of_six_to_twelve_digits(pin):
    with pytest.raises(ValueError, match="6 to 12 digits"):
        hash_pin(pin, iterations=1000)


def test_a_six_digit_pin_hashes_and_checks():
    stored = hash_pin("135790", iterations=1000)
    assert check_pin("135790", stored) and not check_pin("135791", stored)


def test_an_older_four_digit_hash_still_checks():
    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", b"2468", salt, 1000)
    stored = f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"
    assert check_pin("2468", stored) and not check_pin("2469", stored)


def test_the_simulators_pin_is_the_one_the_readme_names():
    from atm import config as config_mod
    from atm.app import REPO_CONFIG
    simulate = config_mod.load(REPO_CONFIG / "simulate.toml")
    assert check_pin("135790", simulate.technician_pin_hash)
