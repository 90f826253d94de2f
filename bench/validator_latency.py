"""Bill validator drivers: CPU used while idle-polling, and credit latency.

1. Idle CPU: each driver (id003, ssp when drivers.ssp exists, ccnet) polls its
   simulator, which runs in a separate process so that only the driver's CPU is
   counted: process CPU seconds / wall seconds over --idle-seconds.
2. Credit latency (ID-003 and ccNet): from the simulator writing the settled-event frame
   (ID-003 VEND VALID, ccNet BILL STACKED) to the driver's sink receiving NoteCredited
   (driver read + decode + recorder + ACK + event), median and p99 over --notes notes.
   SSP's figure comes from tests/drivers/ssp/bench_ssp.py.

    .venv/bin/python bench/validator_latency.py [--idle-seconds 10] [--notes 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drivers.ccnet.driver import CcnetValidator  # noqa: E402
from drivers.id003.driver import Id003Validator  # noqa: E402
from hal.events import NoteCredited, NoteEscrowed  # noqa: E402
from simulators.ccnet import CcnetSimulator  # noqa: E402
from simulators.id003 import Id003Simulator  # noqa: E402

SIM_PROCESS = """
import sys
from simulators.{module} import {cls}
sim = {cls}()
print(sim.start("tcp"), flush=True)
sys.stdin.read()
sim.stop()
"""


def idle_cpu(driver_name: str, seconds: float) -> tuple[float, float]:
    """(CPU fraction of one core, poll interval) for one driver idle-polling its simulator."""
    module, cls = {"id003": ("id003", "Id003Simulator"), "ssp": ("ssp", "SspSimulator"),
                   "ccnet": ("ccnet", "CcnetSimulator")}[driver_name]
    proc = subprocess.Popen([sys.executable, "-c", SIM_PROCESS.format(module=module, cls=cls)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if driver_name == "id003":
            driver = Id003Validator(url)
        elif driver_name == "ccnet":
            driver = CcnetValidator(url)
        else:
            from drivers.ssp.driver import SspValidator
            driver = SspValidator(url)
        driver.set_credit_recorder(lambda event: None)
        driver.open(lambda event: None)
        try:
            driver.enable()
            time.sleep(1.0)            # let the enable settle before measuring
            cpu0, wall0 = time.process_time(), time.perf_counter()
            time.sleep(seconds)
            cpu1, wall1 = time.process_time(), time.perf_counter()
        finally:
            driver.close()
        return (cpu1 - cpu0) / (wall1 - wall0), driver.poll_interval
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def credit_latency(driver_name: str, notes: int, poll_interval: float) -> list[float]:
    """Seconds from the simulator writing the settled event to the sink getting NoteCredited, per note."""
    if driver_name == "ccnet":
        sim = CcnetSimulator(step_s=0.01)
        sent_at = lambda: sim.last_stacked_sent_at  # noqa: E731
        driver_cls = CcnetValidator
    else:
        sim = Id003Simulator(step_s=0.01)
        sent_at = lambda: sim.last_vend_valid_sent_at  # noqa: E731
        driver_cls = Id003Validator
    url = sim.start("pty")
    latencies: list[float] = []
    credited = threading.Event()
    driver = driver_cls(url, poll_interval=poll_interval)

    def sink(event):
        if isinstance(event, NoteCredited):
            latencies.append(time.perf_counter() - sent_at())
            credited.set()
        elif isinstance(event, NoteEscrowed) and event.value is not None:
            driver.stack()

    driver.set_credit_recorder(lambda event: None)
    try:
        driver.open(sink)
        driver.enable()
        for _ in range(notes):
            credited.clear()
            deadline = time.monotonic() + 10
            while not sim.insert_note(1000):
                if time.monotonic() > deadline:
                    raise SystemExit("simulator never became ready for the next note")
                time.sleep(0.002)
            if not credited.wait(10):
                raise SystemExit("a note was not credited within 10 s")
    finally:
        driver.close()
        sim.stop()
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--latency-poll-interval", type=float, default=0.05,
                        help="poll interval for the latency run (shorter only makes the run faster)")
    args = parser.parse_args()

    drivers = ["id003"]
    if importlib.util.find_spec("drivers.ssp") is not None:
        drivers.append("ssp")
    drivers.append("ccnet")
    print(f"command: {' '.join([Path(sys.executable).name, 'bench/validator_latency.py'] + sys.argv[1:])}")
    print(f"{'driver':8} {'poll interval':>14} {'idle CPU (% of one core)':>26}")
    for name in drivers:
        fraction, interval = idle_cpu(name, args.idle_seconds)
        print(f"{name:8} {interval * 1000:>11.0f} ms {fraction * 100:>25.2f}%")

    for name, frame in (("id003", "VEND VALID"), ("ccnet", "BILL STACKED")):
        latencies = credit_latency(name, args.notes, args.latency_poll_interval)
        ms = [x * 1000 for x in latencies]
        print()
        print(f"{name} credit latency, simulator {frame} write -> sink NoteCredited, {len(ms)} notes over a pty:")
        print(f"  median {statistics.median(ms):.2f} ms   p99 {percentile(ms, 99):.2f} ms   max {max(ms):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
