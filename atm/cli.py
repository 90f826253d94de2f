"""`atm`: the kiosk's command line. `atm run` starts the kiosk (add --simulate for
simulated hardware), `atm demo` runs a scripted buy, `atm sim` drives a running
simulated kiosk, `atm diagram` draws the state table, `atm device ...` and
`atm cas ...` are technicians' tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from hal.errors import ConfigurationError, DeviceError

log = logging.getLogger("atm")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _load_config(path: str | None, simulate: bool):
    from atm import config as config_mod
    from atm.app import REPO_CONFIG
    if path is None:
        if not simulate:
            raise ConfigurationError("no configuration given: pass --config /etc/atm/kiosk.toml "
                                     "(or --simulate to run on simulated hardware)")
        path = str(REPO_CONFIG / "simulate.toml")
    return config_mod.load(path)


_PORT_OPTIONS = ("validator", "printer", "scanner", "dispenser")


def _add_port_options(p: argparse.ArgumentParser) -> None:
    for kind in _PORT_OPTIONS:
        p.add_argument(f"--{kind}-port", metavar="URL",
                       help=f"with --simulate: use the {kind} at this pyserial URL (a real device, or an outside "
                            f"emulator such as socket://127.0.0.1:7001) instead of the built-in simulator; "
                            f"--{kind} names its protocol" + (" (camera: a camera source)" if kind == "scanner" else ""))


def _external_ports(args: argparse.Namespace) -> dict[str, str]:
    ports = {kind: getattr(args, f"{kind}_port", None) for kind in _PORT_OPTIONS}
    ports = {kind: url for kind, url in ports.items() if url}
    if ports and not args.simulate:
        raise ConfigurationError(f"--{next(iter(ports))}-port is for --simulate; a real kiosk names its ports in "
                                 "the configuration's [devices.*] tables")
    return ports


def _add_sim_choices(p: argparse.ArgumentParser) -> None:
    from simulators.world import DISPENSERS, PRINTERS, SCANNERS, VALIDATORS
    p.add_argument("--validator", choices=VALIDATORS, default="id003", help="simulated bill validator (default id003)")
    p.add_argument("--printer", choices=PRINTERS, default="escpos", help="simulated printer (default escpos)")
    p.add_argument("--scanner", choices=SCANNERS, default="camera", help="simulated scanner (default camera)")
    p.add_argument("--dispenser", choices=DISPENSERS, default="lcdm4000",
                   help="simulated cash dispenser (default lcdm4000; lcdm2000 has no LAST STATUS)")
    p.add_argument("--cas", choices=("simulator", "standin"), default="simulator",
                   help="CAS: a TLS CAS simulator the kiosk pairs with (default), or the in-process stand-in")


async def _simulated_cas(args: argparse.Namespace, config: Any) -> tuple[Any, Any, Any]:
    """(operator, cas client, config) for simulate mode; (None, None, config) for the stand-in."""
    if args.cas != "simulator":
        return None, None, dataclasses.replace(config, cas_mode="standin")
    from atm.app import start_simulated_cas
    operator, client = await start_simulated_cas(config)
    return operator, client, dataclasses.replace(config, cas_mode="client")


# ------------------------------------------------------------------------------------ run

async def _run(args: argparse.Namespace) -> int:
    from atm.app import StateDirLock
    config = _load_config(args.config, args.simulate)
    if args.ui_port is not None:
        config = dataclasses.replace(config, ui_port=args.ui_port)
    if args.state_dir:
        config = dataclasses.replace(config, state_dir=Path(args.state_dir))
    if args.language:
        from atm import texts
        if args.language not in texts.available_languages():
            raise SystemExit(f"atm run: --language {args.language!r}: no texts for it; have "
                             f"{', '.join(texts.available_languages())} (atm/locale/*.toml)")
        config = dataclasses.replace(config, language=args.language)
    ports = _external_ports(args)
    # Before anything in the state folder is touched: a second kiosk on the same
    # folder would rewrite the first one's keys and share its journal.
    with StateDirLock(config.state_dir):
        return await _run_locked(args, config, ports)


async def _run_locked(args: argparse.Namespace, config: Any, ports: dict[str, str]) -> int:
    from atm.app import RunningKiosk, with_devices
    world = None
    operator = cas = None
    try:
        if args.simulate:
            from simulators.world import SimulatedWorld
            try:
                world = SimulatedWorld(currency=config.currency, validator=args.validator, printer=args.printer,
                                       scanner=args.scanner, network=config.network, ports=ports,
                                       dispenser=args.dispenser)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
            config = with_devices(config, world.start())
            operator, cas, config = await _simulated_cas(args, config)
        running = RunningKiosk(config, simulate=args.simulate, world=world, cas=cas)
        if world is not None:
            world.attach_chain(operator.cas if operator is not None else running.cas)
            if "dispenser" not in ports:
                _book_simulated_cassettes(running.journal, world)
        await running.start()
    except BaseException:
        if world:
            world.stop()
        if operator:
            await operator.stop()
        raise
    print(f"Customer screen: {running.url}", flush=True)
    if args.simulate:
        print(f"Simulator control panel: {running.url}sim", flush=True)
        for kind, url in ports.items():
            print(f"The {kind} is the device at {url}; the panel does not drive it", flush=True)
        print("Drive it from a shell too, e.g.: atm sim qr "
              f"{'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'} ; atm sim insert 2000", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping kiosk", flush=True)
    try:
        await running.stop()
    finally:
        if world:
            world.stop()
        if operator:
            await operator.stop()
    return 0


# ------------------------------------------------------------------------------------ demo

async def _demo(args: argparse.Namespace) -> dict[str, Any]:
    """A scripted buy on simulators: scan, insert notes, confirm, wait for the receipt."""
    from atm.app import RunningKiosk, StateDirLock, with_devices
    from simulators.world import SAMPLE_ADDRESSES, SimulatedWorld
    config = _load_config(args.config, True)
    state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="atm-demo-"))
    config = dataclasses.replace(config, state_dir=state_dir)
    world = SimulatedWorld(currency=config.currency, validator=args.validator, printer=args.printer,
                           scanner=args.scanner, network=config.network, dispenser=args.dispenser)
    lock = StateDirLock(state_dir).acquire()  # a demo on a running kiosk's folder would share its journal
    operator = running = None
    notes = [int(n) for n in args.notes.split(",") if n.strip()]
    try:
        config = with_devices(config, world.start())
        operator, cas, config = await _simulated_cas(args, config)
        running = RunningKiosk(config, simulate=True, world=world, ui=False, cas=cas)
        kiosk = running.kiosk
        _book_simulated_cassettes(running.journal, world)
        await running.start()

        def screen() -> str:
            return kiosk.snapshot()["screen"]

        async def wait_screen(name: str, timeout: float = 20.0) -> None:
            if not await _until(lambda: screen() == name, timeout):
                raise TimeoutError(f"demo: waited {timeout:.0f} s for the {name!r} screen; kiosk shows "
                                   f"{screen()!r}: {kiosk.snapshot()['data']}")

        await wait_screen("idle")
        reply = await kiosk.handle_action({"action": "start_buy"})
        if not reply.get("ok"):
            raise RuntimeError(f"demo: buying is not available: {reply.get('error')}")
        await wait_screen("scan_address")
        address = SAMPLE_ADDRESSES[config.network]

        async def show_code() -> bool:  # a camera needs a few frames to see the code
            await world.run("present_qr", {"text": address})
            return screen() == "insert_cash"

        await _until(show_code, 10, interval=0.2)
        await wait_screen("insert_cash")
        for minor in notes:
            expected = kiosk.snapshot()["data"]["inserted_minor"] + minor
            last: dict[str, Any] = {}

            async def insert() -> bool:  # like a customer, wait until the validator takes notes again
                last.update(await world.run("insert_note", {"minor": minor}))
                return bool(last.get("ok"))

            if not await _until(insert, 10, interval=0.1):
                raise RuntimeError(f"demo: the validator did not take a {minor} note: {last.get('error')}")
            if not await _until(lambda: kiosk.snapshot()["data"].get("inserted_minor") == expected, 20):
                raise TimeoutError(f"demo: the {minor} note was not credited: {kiosk.snapshot()['data']}")

        async def finish() -> bool:
            return bool((await kiosk.handle_action({"action": "finish_cash"})).get("ok"))

        await _until(finish, 10, interval=0.1)
        await wait_screen("confirm")
        await kiosk.handle_action({"action": "confirm"})
        await wait_screen("receipt", timeout=40)
        await _until(lambda: _receipts(world, running), 10, interval=0.1)
        await kiosk.handle_action({"action": "done"})
        await wait_screen("idle")
        await _demo_sell(kiosk, operator.cas if operator is not None else running.cas, wait_screen)
        await _until(lambda: len(_receipts(world, running)) >= 2, 10, interval=0.1)
        transactions = []
        for tx in running.journal.transactions():
            summary = running.journal.summary(tx["id"])
            transactions.append({key: summary[key] for key in
                                 ("id", "type", "status", "fiat_minor", "currency", "sats", "address")}
                                | {"txids": summary["txids"], "notes": summary["notes"]})
        return {"transactions": transactions, "receipts": _receipts(world, running), "state_dir": str(state_dir)}
    finally:
        if running is not None:
            with contextlib.suppress(Exception):
                await running.stop()
        world.stop()
        if operator is not None:
            await operator.stop()
        lock.release()


async def _demo_sell(kiosk: Any, chain_cas: Any, wait_screen: Any) -> None:
    """The sale of the demo: the smallest amount offered, paid on the simulated chain with
    two confirmations, proven by the kiosk, dispensed by the simulated dispenser."""
    if not await _until(lambda: kiosk.can_start_sell(), 20, interval=0.1):
        raise RuntimeError(f"demo: selling is not available: {kiosk._sell_notice()}")
    reply = await kiosk.handle_action({"action": "start_sell"})
    if not reply.get("ok"):
        raise RuntimeError(f"demo: selling is not available: {reply.get('error')}")
    await wait_screen("sell_amount")
    amounts = kiosk.snapshot()["data"]["amounts"]
    reply = await kiosk.handle_action({"action": "choose_amount", "minor": amounts[0]["minor"]})
    if not reply.get("ok"):
        raise RuntimeError(f"demo: the sell amount was refused: {reply.get('error')}")
    await wait_screen("sell_pay", timeout=30)
    data = kiosk.snapshot()["data"]
    chain_cas.pay_invoice(kiosk.tx_id, int(data["sats"]), confirmations=2)
    await wait_screen("sell_receipt", timeout=60)
    message = kiosk.snapshot()["data"].get("message")
    if kiosk.snapshot()["data"].get("redeem_code"):
        raise RuntimeError(f"demo: the sale ended with a redeem code: {message}")
    await kiosk.handle_action({"action": "done"})
    await wait_screen("idle")


def _book_simulated_cassettes(journal: Any, world: Any) -> None:
    """A fresh simulated kiosk's books start with what its simulated dispenser holds (on a
    real kiosk the technician books every refill with `atm cassettes refill`)."""
    from hal.money import Fiat
    if journal.cassette_loads():
        return
    for cassette, denomination, count in world.initial_loads():
        journal.load_cassette(cassette, Fiat(denomination, world.currency), count, by="simulator")


async def _until(check: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` (a function, plain or async) until it is true or `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(interval)


def _receipts(world: Any, running: Any) -> list[str]:
    printer = world.sims.get("printer")
    if printer is not None:
        return list(printer.receipts())
    return list(getattr(running.devices.printer, "printed", []))


def _demo_main(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_demo(args))
    except (TimeoutError, RuntimeError) as exc:
        if args.json:
            print(json.dumps({"transactions": [], "receipts": [], "error": str(exc)}))
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    completed = all(any(t["status"] == "completed" and t["type"] == kind for t in result["transactions"])
                    for kind in ("buy", "sell"))
    if args.json:
        print(json.dumps({"transactions": result["transactions"], "receipts": result["receipts"]}))
    else:
        for tx in result["transactions"]:
            print(f"transaction {tx['id']}: {tx['status']}, {tx['fiat_minor']} {tx['currency']} minor units "
                  f"-> {tx['sats']} sat to {tx['address']}")
        for text in result["receipts"]:
            print("-" * 40)
            print(text)
        print("-" * 40)
        print(f"journal and logs in {result['state_dir']}")
    return 0 if completed else 1


# ------------------------------------------------------------------------------------ sim

# word -> (panel command, the argument a bare word fills, whether that argument is text)
_SIM_SHORTCUTS = {
    "insert": ("insert_note", "minor", False), "qr": ("present_qr", "text", True),
    "paper": ("paper", "state", True), "jam": ("jam", "where", True),
    "power-cycle": ("power_cycle", "note_in", True),
    "stall": ("stall_stacking", "then", True), "lose-ack": ("lose_host_ack_once", None, False),
    "take-qr": ("take_away_qr", None, False),
}


def _sim_args(command: str, rest: Sequence[str]) -> tuple[str, dict[str, Any]]:
    if command == "door":
        if len(rest) != 1 or rest[0] not in ("open", "close", "closed"):
            raise SystemExit("usage: atm sim door open|close")
        return "door", {"open": rest[0] == "open"}
    name, positional, text = _SIM_SHORTCUTS.get(command, (command.replace("-", "_"), None, False))
    args: dict[str, Any] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        # Only NAME=VALUE with a plain name is an option: a payment link such as
        # bitcoin:bc1q...?amount=0.001&label=x holds "=" too and is the code itself.
        if sep and key.isidentifier():
            args[key] = _coerce(value)
        elif positional and positional not in args:
            args[positional] = item if text else _coerce(item)
        else:
            raise SystemExit(f"atm sim {command}: expected key=value, got {item!r}")
    return name, args


def _coerce(value: str) -> Any:
    if value.lower() in ("true", "on", "yes"):
        return True
    if value.lower() in ("false", "off", "no"):
        return False
    if value.isdigit():
        return int(value)
    return value


def _sim_main(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    try:
        if args.sim_command in ("state", "screen"):
            path = "/sim/api" if args.sim_command == "state" else "/api/screen"
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                data = json.loads(resp.read())
            return _print_to_reader(json.dumps(data.get("state", data) if args.sim_command == "state" else data,
                                               indent=2), 0)
        command, cmd_args = _sim_args(args.sim_command, args.rest)
        req = urllib.request.Request(base + "/sim/api", method="POST",
                                     data=json.dumps({"command": command, "args": cmd_args}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            result = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        print(f"atm sim: the kiosk at {base} refused: HTTP {exc.code} {detail}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"atm sim: no simulated kiosk answers at {base} ({exc}); start one with `atm run --simulate`",
              file=sys.stderr)
        return 2
    return _print_to_reader(json.dumps(result), 0 if result.get("ok") else 1)


def _print_to_reader(text: str, code: int) -> int:
    """Print what the kiosk answered. A reader that stopped reading (`| head`) is not the
    kiosk's fault: no "no kiosk answers" message, no traceback, the command's own code."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # stdout is gone; point it at /dev/null so the interpreter's final flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


