"""Rates from the CAS (unsigned, soft data) against the operator's signed bounds: an
absurd, refused, missing or stale rate is never used, is refused with words an
operator understands, and ends the rate in force."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from atm.cas.client import CasClient
from atm.cas.errors import AnswerMalformed, RateRefused
from atm.cas.interface import CasError, CasRefused, CasUnavailable
from atm.cas.bundle import verify_bundle
from atm.cas.signing import public_key_text, sign_payload
from atm.cas.state import PairingRecord

from .conftest import FAST, wait_until
from .test_bundle import KEY, payload


@pytest.mark.parametrize("rate", ["0", "-60000", "NaN", "Infinity", "sNaN", "1E-30", "1E+999999999",
                                  "1000000000000", "10000000000000", "0.000001", "sixty thousand", "1" * 60])
async def test_absurd_rate_is_refused_as_a_typed_error_and_not_held(operator, client, rate):
    await client.poll_once()
    operator.cas.set_rate("EUR", rate)
    await client.poll_once()
    with pytest.raises(RateRefused, match="EUR rate"):
        await client.quote("EUR")
    assert client.rate("EUR") is None and client.status()["rates"] == {}
    assert client.status()["refusals"][0]["what"] == "rate"


async def test_a_refused_rate_ends_the_rate_in_force(operator, client):
    await client.poll_once()
    assert (await client.quote("EUR")).rate == 60000
    operator.cas.set_rate("EUR", "60")  # below the signed 6000..600000
    await client.poll_once()
    with pytest.raises(RateRefused, match="outside the range the operator signed, 6000..600000"):
        await client.quote("EUR")
    operator.cas.set_rate("EUR", "61000")
    await client.poll_once()
    assert (await client.quote("EUR")).rate == 61000


async def test_a_missing_rate_ends_the_rate_in_force(operator, client):
    await client.poll_once()
    operator.cas.rates.clear()
    await client.poll_once()
    with pytest.raises(RateRefused, match="gives no EUR rate"):
        await client.quote("EUR")


async def test_a_rate_older_than_the_signed_quote_age_is_not_used_when_the_cas_is_gone(operator, client):
    operator.publish(quote_max_age_s=20)
    await client.poll_once()
    assert client.settings().quote_max_age_s == 20
    assert client.rate("EUR") is not None
    client._rates_at = time.monotonic() - 21  # the last good poll was 21 s ago
    assert client.rate("EUR") is None and client.status()["rates"] == {}
    await operator.cas.go_down()
    with pytest.raises(CasUnavailable):
        await client.quote("EUR")


async def test_a_junk_poll_answer_ends_the_rates_it_gave_before(operator, client):
    await client.poll_once()
    assert client.rate("EUR") is not None
    operator.cas.set_hostile("malformed")
    with pytest.raises(AnswerMalformed):
        await client.poll_once()
    assert client.rate("EUR") is None


async def test_absurd_rate_does_not_stop_the_poll_loop(operator):
    """A rate of 1E-30 killed the old kiosk's background task; here the loop goes on and
    takes the next sane rate."""
    client = operator.client(**FAST)
    try:
        await client.start()
        await wait_until(lambda: client.rate("EUR") is not None, what="a first rate")
        operator.cas.set_rate("EUR", "1E-30")
        await wait_until(lambda: client.rate("EUR") is None, what="the absurd rate refused")
        operator.cas.set_rate("EUR", "62000")
        await wait_until(lambda: client.rate("EUR") is not None, what="the next sane rate")
        assert all(not task.done() for task in client._tasks)
        assert (await client.quote("EUR")).rate == 62000
    finally:
        await client.stop()


# ---- the quote under any poll answer --------------------------------------------------

rate_texts = (st.sampled_from(["0", "-1", "NaN", "Infinity", "1E-30", "1E+999999999", "60000", "20000.5",
                               "1000000000000", "\ud800", "6e4", "0x10", " 60000 "]) |
              st.text(max_size=12) | st.integers() | st.none() | st.booleans() | st.floats())
answers = st.fixed_dictionaries({"protocol": st.just(1)}, optional={
    "rates": st.dictionaries(st.sampled_from(["EUR", "USD", "eur", "EURO"]), rate_texts, max_size=3) | rate_texts,
    "config_version": st.none() | st.integers(-2, 3) | st.text(max_size=3),
    "commands": st.lists(st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5)), max_size=2),
    "texts": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
})


def _offline_client(tmp_path) -> CasClient:
    """A client whose requests never leave the process: the test hands it the answers."""
    record = PairingRecord(kiosk_id="kiosk-1", cas_url="https://127.0.0.1:9", cas_pins=("ab" * 32,),
                           operator_key=public_key_text(KEY), paired_at=0)
    client = CasClient(tmp_path, record, **FAST)
    client._bundle = verify_bundle(sign_payload(payload(version=1), KEY), KEY.public_key(), kiosk_id="kiosk-1",
                                   current_version=None)
    return client


@hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=answers)
def test_quote_after_any_poll_answer_is_a_sane_quote_or_a_typed_error(tmp_path, answer):
    client = _offline_client(tmp_path)

    async def request(method, path, body=None):
        if path == "/v1/config":
            return {"protocol": 1, "bundle": None}
        return answer

    client._request = request

    async def run():
        try:
            quote = await client.quote("EUR")
        except CasError as exc:
            assert isinstance(exc, (CasRefused, CasUnavailable))
            return
        assert 20000 <= quote.rate <= 200000

    try:
        asyncio.run(run())
    finally:
        client._store.close()
