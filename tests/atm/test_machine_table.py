"""The state table itself: reachability, timeouts, guards, and the generated diagram."""

from __future__ import annotations

from collections import deque

from atm.machine import SEP, STATES, TRANSITIONS, all_state_names, mermaid, state_spec

LEAVES = all_state_names()


def _expand(source: str) -> list[str]:
    """A row whose source is a parent applies to each of its children."""
    return [leaf for leaf in LEAVES if leaf == source or leaf.startswith(source + SEP)]


def _sources(row) -> list[str]:
    sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
    return [leaf for src in sources for leaf in _expand(src)]


def _guards(row) -> list[str]:
    out = []
    for key in ("conditions", "unless"):
        value = row.get(key)
        if value:
            out += [value] if isinstance(value, str) else list(value)
    return out


def test_every_state_is_reachable_from_booting():
    seen, todo = {"booting"}, deque(["booting"])
    while todo:
        state = todo.popleft()
        for row in TRANSITIONS:
            if state in _sources(row) and row.get("dest"):
                for dest in _expand(row["dest"]):
                    if dest not in seen:
                        seen.add(dest)
                        todo.append(dest)
    assert seen == set(LEAVES), f"unreachable: {set(LEAVES) - seen}"


def test_every_customer_state_has_a_timeout_and_a_timeout_row():
    customer = [s for s in LEAVES if state_spec(s).get("customer")]
    assert "buy_cash" in customer and "idle" in customer
    for state in customer:
        assert state_spec(state).get("timeout_key"), f"{state} has no timeout"
        rows = [r for r in TRANSITIONS if r["trigger"] == "timeout" and state in _sources(r)]
        assert rows, f"{state} has a timeout but no timeout row"


def test_states_without_timeout_are_not_shown_to_customers():
    for state in LEAVES:
        if not state_spec(state).get("timeout_key"):
            assert not state_spec(state).get("customer"), state


# With no journal no money step can run: the kiosk stops where it stands and the
# restart's recovery settles the credited cash (tests/atm/test_kiosk_faults.py).
EXEMPT = {"journal_failed"}


def test_no_row_leaves_the_cash_screen_without_naming_the_credit_guard():
    for row in TRANSITIONS:
        if row["trigger"] in EXEMPT:
            continue
        if "buy_cash" in _sources(row) and row.get("dest") not in (None, "buy_cash"):
            assert "has_credit" in _guards(row), f"row {row} could leave credited cash behind"


def test_with_credit_every_exit_from_cash_leads_towards_sending():
    for row in TRANSITIONS:
        if "buy_cash" in _sources(row) and row.get("dest") and row.get("conditions"):
            conditions = [row["conditions"]] if isinstance(row["conditions"], str) else row["conditions"]
            if "has_credit" in conditions:
                assert row["dest"] in ("buy_confirm", "buy_sending"), row


def test_rows_out_of_confirm_all_require_credit():
    for row in TRANSITIONS:
        if "buy_confirm" in _sources(row) and row.get("dest") and row["trigger"] not in EXEMPT:
            assert "has_credit" in _guards(row), row


def test_the_machine_offers_no_automatic_to_state_triggers(tmp_path):
    from kiosk_harness import Harness
    kiosk = Harness(tmp_path).kiosk
    assert not hasattr(kiosk, "to_idle") and not hasattr(kiosk, "to_buy_sending")
    assert kiosk.machine.auto_transitions is False and kiosk.machine.has_queue


def test_every_guard_and_callback_named_in_the_table_exists_on_the_kiosk():
    from atm.kiosk import Kiosk
    names = set()
    for row in TRANSITIONS:
        names.update(_guards(row))
        for key in ("after", "before", "prepare"):
            if row.get(key):
                names.update([row[key]] if isinstance(row[key], str) else row[key])

    def walk(states):
        for s in states:
            for key in ("on_enter", "on_exit"):
                if s.get(key):
                    names.add(s[key])
            walk(s.get("children", []))
    walk(STATES)
    missing = [n for n in names if not callable(getattr(Kiosk, n, None))]
    assert not missing, missing


def test_diagram_is_generated_from_the_table_and_names_every_state():
    text = mermaid()
    assert text.startswith("stateDiagram-v2")
    for state in LEAVES:
        assert f" {state} " in text or f" {state}\n" in text or f"--> {state}" in text, state
    assert len([line for line in text.splitlines() if "-->" in line]) >= len(TRANSITIONS)


def test_while_a_note_is_on_its_way_cancel_door_service_and_timeout_have_a_row_on_the_cash_screen():
    """Each waits for the note (bounded by the note watch) instead of being refused as unknown."""
    for trigger in ("cancel", "door_opened", "service", "timeout"):
        rows = [r for r in TRANSITIONS if r["trigger"] == trigger and "buy_cash" in _sources(r)]
        assert any(r.get("dest") is None and not _guards(r) for r in rows), trigger
        assert any("anything_in_flight" in _guards(r) for r in rows), trigger


def test_a_parked_or_resolved_note_moves_the_cash_screen_on_with_or_without_credit():
    rows = [r for r in TRANSITIONS if r["trigger"] == "note_resolved" and "buy_cash" in _sources(r)]
    assert {r["dest"] for r in rows} == {"buy_sending", "idle"}