# ------------------------------------------------------------------------------------ others

def _diagram_main(args: argparse.Namespace) -> int:
    from atm.machine import mermaid
    text = mermaid()
    if args.output:
        out = Path(args.output)
        if out.suffix == ".md":
            text = "# Kiosk state diagram\n\nGenerated by `atm diagram` from atm/machine.py; do not edit.\n\n" \
                   "```mermaid\n" + text + "```\n"
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def _pin_hash_main(args: argparse.Namespace) -> int:
    from atm.pins import hash_pin
    pin = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("Technician PIN: ")
    try:
        print(hash_pin(pin))
    except ValueError as exc:
        print(f"atm pin-hash: {exc}", file=sys.stderr)
        return 2
    return 0


def _journal_state_dir(args: argparse.Namespace) -> Path:
    """--state-dir, else the [kiosk] state_dir of --config (resolved against that file's
    folder), else the simulated kiosk's: the same journal from any working directory."""
    if args.state_dir:
        return Path(args.state_dir)
    return _load_config(args.config, True).state_dir


def _journal_main(args: argparse.Namespace) -> int:
    from atm.journal import Journal
    path = _journal_state_dir(args) / "journal.sqlite"
    if not path.exists():
        print(f"atm journal: no journal at {path} (pass --state-dir DIR, or --config FILE of the kiosk)",
              file=sys.stderr)
        return 2
    journal = Journal(path)
    data = journal.report()
    journal.close()
    if args.json:
        print(json.dumps(data, default=str))
    else:
        for tx in data["transactions"]:
            print(f"{tx['id']}  {tx['status']:<10} {tx['fiat_minor']:>8} {tx['currency']}  {tx['sats']:>10} sat")
        for item in data["reconciliation"]:
            print(f"RECONCILE #{item['id']} ({item['tx_id']}): {item['summary']}")
        print(f"{len(data['pending_sends'])} send(s) waiting for the CAS")
    return 0


