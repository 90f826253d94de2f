"""Bad input from the screen and the scanner into the cash-out flows: any value a page
can send as the chosen amount, and any scanned text as a redeem code, ends in a refusal
with words for the customer (or a valid choice), never another exception, and nothing
is journaled for a refusal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from atm.flows.base import FlowContext
from atm.flows.redeem import RedeemFlow
from atm.flows.sell import SellFlow
from atm.journal import Journal
from atm.redeem_codes import RedeemCodes
from hal import Fiat
from tests.atm.kiosk_harness import make_config
from tests.atm.sell_world import SellCas

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children,
                                                                                      max_size=3), max_leaves=6)


class _Dispenser:
    name = "dispenser"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = Path(tmp_path_factory.mktemp("inputs"))
    journal = Journal(tmp / "journal.sqlite")
    journal.load_cassette("1", Fiat(1000, "EUR"), 30)
    journal.load_cassette("2", Fiat(5000, "EUR"), 10)
    cas = SellCas(tmp / "ledger.sqlite")
    ctx = FlowContext(config=make_config(tmp, kiosk_id="kiosk-1"), journal=journal, cas=cas, settings=cas.settings,
                      alert=lambda *a: None)
    yield ctx, RedeemCodes(b"k" * 32, "kiosk-1")
    journal.close()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON)
def test_any_chosen_amount_is_refused_in_words_or_is_a_payable_one(world, value):
    ctx, codes = world
    flow = SellFlow(ctx, _Dispenser(), codes)
    payable = {a.minor for a in flow.amounts()} | {m for m in range(1000, 50_001, 1000)}
    before = len(ctx.journal.transactions())
    if flow.choose(value, Decimal("50000")):
        assert isinstance(value, int) and value in payable
        ctx.journal.finish(flow.tx_id, "canceled")
    else:
        assert flow.error and len(ctx.journal.transactions()) == before


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.builds(lambda t: "ATMREDEEM:1:kiosk-1:" + t, st.text(max_size=80)))
async def test_any_scanned_text_is_refused_in_words_without_a_dispense(world, text):
    ctx, codes = world
    flow = RedeemFlow(ctx, _Dispenser(), codes)
    assert await flow.claim(text) == "redeem_refused"
    assert flow.message and flow.request_id is None
