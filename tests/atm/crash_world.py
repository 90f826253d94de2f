"""The three processes of the kiosk-level crash tests (tests/atm/test_crash_safety.py),
each started as `python tests/atm/crash_world.py ROLE ...`:

- `cas`: the CAS simulator with a simulated operator (pairs the kiosk, signs its
  settings); it outlives every kiosk it serves, so its ledger shows every send ever
  asked for. It also checks write-ahead from the outside: a send whose request is
  not yet durable in the kiosk's journal is recorded as a violation.
- `validator`: the ID-003 simulator over TCP; `insert N` on stdin offers a note. It
  checks that a VEND VALID is acknowledged only once the credit is in the journal.
- `kiosk`: a kiosk on the ID-003 driver and the paired CAS client, journal in a state
  folder, playing one customer's buy; `ATM_CRASH_AT` kills it at a write-ahead point.

Lines on stdout are JSON; the test drives the three by their stdin and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


def _say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, default=str), flush=True)


def _journal_count(journal: Path, sql: str, params: tuple = ()) -> int:
    """Read the kiosk's journal as another process would: committed rows only."""
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute(sql, params).fetchone()[0])
    except sqlite3.OperationalError:        # no tables yet
        return 0
    finally:
        db.close()


# ------------------------------------------------------------------------------ cas

async def _cas(args: argparse.Namespace) -> None:
    from simulators.cas.harness import SimulatedOperator
    from simulators.cas.server import BODY
    journal = Path(args.journal)
    operator = SimulatedOperator(Path(args.workdir), kiosk_id="kiosk-1", rates={"EUR": "50000"}, settings={
        "currency": "EUR", "min_buy_minor": 500, "max_buy_minor": args.max_buy, "fee_percent": "5",
        "max_offline_s": 3600})
    violations: list[str] = []
    checked = [0]
    send = operator.cas._send

    async def checked_send(request: Any) -> Any:
        checked[0] += 1
        request_id = request[BODY].get("id") if isinstance(request[BODY], dict) else None
        if _journal_count(journal, "SELECT COUNT(*) FROM sends WHERE request_id=?", (request_id,)) == 0:
            violations.append(f"send {request_id} reached the CAS before the kiosk journaled it")
        return await send(request)

    operator.cas._send = checked_send           # bound before start(): the route uses it
    await operator.start()
    _say({"ready": True, "cas_state": str(operator.state_dir)})
    loop = asyncio.get_running_loop()
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if line == "ledger":
                _say({"sends": operator.cas.sends, "requests": dict(operator.cas.send_requests),
                      "violations": violations, "checked": checked[0]})
            elif line.startswith("rate "):
                operator.cas.set_rate("EUR", line.split()[1])
                _say({"ok": True})
            elif line == "quit":
                break
    finally:
        await operator.stop()


# ------------------------------------------------------------------------------ validator

def _validator(args: argparse.Namespace) -> None:
    from drivers.id003.frames import Command
    from simulators.id003 import Id003Simulator
    journal = Path(args.journal)
    sim = Id003Simulator(currency="EUR")
    violations: list[str] = []
    acked = [0]
    handle = sim._handle

    def checked_handle(frame: Any) -> Any:
        if frame.code == Command.ACK and sim._phase == "vend_valid":
            acked[0] += 1
            credits = _journal_count(journal, "SELECT COUNT(*) FROM facts WHERE kind='credit_recorded'")
            if credits < acked[0]:
                violations.append(f"VEND VALID #{acked[0]} acknowledged with {credits} credit(s) in the journal")
        return handle(frame)

    sim._handle = checked_handle
    url = sim.start("tcp")
    _say({"url": url})
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "insert":
                _say({"ok": sim.insert_note(int(words[1]))})
            elif words[0] == "state":
                _say({**sim.state(), "violations": violations, "checked": acked[0]})
            elif words[0] == "quit":
                break
    finally:
        sim.stop()


# ------------------------------------------------------------------------------ kiosk

