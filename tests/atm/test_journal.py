"""The journal's own promises: durability settings, idempotent credits, sends keyed by request id."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from atm.journal import CACHE_KIB, Journal, JournalError
from hal import Fiat, NoteCredited, Sats


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def _credit(value: int, device: str = "validator") -> NoteCredited:
    return NoteCredited(device=device, value=Fiat(value, "EUR"), code=str(value))


def test_the_journal_runs_in_wal_mode_with_full_fsync(journal):
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2     # FULL
    assert journal._db.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB   # KiB, not the default


def test_a_note_is_credited_once_even_when_the_device_repeats_its_settled_event(journal):
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
    assert journal.record_credit(_credit(2000)).kind == "new"
    assert journal.record_credit(_credit(2000)).kind == "repeat"
    assert journal.credited("t1") == Fiat(2000, "EUR")


def test_a_second_note_of_the_same_value_after_a_new_escrow_is_a_new_credit(journal):
    journal.open_buy("t1", "addr", "EUR")
    for _ in range(2):
        journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
        assert journal.record_credit(_credit(2000)).kind == "new"
    assert journal.credited("t1") == Fiat(4000, "EUR")


def test_a_returned_note_is_never_credited(journal):
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x66", Fiat(20000, "EUR"), "return", None)
    assert journal.credited("t1") == Fiat(0, "EUR")
    assert journal.notes_in_flight("t1") == 0


def test_stacking_needs_a_known_value_and_an_open_transaction(journal):
    with pytest.raises(JournalError):
        journal.escrow_decided("validator", "0x6f", None, "stack", "t1")
    with pytest.raises(JournalError):
        journal.escrow_decided("validator", "0x61", Fiat(500, "EUR"), "keep", "t1")


def test_only_one_transaction_takes_cash_at_a_time(journal):
    journal.open_buy("t1", "addr", "EUR")
    with pytest.raises(JournalError, match="still open"):
        journal.open_buy("t2", "addr", "EUR")


def test_a_device_credit_that_disagrees_with_the_escrow_value_is_credited_as_reported_and_flagged(journal):
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
    journal.record_credit(_credit(5000))
    assert journal.credited("t1") == Fiat(5000, "EUR")
    assert "credited 50.00 EUR" in journal.reconciliation_items()[0]["summary"]


def test_sends_are_keyed_by_request_id_and_cover_the_credited_cash(journal):
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
    journal.record_credit(_credit(2000))
    journal.close_cash("t1")
    assert journal.unsent("t1") == Fiat(2000, "EUR")
    journal.request_send("t1", "t1-send-1", "addr", Fiat(2000, "EUR"), Fiat(100, "EUR"), Sats(38_000),
                         Decimal("50000"))
    assert journal.unsent("t1") == Fiat(0, "EUR")
    with pytest.raises(Exception):
        journal.request_send("t1", "t1-send-1", "addr", Fiat(1, "EUR"), Fiat(0, "EUR"), Sats(1), Decimal(1))
    assert [s.request_id for s in journal.pending_sends()] == ["t1-send-1"]
    journal.send_confirmed("t1-send-1", "ab" * 32)
    assert journal.pending_sends() == [] and journal.summary("t1")["sats"] == 38_000


def test_the_journal_survives_reopening(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.open_buy("t1", "addr", "EUR")
    j.escrow_decided("validator", "1", Fiat(1000, "EUR"), "stack", "t1")
    j.record_credit(_credit(1000))
    j.close()
    again = Journal(tmp_path / "j.sqlite")
    assert again.credited("t1") == Fiat(1000, "EUR") and again.open_transaction_id() == "t1"
    again.close()


def test_a_settled_event_without_a_value_takes_the_value_of_the_journaled_escrow_decision(journal):
    # ID-003 after a host restart: VEND VALID carries no denomination
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x64", Fiat(5000, "EUR"), "stack", "t1")
    outcome = journal.record_credit(NoteCredited(device="validator", value=None, code=""))
    assert outcome.kind == "new" and journal.credited("t1") == Fiat(5000, "EUR")
    assert journal.record_credit(NoteCredited(device="validator", value=None, code="")).kind == "repeat"


def test_a_settled_event_without_a_value_and_no_escrow_on_record_is_parked_not_guessed(journal):
    outcome = journal.record_credit(NoteCredited(device="validator", value=None, code=""))
    assert outcome.kind == "orphan" and outcome.note_id is None
    assert "count the cashbox" in journal.reconciliation_items()[0]["summary"]


def test_a_note_the_device_could_not_stack_is_no_longer_in_flight_and_never_credited(journal):
    journal.open_buy("t1", "addr", "EUR")
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
    assert journal.notes_in_flight("t1") == 1
    journal.note_returned("validator", "t1")
    assert journal.notes_in_flight("t1") == 0 and journal.credited("t1") == Fiat(0, "EUR")


def test_a_return_in_one_transaction_leaves_a_parked_note_of_another_alone(journal):
    journal.open_buy("old", "addr", "EUR")
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "old")
    journal.park("old", "note on its way at the crash")
    journal.open_buy("new", "addr", "EUR")
    journal.note_returned("validator", "new")
    assert journal.notes_in_flight("old") == 1


def test_the_report_carries_each_transactions_confirmed_quote_and_every_send(journal):
    from atm.cas.interface import Quote
    journal.open_buy("t1", "addr", "EUR", Quote("EUR", Decimal("50000"), Decimal("5"), Fiat(100, "EUR")),
                     Fiat(500, "EUR"))
    journal.escrow_decided("validator", "0x63", Fiat(2000, "EUR"), "stack", "t1")
    journal.record_credit(_credit(2000))
    journal.close_cash("t1")
    journal.request_send("t1", "t1-send-1", "addr", Fiat(2000, "EUR"), Fiat(200, "EUR"), Sats(36_000),
                         Decimal("50000"), fixed_waived=False)
    report = journal.report()
    [tx] = report["transactions"]
    assert tx["quote"] == {"rate": "50000", "fee_percent": "5", "fee_fixed_minor": 100}
    assert tx["sends"] == [{"request_id": "t1-send-1", "fiat_minor": 2000, "fee_minor": 200, "sats": 36_000,
                            "txid": None, "status": "requested"}]
    assert {"id", "status", "fiat_minor", "sats", "txids", "notes"} <= set(tx)
    assert [s["request_id"] for s in report["pending_sends"]] == ["t1-send-1"] and report["reconciliation"] == []


def test_a_quote_cannot_change_once_a_send_was_priced_with_it(journal):
    from atm.cas.interface import Quote
    quote = Quote("EUR", Decimal("50000"), Decimal("5"))
    journal.open_buy("t1", "addr", "EUR", quote, Fiat(500, "EUR"))
    journal.lock_quote("t1", Quote("EUR", Decimal("51000"), Decimal("5")), Fiat(500, "EUR"))
    assert journal.quote_for("t1").quote.rate == Decimal("51000")
    journal.request_send("t1", "t1-send-1", "addr", Fiat(0, "EUR"), Fiat(0, "EUR"), Sats(1), Decimal("51000"))
    with pytest.raises(JournalError, match="cannot change"):
        journal.lock_quote("t1", quote, Fiat(500, "EUR"))


def test_a_dispense_intent_comes_before_its_outcome_and_an_open_one_is_listed_for_recovery(journal):
    journal.open_transaction("sell", "s1", "EUR")
    with pytest.raises(JournalError, match="intent"):
        journal.dispense_outcome("s1-dispense-1", "success", {"upper": 2}, {}, Fiat(4000, "EUR"))
    journal.dispense_intended("s1", "s1-dispense-1", "dispenser", {"upper": 2}, Fiat(4000, "EUR"))
    assert [d["request_id"] for d in journal.open_dispenses()] == ["s1-dispense-1"]
    journal.dispense_outcome("s1-dispense-1", "success", {"upper": 2}, {"upper": 0}, Fiat(4000, "EUR"))
    assert journal.open_dispenses() == []
    assert journal.transaction("s1")["type"] == "sell"


# A model of one validator's notes: any sequence of escrow decisions, settled events
# (with the value, without it, or repeated) and customers coming and going.
_OPS = st.lists(st.one_of(
    st.tuples(st.just("stack"), st.sampled_from([500, 1000, 2000])),
    st.tuples(st.just("return"), st.sampled_from([500, 1000])),
    st.tuples(st.just("settle"), st.sampled_from([None, 500, 1000, 2000])),
    st.tuples(st.just("next_customer"), st.none()),
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_a_settled_event_is_credited_once_and_only_to_the_transaction_whose_decision_it_settles(tmp_path_factory, ops):
    """Mutation caught: removing the "credit once" guard, or crediting a settled event
    to the open transaction when it settles no decision (Journal.record_credit)."""
    journal = Journal(tmp_path_factory.mktemp("model") / "journal.sqlite")
    try:
        tx, number = "t0", 0
        journal.open_buy(tx, "addr", "EUR")
        expected: dict[str, int] = {tx: 0}
        latest: list | None = None            # [tx, value, state] of the device's latest decision
        for op, value in ops:
            if op == "stack":
                journal.escrow_decided("validator", str(value), Fiat(value, "EUR"), "stack", tx)
                latest = [tx, value, "pending"]
            elif op == "return":
                journal.escrow_decided("validator", str(value), Fiat(value, "EUR"), "return", None)
                latest = [None, value, "returned"]
            elif op == "next_customer":
                journal.close_cash(tx)
                number += 1
                tx = f"t{number}"
                journal.open_buy(tx, "addr", "EUR")
                expected[tx] = 0
            else:
                event = NoteCredited(device="validator", value=Fiat(value, "EUR") if value else None, code="x")
                outcome = journal.record_credit(event)
                if latest is not None and latest[2] == "pending":
                    assert (outcome.kind, outcome.tx_id) == ("new", latest[0])
                    expected[latest[0]] += value or latest[1]
                    latest = [latest[0], value or latest[1], "credited"]
                elif latest is not None and latest[2] == "credited" and value in (None, latest[1]):
                    assert (outcome.kind, outcome.tx_id) == ("repeat", latest[0])
                else:
                    assert (outcome.kind, outcome.tx_id) == ("orphan", None)
        for tx_id, minor in expected.items():
            assert journal.credited(tx_id).minor == minor, tx_id
    finally:
        journal.close()
