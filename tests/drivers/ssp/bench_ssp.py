"""Benchmark for the SSP driver (not a test: prints numbers, asserts nothing).

    .venv/bin/python tests/drivers/ssp/bench_ssp.py [--idle-seconds 20] [--notes 100]

1. CPU used by one SspValidator idle-polling at the usual rate (every 0.2 s), with the
   simulator in a separate process so only the driver's CPU is counted.
2. Host latency from the simulator writing the poll reply that carries the credit event to
   the driver calling the CreditRecorder (median and p99 over --notes notes, over a pty).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from drivers.ssp.driver import SspValidator  # noqa: E402
from hal.events import NoteEscrowed, NoteStacked  # noqa: E402
from simulators.ssp import SspSimulator  # noqa: E402


def idle_cpu(seconds: float) -> tuple[float, int]:
    sim = subprocess.Popen([sys.executable, "-m", "simulators.ssp", "--tcp", "0"], stdout=subprocess.PIPE,
                           text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        url = line.split(" on ", 1)[1].split(";", 1)[0]
        driver = SspValidator(url, poll_interval=0.2)
        driver.open(lambda event: None)
        driver.enable()
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        driver.close()
        return 100.0 * cpu / wall, int(wall / 0.2)
    finally:
        sim.terminate()
        sim.wait()


def credit_latency(notes: int) -> list[float]:
    sim = SspSimulator(step_s=0.01)
    url = sim.start("pty")
    recorded: list[float] = []
    done = threading.Event()
    driver = SspValidator(url, poll_interval=0.02)

    def sink(event: object) -> None:
        if isinstance(event, NoteEscrowed):
            driver.stack()
        elif isinstance(event, NoteStacked):
            done.set()

    driver.set_credit_recorder(lambda event: recorded.append(time.monotonic()))
    driver.open(sink)
    driver.enable()
    latencies = []
    for _ in range(notes):
        done.clear()
        sim.insert_note(1000)
        if not done.wait(5):
            raise SystemExit("note not stacked in 5 s")
        sent = [t["t"] for t in sim.state()["tx_log"] if t["poll"] and " ee " in f" {t['data']} "]
        latencies.append(recorded[-1] - sent[-1])
    driver.close()
    sim.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--notes", type=int, default=100)
    args = parser.parse_args()
    cpu, polls = idle_cpu(args.idle_seconds)
    print(f"idle polling every 0.2 s: {cpu:.2f} % of one CPU ({polls} polls in {args.idle_seconds:g} s)")
    lat = sorted(credit_latency(args.notes))
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print(f"credit frame written -> CreditRecorder called, {len(lat)} notes: "
          f"median {statistics.median(lat) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")


if __name__ == "__main__":
    main()
