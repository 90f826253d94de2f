"""Parsers of the CAS's answers: garbage in, AnswerMalformed out, never anything else."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.errors import AnswerMalformed
from atm.cas.wire import (decode_answer, parse_config_answer, parse_invoice_status, parse_pair_answer, parse_poll,
                          parse_send, parse_sell_invoice, parse_upload_ack)

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=25)
answers = json_values | st.dictionaries(
    st.sampled_from(["protocol", "id", "txid", "rates", "config_version", "commands", "texts", "stored", "address",
                     "index", "sats", "expires_at", "state", "received_sats", "confirmations", "kiosk_id",
                     "server_time", "bundle"]), json_values).map(lambda d: {**d, "protocol": 1})

PARSERS = [
    parse_poll,
    lambda v: parse_send(v, "r1"),
    parse_upload_ack,
    lambda v: parse_sell_invoice(v, "s1"),
    lambda v: parse_invoice_status(v, "s1"),
    lambda v: parse_pair_answer(v, "kiosk-1"),
    parse_config_answer,
]


@settings(max_examples=500, deadline=None)
@given(answers, st.sampled_from(range(len(PARSERS))))
def test_answer_parsers_raise_only_answer_malformed(value, which):
    try:
        PARSERS[which](value)
    except AnswerMalformed:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_answer_decoder_garbage_raises_only_answer_malformed(data):
    try:
        decode_answer(data, "poll")
    except AnswerMalformed:
        pass


def test_poll_answer_gives_rates_as_decimals():
    answer = parse_poll({"protocol": 1, "config_version": 3, "rates": {"EUR": "61234.50"}, "commands": []})
    assert answer.rates == {"EUR": Decimal("61234.50")} and answer.config_version == 3


@pytest.mark.parametrize("text", [61234.5, "-1", "0", "NaN", "Infinity", "-Infinity", "sNaN", "1e20", "1E-30",
                                  "1E+999999999", "1E-999999999", "0.001", "1" * 41, None, True, ["1"]])
def test_unusable_rate_is_refused_alone_and_the_rest_of_the_poll_kept(text):
    answer = parse_poll({"protocol": 1, "rates": {"EUR": text, "USD": "65000"}, "config_version": 4})
    assert answer.rates == {"USD": Decimal("65000")} and answer.config_version == 4
    assert "rate EUR" in answer.refused_rates["EUR"]


def test_rate_at_the_edges_of_the_plausible_range_is_taken():
    answer = parse_poll({"protocol": 1, "rates": {"EUR": "0.01", "VND": "1000000000000"}})
    assert answer.rates == {"EUR": Decimal("0.01"), "VND": Decimal(10) ** 12} and answer.refused_rates == {}


def test_rate_under_a_currency_that_is_no_iso_code_makes_the_poll_malformed():
    with pytest.raises(AnswerMalformed, match="ISO 4217"):
        parse_poll({"protocol": 1, "rates": {"eur": "1"}})


def test_answer_of_another_protocol_version_is_malformed():
    with pytest.raises(AnswerMalformed, match="protocol 2"):
        parse_poll({"protocol": 2, "rates": {}})


def test_send_answer_for_another_request_is_malformed():
    with pytest.raises(AnswerMalformed, match="answered for"):
        parse_send({"protocol": 1, "id": "r2", "txid": "a" * 64}, "r1")
