"""Remote command rules: deactivate always, activate/unpair only operator-signed and fresh."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.commands import COMMAND_TYPE, CommandError, decide
from atm.cas.signing import DocumentError, generate_operator_key, sign_payload

KEY = generate_operator_key()


def command(name: str, sequence: int = 5, kiosk_id: str = "kiosk-1") -> dict:
    return {"type": COMMAND_TYPE, "kiosk_id": kiosk_id, "name": name, "id": f"c-{name}-{sequence}",
            "sequence": sequence, "issued_at": 0, "args": {}}


def run(doc, last_sequence=4):
    return decide(doc, KEY.public_key(), kiosk_id="kiosk-1", last_sequence=last_sequence)


def test_unsigned_deactivate_is_obeyed():
    decision = run({"payload": {"name": "deactivate", "id": "x"}})
    assert (decision.name, decision.signed) == ("deactivate", False)


def test_deactivate_signed_by_a_stranger_is_still_obeyed():
    assert run(sign_payload(command("deactivate"), generate_operator_key())).name == "deactivate"


def test_operator_signed_activate_is_obeyed_with_its_sequence():
    decision = run(sign_payload(command("activate"), KEY))
    assert (decision.name, decision.signed, decision.sequence) == ("activate", True, 5)


@pytest.mark.parametrize("doc, reason", [
    ({"payload": command("activate")}, "unsigned"),
    ({"payload": command("unpair")}, "unsigned"),
    (sign_payload(command("activate"), generate_operator_key()), "bad-signature"),
    (sign_payload(command("activate", sequence=4), KEY), "replayed"),
    (sign_payload(command("activate", kiosk_id="kiosk-9"), KEY), "other-kiosk"),
    (sign_payload(command("set_wallet"), KEY), "unknown"),
])
def test_command_is_refused_with_the_reason(doc, reason):
    with pytest.raises(CommandError) as info:
        run(doc)
    assert info.value.reason == reason


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values | st.fixed_dictionaries({"payload": st.dictionaries(
    st.sampled_from(["type", "kiosk_id", "name", "id", "sequence", "args"]), json_values)}, optional={"sig": json_values}))
def test_command_parser_garbage_raises_only_document_error(doc):
    try:
        decision = run(doc)
    except DocumentError:
        return
    # Only a deactivate can pass without the operator key, and no garbage carries that key's signature.
    assert decision.name == "deactivate"
