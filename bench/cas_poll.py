"""Benchmark: poll round-trip to the CAS simulator on loopback over pinned mutual TLS,
on a kept-alive connection and with a new TLS handshake each time. Prints median and p99.

Run: .venv/bin/python bench/cas_poll.py [--count 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.cas.harness import SimulatedOperator  # noqa: E402


def summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{label:<28} n={len(samples):<5} median {statistics.median(ordered) * 1e3:7.2f} ms   "
            f"p99 {p99 * 1e3:7.2f} ms")


async def run(count: int) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        async with SimulatedOperator(Path(workdir)) as op:
            client = op.client()
            await client.poll_once()  # accept bundle 1 so later polls are steady state
            kept: list[float] = []
            for _ in range(count):
                start = time.perf_counter()
                await client.poll_once()
                kept.append(time.perf_counter() - start)
            fresh: list[float] = []
            for _ in range(max(10, count // 10)):
                await client._get_transport().close()  # force a new TCP + TLS handshake
                start = time.perf_counter()
                await client.poll_once()
                fresh.append(time.perf_counter() - start)
            await client.stop()
    print(summary("poll, kept-alive connection", kept))
    print(summary("poll, new TLS handshake", fresh))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    return asyncio.run(run(parser.parse_args().count))


if __name__ == "__main__":
    sys.exit(main())
