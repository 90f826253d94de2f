"""Benchmark: 10,000 transactions queued while the CAS is down, then flushed to the
simulator once it is back. Prints the queueing and flush times and checks that the
server holds each transaction exactly once, at the version queued last.

Run: .venv/bin/python bench/cas_flush.py [--count 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.cas.harness import SimulatedOperator  # noqa: E402


async def run(count: int) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        async with SimulatedOperator(Path(workdir)) as op:
            client = op.client(poll_interval_s=1.0, backoff_base_s=0.05, backoff_cap_s=0.5)
            await op.cas.go_down()
            start = time.perf_counter()
            for n in range(count):
                # every record durable (fsync) before the call returns, as on the kiosk
                await client.upload_transaction({"id": f"tx-{n:05d}", "version": 1 + n % 3, "type": "buy",
                                                 "status": "completed", "fiat_minor": 2000, "currency": "EUR"})
            queued_s = time.perf_counter() - start
            assert client.queue_length() == count
            await op.cas.come_back()
            start = time.perf_counter()
            await client.start()
            deadline = time.monotonic() + 600
            while client.queue_length() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            flush_s = time.perf_counter() - start
            await client.stop()
            held = op.cas.transactions
            exactly_once = (len(held) == count
                            and all(held[f"tx-{n:05d}"]["version"] == 1 + n % 3 for n in range(count))
                            and all(v == 1 for v in op.cas.transaction_submissions.values()))
            print(f"transactions:          {count}")
            print(f"queue (durable) time:  {queued_s:.2f} s ({queued_s / count * 1e3:.2f} ms each)")
            print(f"flush after outage:    {flush_s:.2f} s ({count / flush_s:.0f} tx/s)")
            print(f"server holds:          {len(held)} distinct, submissions max "
                  f"{max(op.cas.transaction_submissions.values())}")
            print(f"exactly once:          {'yes' if exactly_once else 'NO'}")
            return 0 if exactly_once else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    return asyncio.run(run(parser.parse_args().count))


if __name__ == "__main__":
    sys.exit(main())
