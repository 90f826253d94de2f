"""The state dir's files are parsed as untrusted: damage means 'pair again', never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from atm.cas.check import state_dir_from_config
from atm.cas.errors import NotPaired
from atm.cas.interface import CasError
from atm.cas.state import PairingRecord, Store, load_pairing, save_pairing
from atm.cas.signing import generate_operator_key, public_key_text


def test_pairing_record_round_trips(tmp_path):
    record = PairingRecord(kiosk_id="k", cas_url="https://127.0.0.1:1", cas_pins=("ab" * 32,),
                           operator_key=public_key_text(generate_operator_key()), paired_at=5)
    save_pairing(tmp_path, record)
    (tmp_path / "kiosk.key").write_text("x")
    (tmp_path / "kiosk.crt").write_text("x")
    assert load_pairing(tmp_path) == record


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.dictionaries(
    st.sampled_from(["kiosk_id", "cas_url", "cas_pins", "operator_key", "paired_at"]),
    st.none() | st.integers() | st.text(max_size=20) | st.lists(st.text(max_size=5), max_size=2)).map(
        lambda d: json.dumps(d).encode()))
def test_damaged_pairing_file_raises_only_not_paired(tmp_path, data):
    (tmp_path / "pairing.json").write_bytes(data)
    (tmp_path / "kiosk.key").write_text("x")
    (tmp_path / "kiosk.crt").write_text("x")
    with pytest.raises(NotPaired):
        load_pairing(tmp_path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode) |
       st.sampled_from(["[cas]\nstate_dir = 5\n", "cas = 1\n", "[kiosk]\nstate_dir = []\n"]).map(str.encode))
def test_kiosk_config_garbage_raises_only_cas_error(tmp_path, data):
    path = tmp_path / "kiosk.toml"
    path.write_bytes(data)
    try:
        result = state_dir_from_config(path)
    except CasError:
        return
    assert str(result)


def test_outbox_never_replaces_a_queued_version_with_an_older_one(tmp_path):
    store = Store(tmp_path / "cas.sqlite")
    try:
        store.enqueue("tx", "a", 3, {"v": 3})
        store.enqueue("tx", "a", 2, {"v": 2})
        assert store.pending("tx", 10) == [("a", 3, {"v": 3})]
        store.acknowledge("tx", {"a": 2})
        assert store.queue_length("tx") == 1
        store.acknowledge("tx", {"a": 3})
        assert store.queue_length("tx") == 0
    finally:
        store.close()
