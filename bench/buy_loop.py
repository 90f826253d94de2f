"""Buy benchmark (issue 8): host time per simulated buy end to end, journal facts per
buy, and the kiosk's memory over 1,000 buys in one run.

One kiosk process plays customers back to back: start, scan, insert 20.00 and 50.00
EUR, finish, confirm, receipt, done. The journal is a real SQLite file (WAL,
synchronous=FULL, so every fact is an fsync on this disk). Devices are the in-process
stand-ins and the stand-in CAS, so the figures are the kiosk core's own cost; with
--wire-buys N a second, shorter run drives the ID-003 driver against the ID-003
simulator over TCP (its poll interval dominates that figure).

Run: .venv/bin/python bench/buy_loop.py [--buys 1000] [--wire-buys 20]
Prints medians, p99, facts per buy, and RSS every 100 buys; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
NOTES = (2000, 5000)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.001)


def _build(state: Path, wire: Any = None) -> tuple[Any, Any, Any, Any]:
    from atm.cas.standin import StandinCas, standin_settings
    from atm.config import Config, Timeouts
    from atm.journal import CACHE_KIB as JOURNAL_CACHE_KIB, Journal
    from atm.kiosk import DeviceSet, Kiosk
    from hal import Fiat
    from simulators.standin import StandinPrinter, StandinScanner, StandinValidator
    config = Config(source="<bench>", state_dir=state, min_buy=Fiat(500, "EUR"), max_buy=Fiat(100_000, "EUR"),
                    timeouts=Timeouts(scan=60, cash=60, confirm=60, sending=60, receipt=60, recheck=60))
    journal = Journal(state / "journal.sqlite")
    cas = StandinCas(state / "cas.sqlite", settings=standin_settings(config.min_buy, config.max_buy, "5", None))
    # The stand-in CAS's ledger lives in this process only for the benchmark (a real CAS is
    # another machine): bound its page cache like the journal's, so RSS shows the kiosk.
    cas._db.execute(f"PRAGMA cache_size=-{JOURNAL_CACHE_KIB}")
    if wire is not None:
        from drivers.id003.driver import Id003Validator
        validator: Any = Id003Validator(wire.url, currency="EUR", poll_interval=0.02)
    else:
        validator = StandinValidator()
    devices = DeviceSet(validator=validator, scanner=StandinScanner(), printer=StandinPrinter())
    kiosk = Kiosk(dataclasses.replace(config), journal, cas, devices)
    return kiosk, journal, devices, validator


async def run(buys: int, wire: bool) -> dict[str, Any]:
    sim = None
    if wire:
        from simulators.id003 import Id003Simulator
        sim = Id003Simulator(currency="EUR", step_s=0.005)
        sim.start("tcp")
    state = Path(tempfile.mkdtemp(prefix="bench-buy-"))
    kiosk, journal, devices, validator = _build(state, sim)
    insert = sim.insert_note if sim is not None else validator.insert_note
    await kiosk.start()
    times: list[float] = []
    facts: list[int] = []
    rss: list[tuple[int, int]] = [(0, rss_kib())]
    objects: list[tuple[int, int]] = [(0, len(gc.get_objects()))]
    try:
        await _until(lambda: kiosk.state == "idle", "idle")
        for n in range(1, buys + 1):
            facts_before = journal._rows("SELECT COUNT(*) AS n FROM facts")[0]["n"]
            t0 = time.perf_counter()
            assert (await kiosk.handle_action({"action": "start_buy"}))["ok"]
            await _until(lambda: kiosk.state == "buy_scan", "scan")
            devices.scanner.present(ADDRESS)
            await _until(lambda: kiosk.snapshot()["screen"] == "insert_cash", "cash")
            for minor in NOTES:
                expected = kiosk.snapshot()["data"]["inserted_minor"] + minor
                await _until(lambda: insert(minor), "note taken")
                await _until(lambda: kiosk.snapshot()["data"].get("inserted_minor") == expected, "credit")
            await _until(kiosk.nothing_in_flight, "settled")
            assert (await kiosk.handle_action({"action": "finish_cash"}))["ok"]
            assert (await kiosk.handle_action({"action": "confirm"}))["ok"]
            await _until(lambda: kiosk.state == "buy_receipt" and not journal.pending_sends(), "sent")
            assert (await kiosk.handle_action({"action": "done"}))["ok"]
            await _until(lambda: kiosk.state == "idle", "idle again")
            times.append(time.perf_counter() - t0)
            facts.append(journal._rows("SELECT COUNT(*) AS n FROM facts")[0]["n"] - facts_before)
            devices.printer.printed.clear()         # the stand-in printer's paper, not the kiosk's memory
            if n % 100 == 0 or n == buys:
                gc.collect()
                rss.append((n, rss_kib()))
                objects.append((n, len(gc.get_objects())))
    finally:
        await kiosk.stop()
        journal.close()
        if sim is not None:
            sim.stop()
    return {"buys": buys, "median_ms": statistics.median(times) * 1000, "p99_ms": _pct(times, 99) * 1000,
            "facts_per_buy_median": statistics.median(facts), "facts_per_buy_max": max(facts), "rss_kib": rss,
            "objects": objects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buys", type=int, default=1000)
    parser.add_argument("--wire-buys", type=int, default=20, help="buys over the ID-003 wire simulator (0: none)")
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args.buys, wire=False))
    print(f"stand-in devices, {result['buys']} buys: median {result['median_ms']:.1f} ms/buy, "
          f"p99 {result['p99_ms']:.1f} ms; journal facts per buy: median {result['facts_per_buy_median']}, "
          f"max {result['facts_per_buy_max']}")
    first, *_, last = result["rss_kib"]
    after_100 = result["rss_kib"][1] if len(result["rss_kib"]) > 2 else first
    print("RSS KiB by buys done: " + ", ".join(f"{n}:{kib}" for n, kib in result["rss_kib"]))
    print(f"RSS after {last[0]} buys: {last[1]} KiB ({last[1] - after_100[1]:+d} KiB since buy {after_100[0]})")
    print("Python objects by buys done: " + ", ".join(f"{n}:{count}" for n, count in result["objects"]))
    if args.wire_buys:
        wire = asyncio.run(run(args.wire_buys, wire=True))
        print(f"ID-003 driver + wire simulator over TCP, {wire['buys']} buys: median {wire['median_ms']:.1f} ms/buy, "
              f"p99 {wire['p99_ms']:.1f} ms; journal facts per buy: median {wire['facts_per_buy_median']}")


if __name__ == "__main__":
    main()
