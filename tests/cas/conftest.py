"""Fixtures for the CAS link tests: an operator with a simulated CAS on 127.0.0.1
(stopped after each test), and a paired client with short, bounded timings."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

import pytest

from atm.cas.client import CasClient
from simulators.cas.harness import SimulatedOperator

FAST = {"poll_interval_s": 0.05, "timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}


@pytest.fixture
async def operator(tmp_path) -> AsyncIterator[SimulatedOperator]:
    async with SimulatedOperator(tmp_path) as op:
        yield op


@pytest.fixture
async def client(operator: SimulatedOperator) -> AsyncIterator[CasClient]:
    cas_client = operator.client(**FAST)
    yield cas_client
    await cas_client.stop()


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `condition` until true, failing after `timeout` seconds (never a bare sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
