"""The kiosk process of the cash-out crash tests (tests/atm/test_sell_crash_safety.py):
`python tests/atm/sell_crash_world.py PLAY --state DIR --dispenser URL --model M ...`.

A kiosk on the real LCDM driver (the LCDM simulator runs in the test's process over TCP,
so what left the dispenser outlives every kiosk) and the stand-in CAS with sell rules
(its regtest wallet and simulated chain persist in the state folder, so a payment made
before a crash is still proven after it). `ATM_CRASH_AT` kills it at a write-ahead point.
Plays: `sell` (choose, pay with two confirmations, collect), `sell_unpaid` (choose, leave
the payment screen: a redeem code), `redeem CODE`, `recover` (start, recover, stop).
One JSON line on stdout per result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SELL_RULES = {"min_sell_minor": 1_000, "max_sell_minor": 50_000, "fee_percent": "5", "fixed_fee_minor": 0,
              "zero_conf_cap_sats": 10_000, "confirmations_required": 2, "invoice_ttl_s": 900}


def _say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, default=str), flush=True)


def make_cas(state: Path) -> Any:
    from atm.cas.standin import StandinCas, standin_settings
    from hal import Fiat
    return StandinCas(state / "standin-cas.sqlite", sell=SELL_RULES,
                      settings=standin_settings(Fiat(500, "EUR"), Fiat(10_000, "EUR"), "5", None))


async def main(args: argparse.Namespace) -> None:
    from atm.config import Timeouts
    from atm.journal import Journal
    from atm.kiosk import DeviceSet, Kiosk
    from drivers.lcdm.driver import Lcdm2000Dispenser, Lcdm4000Dispenser
    from hal import Fiat
    from simulators.standin import StandinPrinter, StandinScanner, StandinValidator
    from tests.atm.kiosk_harness import make_config

    state = Path(args.state)
    config = make_config(state, kiosk_id="kiosk-1",
                         timeouts=Timeouts(scan=30, cash=30, confirm=30, sending=30, receipt=30, maintenance=30,
                                           recheck=30, payment=60, dispense=30))
    journal = Journal(state / "journal.sqlite")
    cas = make_cas(state)
    cls = Lcdm4000Dispenser if args.model == "lcdm4000" else Lcdm2000Dispenser
    denominations = [int(d) for d in args.denominations.split(",")]
    dispenser = cls(args.dispenser, currency="EUR", denominations=denominations, response_timeout=10.0)
    if not journal.cassette_loads():
        for cid, denomination, count in zip(dispenser.cassette_ids, denominations,
                                            [int(c) for c in args.counts.split(",")]):
            journal.load_cassette(cid, Fiat(denomination, "EUR"), count, near_empty=2)
    scanner = StandinScanner()
    kiosk = Kiosk(config, journal, cas, DeviceSet(validator=StandinValidator(), scanner=scanner,
                                                  printer=StandinPrinter(), dispenser=dispenser))
    kiosk.payment_poll_s = 0.05

    def screen() -> str:
        return kiosk.snapshot()["screen"]

    async def wait(names: tuple[str, ...], timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while screen() not in names:
            if loop.time() > deadline:
                raise TimeoutError(f"waited for {names}; kiosk shows {kiosk.snapshot()}")
            await asyncio.sleep(0.01)

    async def act(action: str, **fields: Any) -> dict[str, Any]:
        return await kiosk.handle_action({"action": action, **fields})

    await kiosk.start()
    try:
        await wait(("idle",))
        if args.play in ("sell", "sell_unpaid"):
            assert (await act("start_sell"))["ok"], kiosk.snapshot()
            await wait(("sell_amount",))
            answer = await act("choose_amount", minor=args.amount)
            assert answer["ok"], answer
            await wait(("sell_pay", "sell_receipt"))
            tx = kiosk.tx_id
            _say({"tx": tx})
            if args.play == "sell":
                cas.pay_invoice(tx, int(kiosk.snapshot()["data"]["sats"]), confirmations=2)
            else:
                await act("cancel")
            await wait(("sell_receipt",), timeout=60)
            _say({"tx": tx, "end": kiosk.snapshot()["data"]})
        elif args.play == "redeem":
            assert (await act("start_redeem"))["ok"], kiosk.snapshot()
            await wait(("redeem_scan",))
            scanner.present(args.code)
            if args.twice:
                scanner.present(args.code)
            await wait(("redeem_receipt",), timeout=60)
            _say({"end": kiosk.snapshot()["data"]})
        else:
            _say({"recovered": True, "idle": kiosk.snapshot()["data"]})
    finally:
        await kiosk.stop()
        journal.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("play", choices=("sell", "sell_unpaid", "redeem", "recover"))
    parser.add_argument("--state", required=True)
    parser.add_argument("--dispenser", required=True)
    parser.add_argument("--model", default="lcdm4000")
    parser.add_argument("--denominations", default="1000,2000,5000")
    parser.add_argument("--counts", default="30,30,20")
    parser.add_argument("--amount", type=int, default=8000)
    parser.add_argument("--code", default="")
    parser.add_argument("--twice", action="store_true")
    asyncio.run(main(parser.parse_args()))