async def _kiosk(args: argparse.Namespace) -> int:
    from atm.cas.client import CasClient
    from atm.composition import build_devices
    from atm.config import Config, DeviceConfig, Timeouts
    from atm.journal import Journal
    from atm.kiosk import Kiosk
    from hal import Fiat

    state = Path(args.state_dir)
    config = Config(source="<crash test>", state_dir=state, min_buy=Fiat(500, "EUR"),
                    max_buy=Fiat(args.max_buy, "EUR"), fee_percent="5", cas_mode="client",
                    cas_state_dir=Path(args.cas_state), cas_offline_stop_after_s=3600,
                    timeouts=Timeouts(scan=60, cash=60, confirm=60, sending=60, receipt=60, recheck=60),
                    devices={"validator": DeviceConfig("validator", "id003", {"port": args.validator,
                                                                              "poll_interval": 0.05}),
                             "scanner": DeviceConfig("scanner", "standin", {}),
                             "printer": DeviceConfig("printer", "standin", {})})
    devices = build_devices(config, simulate=True)        # stand-ins only for scanner and printer
    journal = Journal(state / "journal.sqlite")
    cas = CasClient.from_state(Path(args.cas_state), poll_interval_s=0.5, timeout_s=5.0)
    kiosk = Kiosk(config, journal, cas, devices)
    kiosk.retry_interval = 0.5
    cas.on_settings = kiosk.settings_changed
    await cas.start()
    await kiosk.start()
    loop = asyncio.get_running_loop()

    async def until(check: Any, what: str, timeout: float = 45.0) -> None:
        deadline = loop.time() + timeout
        while not check():
            if loop.time() > deadline:
                raise TimeoutError(f"{what}: kiosk shows {kiosk.snapshot()}")
            await asyncio.sleep(0.05)

    def data() -> dict[str, Any]:
        return kiosk.snapshot()["data"]

    try:
        await until(lambda: kiosk.state == "idle" and data().get("buy_enabled"), "buying never became possible")
        assert (await kiosk.handle_action({"action": "start_buy"}))["ok"]
        await until(lambda: kiosk.state == "buy_scan", "no scan screen")
        devices.scanner.present(ADDRESS)
        await until(lambda: kiosk.state == "buy_cash", "address not taken")
        for minor in [int(n) for n in args.notes.split(",")]:
            expected = data()["inserted_minor"] + minor
            _say({"need": minor})
            await until(lambda: data().get("inserted_minor") == expected, f"the {minor} note was not credited")
        await until(lambda: kiosk.nothing_in_flight(), "a note stayed in flight")
        assert (await kiosk.handle_action({"action": "finish_cash"}))["ok"]
        await until(lambda: kiosk.state == "buy_confirm", "no confirm screen")
        assert (await kiosk.handle_action({"action": "confirm"}))["ok"]
        await until(lambda: kiosk.state == "buy_receipt", "no receipt screen")
        await until(lambda: not journal.pending_sends() and not kiosk.settlement.unsettled(), "sends left over")
        _say({"done": kiosk.tx_id})
        return 0
    except (TimeoutError, AssertionError) as exc:
        _say({"error": str(exc)})
        return 3
    finally:
        await kiosk.stop()
        await cas.stop()
        journal.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    cas = sub.add_parser("cas")
    cas.add_argument("--workdir", required=True)
    cas.add_argument("--journal", required=True)
    cas.add_argument("--max-buy", type=int, default=8000)
    validator = sub.add_parser("validator")
    validator.add_argument("--journal", required=True)
    kiosk = sub.add_parser("kiosk")
    kiosk.add_argument("--state-dir", required=True)
    kiosk.add_argument("--validator", required=True)
    kiosk.add_argument("--cas-state", required=True)
    kiosk.add_argument("--notes", default="2000,5000,1000")
    kiosk.add_argument("--max-buy", type=int, default=8000)
    args = parser.parse_args()
    if args.role == "cas":
        asyncio.run(_cas(args))
        return 0
    if args.role == "validator":
        _validator(args)
        return 0
    return asyncio.run(_kiosk(args))


if __name__ == "__main__":
    threading.current_thread().name = "crash-world"
    sys.exit(main())
