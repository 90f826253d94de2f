"""Redeem codes name this kiosk and the transaction, cannot be forged or moved to
another transaction, and any scanned text is a typed refusal or a genuine claim."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, strategies as st

from atm.redeem_codes import RedeemClaim, RedeemCodeError, RedeemCodes, load_or_create_secret

SECRET = bytes(range(32))
CODES = RedeemCodes(SECRET, "kiosk-7")


def test_an_issued_code_is_claimed_for_its_own_kiosk_and_transaction():
    code = CODES.issue("sell-20261130-ab12cd")
    assert CODES.check(code) == RedeemClaim("kiosk-7", "sell-20261130-ab12cd")


def test_a_code_moved_to_another_transaction_is_forged():
    code = CODES.issue("sell-1")
    moved = code.replace(":sell-1:", ":sell-2:")
    with pytest.raises(RedeemCodeError) as err:
        CODES.check(moved)
    assert err.value.reason == "forged"


def test_a_code_from_another_kiosk_says_which_kiosk():
    other = RedeemCodes(SECRET, "kiosk-9").issue("sell-1")
    with pytest.raises(RedeemCodeError) as err:
        CODES.check(other)
    assert err.value.reason == "other_kiosk" and "kiosk-9" in str(err.value)


def test_a_kiosk_with_another_secret_cannot_make_our_codes():
    foreign = RedeemCodes(b"\x01" * 32, "kiosk-7").issue("sell-1")
    with pytest.raises(RedeemCodeError) as err:
        CODES.check(foreign)
    assert err.value.reason == "forged"


def test_a_wallet_address_is_not_a_redeem_code():
    with pytest.raises(RedeemCodeError) as err:
        CODES.check("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
    assert err.value.reason == "not_a_code"


def test_the_secret_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "state" / "redeem.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first and len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_truncated_secret_file_is_refused_with_the_path(tmp_path):
    path = tmp_path / "redeem.key"
    path.write_bytes(b"short")
    with pytest.raises(RedeemCodeError, match="redeem.key"):
        load_or_create_secret(path)


def test_a_non_ascii_mac_is_forged_not_a_crash():
    with pytest.raises(RedeemCodeError) as err:
        CODES.check("ATMREDEEM:1:kiosk-7:0:\x80")
    assert err.value.reason == "forged"


@given(st.text(max_size=300) | st.builds(lambda t: "ATMREDEEM:1:kiosk-7:" + t, st.text(max_size=80)))
def test_any_scanned_text_is_a_typed_refusal_or_a_genuine_claim(text):
    try:
        claim = CODES.check(text)
    except RedeemCodeError as exc:
        assert exc.reason in {"not_a_code", "malformed", "other_kiosk", "forged"}
    else:
        assert CODES.issue(claim.tx_id).upper() == text.strip().upper()


@given(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True))
def test_every_valid_transaction_id_round_trips(tx_id):
    assert CODES.check(CODES.issue(tx_id)).tx_id == tx_id
