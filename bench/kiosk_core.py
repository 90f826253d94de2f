"""Kiosk-core benchmarks on simulators (issue: kiosk core).

1. Cold start: `atm run --simulate` as a fresh process until it prints the
   customer screen URL, against a bare `python -c pass` start in the same run.
2. Credit -> screen: host latency from the validator driver handing a credit
   to the kiosk until a WebSocket client of the customer screen receives the new
   total; baseline: the same thread-to-loop-to-WebSocket hop with no kiosk.
3. Journal: fsync'd journal credits per second against raw fsync'd appends to a
   file on the same disk.

Run: .venv/bin/python bench/kiosk_core.py [--starts 5] [--notes 200] [--writes 500]
Prints medians, p99 and ratios; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "atm"))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------------ 1. cold start

def cold_start(runs: int) -> dict[str, float]:
    kiosk_times, python_times = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_times.append(time.perf_counter() - t0)

        state = tempfile.mkdtemp(prefix="bench-start-")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "atm.cli", "--log-level", "ERROR", "run", "--simulate",
                                 "--ui-port", "0", "--state-dir", state], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            assert proc.stdout is not None
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if line.startswith("Customer screen:"):
                    kiosk_times.append(time.perf_counter() - t0)
                    break
                if not line and proc.poll() is not None:
                    raise RuntimeError("atm run --simulate exited before it was ready")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return {"kiosk_median_s": statistics.median(kiosk_times), "python_median_s": statistics.median(python_times)}


# ------------------------------------------------------------------------ 2. credit -> screen

async def _ws_latency_baseline(samples: int) -> list[float]:
    """Thread -> loop -> WebSocket client, with no kiosk in between."""
    from aiohttp import ClientSession, web
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def ws_handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        while True:
            item = await queue.get()
            await ws.send_str(item)

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    out = []
    async with ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
        for i in range(samples):
            t0 = time.perf_counter()
            threading.Thread(target=lambda: loop.call_soon_threadsafe(queue.put_nowait, str(i))).start()
            await ws.receive()
            out.append(time.perf_counter() - t0)
    await runner.cleanup()
    return out


async def _credit_latency(notes: int) -> list[float]:
    import json as _json
    from aiohttp import ClientSession
    from atm.ui.server import UiServer
    from hal import NoteCredited
    from kiosk_harness import Harness

    tmp = Path(tempfile.mkdtemp(prefix="bench-credit-"))
    from hal import Fiat
    h = Harness(tmp, max_buy=Fiat(10**9, "EUR"))
    stamps: dict[int, float] = {}
    original_sink = h.kiosk._sink

    def timing_sink(event):
        if isinstance(event, NoteCredited):
            stamps[len(stamps) + 1] = time.perf_counter()
        original_sink(event)

    h.kiosk._sink = timing_sink
    out: list[float] = []
    async with h:
        ui = UiServer(h.kiosk, None, host="127.0.0.1", port=0)
        url = await ui.start()
        await h.start_buy()
        async with ClientSession() as session, session.ws_connect(url.rstrip("/") + "/ws") as ws:
            for n in range(1, notes + 1):
                assert h.validator.insert_note(500)
                while True:
                    msg = _json.loads((await ws.receive()).data)
                    data = msg.get("data", {})
                    if data.get("inserted_minor") == 500 * n and not (data.get("message") or "").startswith("Note"):
                        if n in stamps:
                            out.append(time.perf_counter() - stamps[n])
                            break
                await h.wait_for(lambda: h.validator.state_info()["escrow"] is None)
        await ui.stop()
    return out


# ------------------------------------------------------------------------ 3. journal

def journal_rate(writes: int) -> dict[str, float]:
    from atm.journal import Journal
    from hal import Fiat, NoteCredited
    tmp = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=REPO / "bench" if os.access(REPO / "bench", os.W_OK)
                                else None))
    try:
        journal = Journal(tmp / "journal.sqlite")
        journal.open_buy("bench", "addr", "EUR")
        t0 = time.perf_counter()
        for _ in range(writes):
            journal.escrow_decided("validator", "1", Fiat(500, "EUR"), "stack", "bench")
            journal.record_credit(NoteCredited(device="validator", value=Fiat(500, "EUR"), code="1"))
        journal_s = time.perf_counter() - t0
        journal.close()

        t0 = time.perf_counter()
        with open(tmp / "raw.log", "ab") as f:
            for i in range(writes * 2):           # the journal wrote two facts per note
                f.write(b"credit %d 500 EUR\n" % i)
                f.flush()
                os.fsync(f.fileno())
        raw_s = time.perf_counter() - t0
    finally:
        for p in tmp.glob("*"):
            p.unlink()
        tmp.rmdir()
    return {"journal_per_s": writes * 2 / journal_s, "raw_per_s": writes * 2 / raw_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()

    start = cold_start(args.starts)
    baseline = asyncio.run(_ws_latency_baseline(args.notes))
    credit = asyncio.run(_credit_latency(args.notes))
    journal = journal_rate(args.writes)

    print(f"command: .venv/bin/python bench/kiosk_core.py --starts {args.starts} --notes {args.notes} "
          f"--writes {args.writes}")
    print("| measure | median | p99 | baseline (median) | ratio |")
    print("|---|---|---|---|---|")
    print(f"| cold start to ready (`atm run --simulate`) | {start['kiosk_median_s']*1000:.0f} ms | | "
          f"`python -c pass` {start['python_median_s']*1000:.0f} ms | "
          f"{start['kiosk_median_s']/start['python_median_s']:.1f}x |")
    print(f"| credit event -> new total on the screen's WebSocket | {statistics.median(credit)*1000:.2f} ms | "
          f"{_pct(credit, 99)*1000:.2f} ms | bare thread->loop->WebSocket {statistics.median(baseline)*1000:.2f} ms | "
          f"{statistics.median(credit)/statistics.median(baseline):.1f}x |")
    print(f"| journal writes (fsync'd facts/s) | {journal['journal_per_s']:.0f}/s | | raw fsync'd appends "
          f"{journal['raw_per_s']:.0f}/s | {journal['journal_per_s']/journal['raw_per_s']:.2f}x |")


if __name__ == "__main__":
    main()