def _counts(text: str | None) -> dict[str, int]:
    """"1=2,3=1" -> {"1": 2, "3": 1} (cassette id = notes)."""
    counts: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        cassette, sep, n = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise ValueError(f"counts are CASSETTE=NOTES separated by commas (1=2,3=0), got {item!r}")
        counts[cassette.strip()] = int(n)
    return counts


def _cassettes_main(args: argparse.Namespace) -> int:
    """The technician's cassette books: show them, book a refill, book a reject-bin count.
    Every change is journaled; the kiosk service should be stopped (one writer per folder)."""
    from atm.journal import Journal, JournalError
    from hal.money import Fiat
    state_dir = _journal_state_dir(args)
    path = state_dir / "journal.sqlite"
    if not path.exists() and args.action is None:
        print(f"atm cassettes: no journal at {path} (pass --state-dir DIR, or --config FILE of the kiosk)",
              file=sys.stderr)
        return 2
    currency = _load_config(args.config, True).currency if args.config or not args.state_dir else args.currency
    journal = Journal(path)
    try:
        if args.action == "refill":
            books = journal.cassette_books()
            known = {u.id: u for u in books.units}
            denomination = args.denomination if args.denomination is not None else (
                known[args.cassette].denomination.minor if args.cassette in known else None)
            if denomination is None:
                print(f"atm cassettes refill: cassette {args.cassette} is new to the books; give --denomination "
                      "MINOR (the value of one note in minor units)", file=sys.stderr)
                return 2
            near = args.near_empty if args.near_empty is not None else (
                known[args.cassette].near_empty if args.cassette in known else 10)
            journal.load_cassette(args.cassette, Fiat(denomination, currency), args.count, near, by="technician")
        elif args.action == "resolve":
            # the same journal call as the service menu's Cassettes page: valued at the loads
            # in force when the dispense was journaled, refused unless its outcome is unknown
            resolved = journal.resolve_dispense(args.request, _counts(args.exited), _counts(args.rejected),
                                                by="technician")
            if resolved["status"] is None:
                print(f"dispense {args.request} booked as counted (a test dispense: no sale to settle)",
                      file=sys.stderr)
            else:
                print(f"dispense {args.request} booked as counted; sale {resolved['tx_id']} is "
                      f"{resolved['status']}, {resolved['owed_minor']} minor units still owed", file=sys.stderr)
        elif args.action == "reject-bin":
            expected = journal.count_reject_bin(args.count)
            if expected != args.count:
                print(f"atm cassettes reject-bin: counted {args.count}, the books expected {expected}; "
                      "recorded as a reconciliation item", file=sys.stderr)
        books = journal.cassette_books()
        data = {"cassettes": [{"cassette": u.id, "denomination_minor": u.denomination.minor,
                               "currency": u.denomination.currency, "initial": u.initial, "dispensed": u.dispensed,
                               "rejected": u.rejected, "count": u.count, "near_empty": u.near_empty,
                               "status": u.status.value} for u in books.units],
                "reject_bin": journal.reject_bin(),
                "mismatches": [{"cassette": m.unit, "detail": m.detail} for m in books.mismatches]}
    except (JournalError, ValueError) as exc:
        print(f"atm cassettes: {exc}", file=sys.stderr)
        return 2
    finally:
        journal.close()
    if args.json:
        print(json.dumps(data))
    else:
        for c in data["cassettes"]:
            print(f"cassette {c['cassette']}: {c['count']:>5} x {c['denomination_minor']} {c['currency']} minor "
                  f"({c['status']}; loaded {c['initial']}, dispensed {c['dispensed']}, rejected {c['rejected']})")
        print(f"reject bin: {data['reject_bin']} notes since it was last counted")
        for m in data["mismatches"]:
            print(f"MISMATCH cassette {m['cassette']}: {m['detail']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atm", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start the kiosk")
    run.add_argument("--config", help="kiosk configuration (TOML); default with --simulate: config/simulate.toml")
    run.add_argument("--simulate", action="store_true", help="run on simulated hardware")
    run.add_argument("--ui-port", type=int, help="port of the customer screen on 127.0.0.1")
    run.add_argument("--state-dir", help="where the journal lives (overrides [kiosk] state_dir)")
    run.add_argument("--language", help="the kiosk's default language, e.g. de (overrides [kiosk] language)")
    _add_sim_choices(run)
    _add_port_options(run)
    run.set_defaults(func=lambda a: asyncio.run(_run(a)))

    demo = sub.add_parser("demo", help="run a scripted buy on simulators and print the receipt")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.add_argument("--config", help="configuration (default config/simulate.toml)")
    demo.add_argument("--notes", default="2000,5000", help="notes to insert, minor units (default 2000,5000)")
    demo.add_argument("--state-dir", help="keep the journal here (default: a new temporary folder)")
    _add_sim_choices(demo)
    demo.set_defaults(func=_demo_main)

    sim = sub.add_parser("sim", help="drive a running simulated kiosk: insert 2000 | qr TEXT | door open|close | "
                                     "paper out | jam | stall stacker|acceptor | lose-ack | take-qr | state | "
                                     "screen | COMMAND key=value ...")
    sim.add_argument("--url", default="http://127.0.0.1:8080", help="the kiosk's screen URL")
    sim.add_argument("sim_command", metavar="COMMAND")
    sim.add_argument("rest", nargs="*", metavar="ARG")
    sim.set_defaults(func=_sim_main)

    diagram = sub.add_parser("diagram", help="write the state diagram generated from the state table (Mermaid)")
    diagram.add_argument("--output", "-o", help="file to write (.md wraps it for Markdown viewers); default stdout")
    diagram.set_defaults(func=_diagram_main)

    pin = sub.add_parser("pin-hash", help="hash a technician PIN for the configuration bundle")
    pin.set_defaults(func=_pin_hash_main)

    journal = sub.add_parser("journal", help="show transactions, sends waiting for the CAS, reconciliation items")
    journal.add_argument("--config", help="kiosk configuration: its [kiosk] state_dir holds the journal "
                                          "(default: the simulator's, config/simulate.toml)")
    journal.add_argument("--state-dir", help="the kiosk's state folder (overrides --config)")
    journal.add_argument("--json", action="store_true")
    journal.set_defaults(func=_journal_main)

    cassettes = sub.add_parser("cassettes", help="cassette books: show, book a refill, book a reject-bin count")
    cassettes.add_argument("--config", help="kiosk configuration (default: the simulator's)")
    cassettes.add_argument("--state-dir", help="the kiosk's state folder (overrides --config)")
    cassettes.add_argument("--currency", default="EUR", help="with --state-dir only: the cassettes' currency")
    cassettes.add_argument("--json", action="store_true")
    cassettes.set_defaults(func=_cassettes_main, action=None)
    actions = cassettes.add_subparsers(dest="action", metavar="ACTION")
    refill = actions.add_parser("refill", help="a cassette was (re)filled: its count starts again")
    refill.add_argument("--cassette", required=True, help="cassette id as the dispenser names it (1..4)")
    refill.add_argument("--count", required=True, type=int, help="notes now in the cassette")
    refill.add_argument("--denomination", type=int, help="minor units per note (needed for a new cassette)")
    refill.add_argument("--near-empty", type=int, help="status low at or below this many notes")
    refill.add_argument("--json", action="store_true")
    resolve = actions.add_parser("resolve", help="book what a dispense of unknown outcome really paid out, "
                                                 "as counted (the reconciliation item names the request)")
    resolve.add_argument("--request", required=True, help="the dispense request id from the reconciliation item")
    resolve.add_argument("--exited", required=True, help="notes that left, per cassette: 1=2,3=1")
    resolve.add_argument("--rejected", default="", help="notes in the reject bin from it, per cassette")
    resolve.add_argument("--json", action="store_true")
    reject = actions.add_parser("reject-bin", help="the reject bin was counted (and emptied)")
    reject.add_argument("--count", required=True, type=int, help="notes found in the reject bin")
    reject.add_argument("--json", action="store_true")

    from atm import device_tool
    device_tool.register(sub)
    try:
        cas_check = importlib.import_module("atm.cas.check")
    except ModuleNotFoundError as exc:
        if exc.name != "atm.cas.check":
            raise
    else:
        cas_check.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level if args.command not in ("demo", "sim", "diagram", "device", "cas")
                   or args.log_level != "INFO" else "WARNING")
    try:
        return int(args.func(args) or 0)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except DeviceError as exc:
        print(f"device error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
