"""Property tests with text a hostile CAS can send and Hypothesis does not draw by
default: lone UTF-16 surrogates (JSON's \\ud800), anywhere in a bundle, a command or
a poll answer. Outcome: a typed refusal, never another exception, and the poll goes on."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings, strategies as st

from atm.cas.bundle import BundleError, verify_bundle
from atm.cas.commands import decide
from atm.cas.interface import CasError
from atm.cas.signing import DocumentError, b64url, sign_payload

from .test_bundle import KEY, payload
from .test_rates import _offline_client

any_text = st.text(st.characters(blacklist_categories=()), max_size=8) | st.just("\ud800") | st.just("a\udfffb")
values = st.recursive(st.none() | st.booleans() | st.integers() | any_text,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
                      max_leaves=12)
FAKE_SIG = b64url(bytes(64))


def _signed_or_looking(doc_payload: dict) -> dict:
    try:
        return sign_payload(doc_payload, KEY)
    except DocumentError:
        return {"payload": doc_payload, "sig": FAKE_SIG}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["kiosk_id", "type", "settings.currency", "settings.fee_percent", "settings.coins",
                        "settings.technician_pin_hash", "settings.rate_bounds", "settings.wallet"]), values)
def test_bundle_with_any_text_anywhere_raises_only_bundle_error(path, value):
    doc = payload()
    target = doc
    *parents, leaf = path.split(".")
    for part in parents:
        target = target[part]
    target[leaf] = value
    try:
        verify_bundle(_signed_or_looking(doc), KEY.public_key(), kiosk_id="kiosk-1", current_version=1)
    except BundleError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "kiosk_id", "name", "id", "sequence", "args", "issued_at"]), values),
       st.booleans())
def test_command_with_any_text_raises_only_document_error(doc_payload, sign):
    doc = _signed_or_looking(doc_payload) if sign else {"payload": doc_payload, "sig": FAKE_SIG}
    try:
        decision = decide(doc, KEY.public_key(), kiosk_id="kiosk-1", last_sequence=0)
    except DocumentError:
        return
    assert decision.name in ("deactivate", "activate", "unpair")


commands = st.lists(st.fixed_dictionaries({"payload": st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=6) | any_text,
     "name": st.sampled_from(["activate", "unpair", "deactivate"]) | any_text},
    optional={"args": values, "kiosk_id": any_text, "sequence": st.integers(0, 5), "type": any_text})},
    optional={"sig": st.just(FAKE_SIG) | any_text}), max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=commands, texts=st.dictionaries(any_text, any_text, max_size=2))
def test_poll_with_any_commands_acknowledges_each_usable_id_and_never_crashes(tmp_path, commands, texts):
    client = _offline_client(tmp_path)
    answer = {"protocol": 1, "config_version": 1, "rates": {"EUR": "60000"}, "commands": commands}
    if texts:
        answer["texts"] = texts

    async def request(method, path, body=None):
        return answer

    client._request = request
    client.on_command = None

    async def run():
        try:
            await client.poll_once()
        except CasError:
            return  # e.g. texts that are not printable: the answer is refused as a whole
        ids = {doc["payload"]["id"] for doc in commands if 0 < len(doc["payload"]["id"]) <= 100}
        assert ids <= {ack["id"] for ack in client._pending_acks}
        client.status()  # the refusals stored can be read back

    try:
        asyncio.run(run())
    finally:
        client._store.close()
