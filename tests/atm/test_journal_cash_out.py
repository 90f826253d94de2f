"""The cash-out half of the journal: cassette books from loads and the device's answers,
the reject bin, dispense intents and answers, what a sale owes, and redeem claims."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from atm.journal import Journal, JournalError
from hal import Fiat, Sats
from hal.status import UnitStatus

EUR = "EUR"


def eur(minor: int) -> Fiat:
    return Fiat(minor, EUR)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    j.load_cassette("1", eur(1000), 10, near_empty=2)
    j.load_cassette("2", eur(5000), 5, near_empty=2)
    yield j
    j.close()


def paid_sale(journal: Journal, tx: str = "sell-1", cash: int = 6000) -> str:
    journal.open_sell(tx, eur(cash), eur(300), Decimal("50000"), Sats(12_600))
    journal.sell_invoiced(tx, "bcrt1qexample", 0, 2e9)
    journal.payment_proven(tx, "ab" * 32, 12_600, 2, True, "pay", eur(cash))
    return tx


def test_books_count_initial_minus_what_the_device_said_left(journal):
    tx = paid_sale(journal)
    journal.dispense_intended(tx, "d1", "dispenser", {"1": 1, "2": 1}, eur(6000))
    journal.dispense_outcome("d1", "success", {"1": 1, "2": 1}, {"2": 1}, eur(6000))
    books = journal.cassette_books()
    assert [(u.id, u.count, u.dispensed, u.rejected) for u in books.units] == [("1", 9, 1, 0), ("2", 3, 1, 1)]
    assert journal.reject_bin() == 1
    journal.load_cassette("2", eur(5000), 20)            # a refill starts that cassette again
    assert journal.cassette_books().unit("2").count == 20
    assert journal.cassette_books().unit("1").count == 9


def test_a_repeated_answer_is_booked_once(journal):
    tx = paid_sale(journal)
    journal.dispense_intended(tx, "d1", "dispenser", {"2": 1}, eur(5000))
    journal.dispense_outcome("d1", "success", {"2": 1}, {}, eur(5000))
    journal.dispense_outcome("d1", "success", {"2": 1}, {}, eur(5000))
    assert journal.cassette_books().unit("2").dispensed == 1
    assert journal.dispensed(tx) == eur(5000)


def test_no_second_dispense_while_one_has_no_answer(journal):
    tx = paid_sale(journal)
    journal.dispense_intended(tx, "d1", "dispenser", {"2": 1}, eur(5000))
    with pytest.raises(JournalError, match="no answer yet"):
        journal.dispense_intended(tx, "d2", "dispenser", {"2": 1}, eur(5000))


def test_an_answer_needs_its_intent(journal):
    with pytest.raises(JournalError, match="intent before dispensing"):
        journal.dispense_outcome("nobody", "success", {"1": 1}, {}, eur(1000))


def test_owed_is_the_entitlement_less_exits_and_notes_nobody_can_account_for(journal):
    tx = paid_sale(journal)
    assert journal.owed(tx) == eur(6000)
    journal.dispense_intended(tx, "d1", "dispenser", {"2": 1, "1": 1}, eur(6000))
    assert journal.owed(tx) == eur(0), "a dispense on its way is not owed again"
    journal.dispense_outcome("d1", "timeOut", {"1": 1}, {}, eur(1000), outcome="unknown", uncertain={"2": 1},
                             uncertain_value=eur(5000))
    assert journal.owed(tx) == eur(0), "uncertain notes are the operator's to settle, never paid again"
    assert any("cannot tell" in r["summary"] for r in journal.reconciliation_items())


def test_a_reject_bin_count_that_differs_is_a_reconciliation_item(journal):
    tx = paid_sale(journal)
    journal.dispense_intended(tx, "d1", "dispenser", {"1": 1}, eur(1000))
    journal.dispense_outcome("d1", "success", {"1": 1}, {"1": 2}, eur(1000))
    assert journal.count_reject_bin(1) == 2
    assert any("reject bin counted 1" in r["summary"] for r in journal.reconciliation_items())
    assert journal.reject_bin() == 0


def test_a_claim_pays_at_most_what_is_owed_and_a_redeemed_code_never_again(journal):
    tx = paid_sale(journal)
    journal.issue_redeem(tx, "CODE-1", eur(6000))
    assert not journal.claim_redeem("CODE-1", tx, "r0", "dispenser", {"2": 2}, eur(10000)), "more than owed"
    assert journal.claim_redeem("CODE-1", tx, "r1", "dispenser", {"2": 1, "1": 1}, eur(6000))
    journal.dispense_outcome("r1", "success", {"2": 1, "1": 1}, {}, eur(6000))
    assert journal.settle_redeem(tx) == "redeemed"
    assert not journal.claim_redeem("CODE-1", tx, "r2", "dispenser", {"1": 1}, eur(1000))


def test_a_partial_redeem_leaves_the_code_good_for_the_rest(journal):
    tx = paid_sale(journal)
    journal.issue_redeem(tx, "CODE-1", eur(6000))
    assert journal.claim_redeem("CODE-1", tx, "r1", "dispenser", {"2": 1, "1": 1}, eur(6000))
    journal.dispense_outcome("r1", "hardwareError", {"2": 1}, {"1": 1}, eur(5000))
    assert journal.settle_redeem(tx) == "issued"
    assert journal.owed(tx) == eur(1000)
    assert journal.claim_redeem("CODE-1", tx, "r2", "dispenser", {"1": 1}, eur(1000))


def test_two_kiosk_processes_claiming_one_code_at_the_same_moment_pay_once(tmp_path, journal, monkeypatch):
    """Two connections (as two processes would have) claim the same code; the second runs in
    the middle of the first's claim. Catches the mutation: claim_redeem checks the code's
    state outside its write transaction, or updates without `AND state='issued'`."""
    tx = paid_sale(journal)
    journal.issue_redeem(tx, "CODE-1", eur(6000))
    other = Journal(tmp_path / "journal.sqlite")
    results: dict[str, bool] = {}
    original = Journal._owed
    interleaved = []

    def owed_then_let_the_other_claim(self, db, tx_id):
        if self is journal and not interleaved:
            interleaved.append(True)
            t = threading.Thread(target=lambda: results.__setitem__(
                "other", other.claim_redeem("CODE-1", tx, "r2", "dispenser", {"2": 1, "1": 1}, eur(6000))))
            t.start()
            t.join(timeout=1.0)       # blocked behind our write lock (atomic), or done (not atomic)
            results["_other_thread"] = t    # type: ignore[assignment]
        return original(self, db, tx_id)

    monkeypatch.setattr(Journal, "_owed", owed_then_let_the_other_claim)
    results["first"] = journal.claim_redeem("CODE-1", tx, "r1", "dispenser", {"2": 1, "1": 1}, eur(6000))
    results.pop("_other_thread").join(timeout=10)    # type: ignore[union-attr]
    other.close()
    assert interleaved
    assert sorted([results["first"], results["other"]]) == [False, True]
    assert len(journal.dispenses_for(tx)) == 1


def test_books_keep_missing_and_mismatched_cassettes_out_of_the_plan(journal):
    books = journal.cassette_books(sensors={"2": UnitStatus.MISSING})
    assert books.unit("2").available == 0


def test_the_operators_count_resolves_an_unknown_dispense_and_reopens_the_code(journal):
    tx = paid_sale(journal)
    journal.issue_redeem(tx, "CODE-1", eur(6000))
    assert journal.claim_redeem("CODE-1", tx, "r1", "dispenser", {"2": 1, "1": 1}, eur(6000))
    journal.dispense_outcome("r1", "timeOut", {}, {}, eur(0), outcome="unknown", uncertain={"2": 1, "1": 1},
                             uncertain_value=eur(6000))
    journal.settle_redeem(tx)
    assert journal.owed(tx) == eur(0) and journal.redeem_code(tx)["state"] == "redeemed"
    with pytest.raises(JournalError, match="not within what was asked"):
        journal.resolve_dispense("r1", {"2": 2}, {}, eur(10000))
    resolved = journal.resolve_dispense("r1", {"2": 1}, {}, eur(5000))
    assert resolved == {"tx_id": tx, "owed_minor": 1000, "status": "owed"}
    assert journal.redeem_code(tx)["state"] == "issued"
    assert not [r for r in journal.reconciliation_items() if "r1" in r["summary"]]
    with pytest.raises(JournalError, match="no unknown outcome"):
        journal.resolve_dispense("r1", {"2": 1}, {}, eur(5000))


def test_a_count_is_valued_at_the_notes_loaded_when_the_dispense_was_journaled(journal):
    """A refill with other notes between the power cut and the count must not change what
    the counted notes were worth. Mutation caught: valuing the count at today's books
    (the CLI's old `books.value(exited)`): the sale would then owe 20.00 EUR, not 0."""
    tx = paid_sale(journal, cash=5000)
    journal.dispense_intended(tx, "r1", "dispenser", {"2": 1}, eur(5000))
    journal.dispense_outcome("r1", "timeOut", {}, {}, eur(0), outcome="unknown", uncertain={"2": 1},
                             uncertain_value=eur(5000))
    journal.load_cassette("2", eur(2000), 40)            # refilled with 20s before anyone counted
    resolved = journal.resolve_dispense("r1", {"2": 1}, {}, by="technician")
    assert resolved == {"tx_id": tx, "owed_minor": 0, "status": "completed"}
    assert journal.dispensed(tx) == eur(5000)


def test_a_count_with_rejects_from_a_cassette_the_dispense_never_asked_is_refused(journal):
    tx = paid_sale(journal)
    journal.dispense_intended(tx, "r1", "dispenser", {"2": 1}, eur(5000))
    journal.dispense_outcome("r1", "timeOut", {}, {}, eur(0), outcome="unknown", uncertain={"2": 1},
                             uncertain_value=eur(5000))
    for exited, rejected in (({"2": 1}, {"1": 1}), ({"2": True}, {}), ({"2": -1}, {}), ({"2": 1}, {"2": "1"})):
        with pytest.raises(JournalError, match="whole numbers >= 0 for the cassettes it asked for"):
            journal.resolve_dispense("r1", exited, rejected)
    assert [d["request_id"] for d in journal.unknown_dispenses()] == ["r1"]
