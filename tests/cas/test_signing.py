"""Canonical encoding, strict JSON and operator signatures."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.errors import KeyFileError
from atm.cas.signing import (DocumentError, SignatureInvalid, SignatureMissing, canonical, generate_operator_key,
                             load_operator_key, parse_public_key, public_key_text, save_operator_key, sign_payload,
                             strict_json, verify_document)


def test_canonical_encoding_sorts_keys_and_has_no_whitespace():
    assert canonical({"b": 1, "a": {"d": "é", "c": [True, None]}}) == '{"a":{"c":[true,null],"d":"é"},"b":1}'.encode()


def test_canonical_encoding_refuses_floats():
    with pytest.raises(DocumentError, match="float"):
        canonical({"fee": 1.5})


def test_strict_json_refuses_duplicate_keys_floats_and_nan():
    for text, word in (('{"a":1,"a":2}', "duplicate"), ('{"a":1.5}', "decimals must be strings"),
                       ('{"a":NaN}', "not JSON")):
        with pytest.raises(DocumentError, match=word):
            strict_json(text, "doc")


def test_strict_json_refuses_more_than_the_limit():
    with pytest.raises(DocumentError, match="more than the 10 allowed"):
        strict_json(b'{"a":"0123456789"}', "doc", limit=10)


def test_signed_payload_verifies_and_any_change_breaks_it():
    key = generate_operator_key()
    doc = sign_payload({"version": 3, "kiosk_id": "k"}, key)
    assert verify_document(doc, key.public_key(), "doc") == {"version": 3, "kiosk_id": "k"}
    doc["payload"]["version"] = 4
    with pytest.raises(SignatureInvalid):
        verify_document(doc, key.public_key(), "doc")


def test_document_without_signature_is_reported_missing():
    with pytest.raises(SignatureMissing):
        verify_document({"payload": {"a": 1}}, generate_operator_key().public_key(), "doc")


def test_signature_by_another_key_is_invalid():
    doc = sign_payload({"a": 1}, generate_operator_key())
    with pytest.raises(SignatureInvalid):
        verify_document(doc, generate_operator_key().public_key(), "doc")


def test_operator_key_file_is_written_mode_600_and_reloads(tmp_path):
    key = generate_operator_key()
    path = tmp_path / "operator.key"
    save_operator_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_text(load_operator_key(path)) == public_key_text(key)


def test_operator_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "operator.key"
    save_operator_key(path, generate_operator_key())
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_operator_key(path)


def test_public_key_text_round_trips():
    key = generate_operator_key()
    assert public_key_text(parse_public_key(public_key_text(key))) == public_key_text(key)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_strict_json_garbage_raises_only_document_error(data):
    try:
        strict_json(data, "garbage")
    except DocumentError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_public_key_parser_garbage_raises_only_document_error(text):
    try:
        parse_public_key(text)
    except DocumentError:
        pass
