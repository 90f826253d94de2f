"""Settlement on its own: credited cash becomes coins sent, once, whatever the CAS does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from atm.cas.interface import CasUnavailable
from atm.cas.standin import StandinCas, standin_settings
from atm.journal import Journal
from atm.settlement import Settlement
from hal import Fiat, NoteCredited


@pytest.fixture
def world(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    cas = StandinCas(tmp_path / "ledger.sqlite", rate=Decimal("50000"),
                     settings=standin_settings(Fiat(500, "EUR"), Fiat(100_000, "EUR"), "5", None))
    yield journal, cas, Settlement(journal, cas, lambda: None)
    journal.close()


def _credit(journal: Journal, tx_id: str, minor: int) -> None:
    journal.escrow_decided("validator", str(minor), Fiat(minor, "EUR"), "stack", tx_id)
    journal.record_credit(NoteCredited(device="validator", value=Fiat(minor, "EUR"), code=str(minor)))


async def test_credited_cash_is_sent_once_and_the_transaction_closes(world):
    journal, cas, settlement = world
    journal.open_buy("t1", "addr", "EUR")
    _credit(journal, "t1", 2000)
    journal.close_cash("t1")
    await settlement.settle("t1")
    await settlement.settle("t1")                       # asking again changes nothing
    assert [(s["request_id"], s["sats"]) for s in cas.sent()] == [("t1-send-1", 38_000)]
    assert journal.transaction("t1")["status"] == "completed" and settlement.unsettled() == []


async def test_an_outage_keeps_the_request_and_the_retry_uses_the_same_id(world):
    journal, cas, settlement = world
    settlement = Settlement(journal, cas, lambda: cached)   # the kiosk keeps the last rate it had
    cached = await cas.quote("EUR")
    journal.open_buy("t1", "addr", "EUR")
    _credit(journal, "t1", 5000)
    journal.close_cash("t1")
    cas.available = False
    with pytest.raises(CasUnavailable):
        await settlement.settle("t1")
    assert [s.request_id for s in journal.pending_sends()] == ["t1-send-1"] and cas.sent() == []
    assert settlement.unsettled() == ["t1"]
    cas.available = True
    await settlement.settle("t1")
    assert [s["request_id"] for s in cas.sent()] == ["t1-send-1"]


async def test_a_credit_that_arrives_after_the_transaction_closed_is_sent_as_a_top_up(world):
    journal, cas, settlement = world
    journal.open_buy("t1", "addr", "EUR")
    _credit(journal, "t1", 2000)
    journal.escrow_decided("validator", "1000", Fiat(1000, "EUR"), "stack", "t1")   # still stacking
    journal.close_cash("t1")
    await settlement.settle("t1")
    assert journal.transaction("t1")["status"] == "sending"          # a note is still on its way
    journal.record_credit(NoteCredited(device="validator", value=Fiat(1000, "EUR"), code="1000"))
    assert settlement.unsettled() == ["t1"]
    await settlement.settle("t1")
    assert [s["request_id"] for s in cas.sent()] == ["t1-send-1", "t1-send-2"]
    assert journal.paid_for("t1") == journal.credited("t1") == Fiat(3000, "EUR")
    assert journal.transaction("t1")["status"] == "completed"


async def test_after_a_crash_a_transaction_without_cash_is_canceled_and_one_with_cash_is_closed(world):
    journal, cas, settlement = world
    journal.open_buy("empty", "addr", "EUR")
    assert settlement.reopen_interrupted() == []
    assert journal.transaction("empty")["status"] == "canceled"
    journal.open_buy("paid", "addr", "EUR")
    _credit(journal, "paid", 1000)
    assert settlement.reopen_interrupted() == ["paid"]
    assert journal.transaction("paid")["status"] == "sending"


async def test_with_no_rate_at_all_nothing_is_priced_and_the_cash_stays_owed(world):
    journal, cas, settlement = world
    journal.open_buy("t1", "addr", "EUR")
    _credit(journal, "t1", 5000)
    journal.close_cash("t1")
    cas.available = False
    with pytest.raises(CasUnavailable):
        await settlement.settle("t1")
    assert journal.pending_sends() == [] and journal.unsent("t1") == Fiat(5000, "EUR")
    assert settlement.unsettled() == ["t1"]


async def test_buy_recovery_leaves_a_transaction_of_another_kind_to_its_own_flow(world):
    journal, cas, settlement = world
    journal.open_transaction("sell", "s1", "EUR")
    assert settlement.reopen_interrupted() == [] and settlement.unsettled() == []
    assert journal.transaction("s1")["status"] == "open"
