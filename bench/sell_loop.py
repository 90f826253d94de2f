"""Sell benchmark (issue 9): the host overhead of a whole sale on simulators.

A kiosk on the real LCDM-4000 driver and the LCDM wire simulator over TCP (1 ms per
note) sells 80.00 EUR again and again: choose the amount, get the deposit address,
the payment is proven, the notes are planned, journaled, dispensed, booked, the
receipt printed. The CAS is the tests' sell CAS (tests/atm/sell_world.py: the
interface's two cash-out calls, answered at once) and the payment poll runs every 2 ms,
so the figure is the kiosk's own (plus up to 10 ms of this script's screen polling).

Baseline, measured in the same run: the same dispense (notes per cassette) sent by the
bare driver to the same simulator, with no kiosk, journal or screen around it.

Run: .venv/bin/python bench/sell_loop.py [--sales 50]
Prints medians and p90 and the ratio; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AMOUNT = 8000                                   # 80.00 EUR: 50 + 20 + 10 by the fewest notes


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.9 * (len(ordered) - 1))]


async def kiosk_sales(sales: int) -> list[float]:
    from tests.atm.sell_world import SellKiosk
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with SellKiosk(Path(tmp), cassettes=[(1000, 500), (2000, 500), (5000, 500)]) as k:
            k.kiosk.payment_poll_s = 0.002      # a real kiosk polls every few seconds; here the poll is not the cost
            for _ in range(sales):
                start = time.perf_counter()
                tx = await k.sell(AMOUNT)
                k.cas.pay(tx)
                await k.wait_for(lambda: k.screen == "sell_receipt")
                times.append(time.perf_counter() - start)
                assert (await k.act("done"))["ok"]
                await k.wait_for(lambda: k.screen == "idle")
    return times


def bare_dispenses(count: int) -> list[float]:
    from drivers.lcdm.driver import Lcdm4000Dispenser
    from simulators.lcdm import LcdmSimulator
    sim = LcdmSimulator("lcdm4000", [(1000, 500), (2000, 500), (5000, 500)], note_s=0.001)
    url = sim.start("tcp")
    dispenser = Lcdm4000Dispenser(url, currency="EUR", denominations=[1000, 2000, 5000], response_timeout=10.0)
    done = threading.Event()
    dispenser.open(lambda event: done.set() if type(event).__name__ == "DispenseCompleted" else None)
    ids = dispenser.cassette_ids
    times: list[float] = []
    try:
        for i in range(count):
            done.clear()
            start = time.perf_counter()
            dispenser.dispense(f"bench-{i}", {ids[0]: 1, ids[1]: 1, ids[2]: 1})
            if not done.wait(10):
                raise TimeoutError("the dispenser did not answer")
            times.append(time.perf_counter() - start)
    finally:
        dispenser.close()
        sim.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=50)
    args = parser.parse_args()
    baseline = bare_dispenses(args.sales)
    sales = asyncio.run(kiosk_sales(args.sales))
    base_med, sale_med = statistics.median(baseline), statistics.median(sales)
    print(f"bare driver dispense (baseline): median {base_med * 1000:.1f} ms, p90 {_p90(baseline) * 1000:.1f} ms")
    print(f"whole sale at the kiosk:          median {sale_med * 1000:.1f} ms, p90 {_p90(sales) * 1000:.1f} ms")
    print(f"ratio {sale_med / base_med:.2f}x; kiosk overhead per sale {(sale_med - base_med) * 1000:.1f} ms "
          f"(address, proof, plan, journal, booking, receipt, screens)")


if __name__ == "__main__":
    main()
