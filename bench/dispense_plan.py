"""Time to plan a dispense across four cassettes, for every amount up to the most the
cassettes can pay within the per-transaction note limit, and to list the payable amounts
for the sell screen: the planner behind atm.cash_units, far below what a customer notices.
Run: .venv/bin/python bench/dispense_plan.py [--max-notes N] [--rounds R]

Cassettes: 10, 20, 50 and 100 EUR with 500 notes each (an LCDM-4000 fully loaded). Every
amount that is a multiple of the smallest note is planned, payable or not; the median,
90th percentile and worst per plan are reported, and the median of `rounds` sweeps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atm.cash_units import UnitConfig, compute_books, payable_amounts, plan_dispense  # noqa: E402
from hal.money import Fiat  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-notes", type=int, default=40, help="notes per transaction (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="sweeps over every amount (default 3)")
    args = parser.parse_args(argv)
    config = [UnitConfig(str(i + 1), Fiat(minor, "EUR"), 500) for i, minor in enumerate((1000, 2000, 5000, 10000))]
    books = compute_books(config)
    top = max(u.denomination.minor for u in books.units) * args.max_notes
    amounts = [Fiat(m, "EUR") for m in range(1000, top + 1, 1000)]
    per_plan: list[float] = []
    sweeps: list[float] = []
    listing: list[float] = []
    payable = 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        payable = 0
        for amount in amounts:
            t = time.perf_counter()
            plan = plan_dispense(books, amount, max_notes=args.max_notes)
            per_plan.append(time.perf_counter() - t)
            payable += plan is not None
        sweeps.append(time.perf_counter() - start)
        t = time.perf_counter()
        listed = payable_amounts(books, max_notes=args.max_notes)
        listing.append(time.perf_counter() - t)
    assert len(listed) == payable, "payable_amounts disagrees with plan_dispense"
    per_plan.sort()
    ms = 1000.0
    print(f"command: {Path(sys.executable).name} bench/dispense_plan.py --max-notes {args.max_notes} "
          f"--rounds {args.rounds}")
    print(f"cassettes: 4 (10/20/50/100 EUR x 500), amounts: {len(amounts)} (10.00 .. {amounts[-1]}), "
          f"payable within {args.max_notes} notes: {payable}")
    print(f"plan one amount: median {statistics.median(per_plan) * ms:.3f} ms, "
          f"p90 {per_plan[int(len(per_plan) * 0.9)] * ms:.3f} ms, worst {per_plan[-1] * ms:.3f} ms")
    print(f"every amount (one sweep): median {statistics.median(sweeps) * ms:.1f} ms")
    print(f"list payable amounts (sell screen): median {statistics.median(listing) * ms:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
