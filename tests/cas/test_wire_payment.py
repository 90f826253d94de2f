"""The `payment` evidence of a sell invoice status on the wire: honest evidence comes
through byte for byte, anything else is AnswerMalformed naming the field, never another
exception, and sizes stay inside what one answer may hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.errors import AnswerMalformed
from atm.cas.wire import (MAX_EVIDENCE_HEADERS, MAX_EVIDENCE_TX_BYTES, parse_invoice_status,
                          parse_payment_evidence)
from atm.cas.wallet import deposit_address
from simulators.cas.chain import SimChain
from simulators.cas.server import _evidence_json

from .test_bundle import XPUB

CHAIN = SimChain()
ADDRESS = deposit_address(XPUB, "regtest", 0)
TX = CHAIN.pay(ADDRESS, 25_000)
UNCONFIRMED = CHAIN.evidence(TX)
CHAIN.mine(3)
MINED = CHAIN.evidence(TX)


def status(payment):
    return {"protocol": 1, "id": "s1", "state": "seen", "received_sats": 1, "confirmations": 0, "payment": payment}


@pytest.mark.parametrize("evidence", [UNCONFIRMED, MINED], ids=["unconfirmed", "mined"])
def test_honest_evidence_comes_through_unchanged(evidence):
    got = parse_invoice_status(status(_evidence_json(evidence)), "s1").payment
    assert (got.raw_tx, list(got.headers), got.block_height, list(got.merkle_branch), got.tx_index) == (
        evidence.raw_tx, list(evidence.headers), evidence.block_height, list(evidence.merkle_branch),
        evidence.tx_index)


def test_no_payment_field_or_null_means_no_evidence():
    assert parse_invoice_status(status(None), "s1").payment is None
    answer = status(None)
    del answer["payment"]
    assert parse_invoice_status(answer, "s1").payment is None


def test_empty_raw_transaction_is_kept_so_the_claim_is_refused_by_name():
    assert parse_payment_evidence({"raw_tx": "", "block_height": None}).raw_tx == b""


def mined(**changes):
    doc = _evidence_json(MINED)
    doc.update(changes)
    return doc


@pytest.mark.parametrize("payment, words", [
    ("paid", "'payment' must be an object or null"),
    (mined(raw_tx=None), "payment.raw_tx must be a hex string"),
    (mined(raw_tx="ABCD"), "payment.raw_tx must be lower-case hex"),
    (mined(raw_tx="abc"), "payment.raw_tx must be lower-case hex"),
    (mined(raw_tx="00" * (MAX_EVIDENCE_TX_BYTES + 1)), "payment.raw_tx is longer than"),
    (mined(block_height=-1), "payment.block_height"),
    (mined(block_height=True), "payment.block_height"),
    (mined(block_height="101"), "payment.block_height"),
    (mined(tx_index=-1), "payment.tx_index"),
    (mined(tx_index=2**32), "payment.tx_index"),
    (mined(merkle_branch="ab" * 32), "payment.merkle_branch must be a list"),
    (mined(merkle_branch=["ab" * 31]), r"payment.merkle_branch\[0\] must be 32 bytes"),
    (mined(merkle_branch=["ab" * 32] * 33), "payment.merkle_branch holds 33 entries"),
    (mined(headers=["00" * 79]), r"payment.headers\[0\] must be 80 bytes"),
    (mined(headers=["00" * 80] * (MAX_EVIDENCE_HEADERS + 1)), "payment.headers holds"),
    (mined(confirmations=6), "unknown field 'confirmations'"),
])
def test_malformed_evidence_is_refused_naming_the_field(payment, words):
    with pytest.raises(AnswerMalformed, match=words):
        parse_invoice_status(status(payment), "s1")


def test_largest_evidence_allowed_fits_one_answer():
    from atm.cas.wire import MAX_ANSWER_BYTES
    import json
    biggest = {"raw_tx": "00" * MAX_EVIDENCE_TX_BYTES, "block_height": 10**8, "tx_index": 2**32 - 1,
               "merkle_branch": ["ab" * 32] * 32, "headers": ["00" * 80] * MAX_EVIDENCE_HEADERS}
    assert len(json.dumps(status(biggest)).encode()) < MAX_ANSWER_BYTES


hexes = st.binary(max_size=90).map(bytes.hex) | st.text(max_size=20)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | hexes,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3),
                           max_leaves=20)
payment_objects = st.dictionaries(st.sampled_from(["raw_tx", "block_height", "merkle_branch", "tx_index",
                                                   "headers"]),
                                  json_values | st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex),
                                                         max_size=3)
                                  | st.lists(st.binary(min_size=80, max_size=80).map(bytes.hex), max_size=3))


@settings(max_examples=500, deadline=None)
@given(json_values | payment_objects)
def test_any_payment_field_gives_evidence_or_answer_malformed(payment):
    try:
        got = parse_invoice_status(status(payment), "s1").payment
    except AnswerMalformed:
        return
    if got is not None:
        assert isinstance(got.raw_tx, bytes) and all(len(h) == 80 for h in got.headers)
        assert all(len(h) == 32 for h in got.merkle_branch) and 0 <= got.tx_index < 2**32
