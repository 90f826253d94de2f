"""A simulated kiosk's surroundings: starts the device simulators, tells the
composition root which ports to use, and offers the control panel (insert a
note, present a QR code, open the door...) that the UI's /sim page and
`atm sim` drive.

Choices are explicit (`SimulatedWorld(validator="id003")`); nothing here is
ever picked up by a non-simulated kiosk. A device given a port
(`ports={"validator": "socket://127.0.0.1:7001"}`) is an outside device (real, or
someone else's emulator): no simulator starts for it and the panel leaves it alone.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Mapping

# Addresses a tester can present, one per network the kiosk may run on.
SAMPLE_ADDRESSES = {
    "regtest": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    "test": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
    "main": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
}

VALIDATORS = ("id003", "ssp", "ccnet", "standin")
PRINTERS = ("escpos", "standin")
SCANNERS = ("camera", "serial", "standin")
DISPENSERS = ("lcdm4000", "lcdm2000", "standin")
_CHOICES = {"validator": VALIDATORS, "printer": PRINTERS, "scanner": SCANNERS, "dispenser": DISPENSERS}
# Cassettes a simulated dispenser starts with: (denomination in minor units, notes), in
# cassette order. The kiosk's books are loaded with the same counts on a fresh journal.
DEFAULT_CASSETTES = {"lcdm4000": [(1000, 100), (2000, 100), (5000, 50)], "lcdm2000": [(2000, 100), (5000, 50)],
                     "standin": [(2000, 100), (5000, 50)]}
# How each outside device's URL goes into its [devices.*] table.
_OUTSIDE_TABLES = {
    ("validator", "id003"): lambda url: {"driver": "id003", "port": url, "poll_interval": 0.1},
    ("validator", "ssp"): lambda url: {"driver": "ssp", "port": url, "poll_interval": 0.1},
    ("validator", "ccnet"): lambda url: {"driver": "ccnet", "port": url, "poll_interval": 0.1},
    ("printer", "escpos"): lambda url: {"driver": "escpos", "port": url, "width_mm": 58, "poll_interval": 2.0},
    ("scanner", "camera"): lambda url: {"driver": "camera", "source": url},
    ("scanner", "serial"): lambda url: {"driver": "serial", "port": url},
    ("dispenser", "lcdm4000"): lambda url: {"driver": "lcdm4000", "port": url},
    ("dispenser", "lcdm2000"): lambda url: {"driver": "lcdm2000", "port": url},
}


class SimulatedWorld:
    def __init__(self, *, currency: str = "EUR", validator: str = "id003", printer: str = "escpos",
                 scanner: str = "camera", network: str = "regtest", ports: Mapping[str, str] | None = None,
                 dispenser: str = "lcdm4000", cassettes: list[tuple[int, int]] | None = None) -> None:
        if validator not in VALIDATORS or printer not in PRINTERS or scanner not in SCANNERS \
                or dispenser not in DISPENSERS:
            raise ValueError(f"unknown simulator choice: validator={validator} (one of {VALIDATORS}), "
                             f"printer={printer} (one of {PRINTERS}), scanner={scanner} (one of {SCANNERS}), "
                             f"dispenser={dispenser} (one of {DISPENSERS})")
        self.currency = currency
        self.network = network
        self.choice = {"validator": validator, "printer": printer, "scanner": scanner, "dispenser": dispenser}
        self.cassettes = [(int(d), int(n)) for d, n in (cassettes or DEFAULT_CASSETTES[dispenser])]
        self.ports = {kind: str(url) for kind, url in (ports or {}).items() if url}
        for kind, url in self.ports.items():
            if kind not in self.choice:
                raise ValueError(f"a port was given for {kind!r}; outside devices can be the "
                                 f"{', '.join(self.choice)}")
            if self.choice[kind] == "standin":
                raise ValueError(f"--{kind}-port {url}: name the {kind}'s protocol with --{kind} "
                                 f"({', '.join(c for c in _CHOICES[kind] if c != 'standin')}), not standin")
        self.sims: dict[str, Any] = {}
        self.devices: Any = None          # the kiosk's DeviceSet, attached after composition
        self.chain_cas: Any = None        # the CAS with a simulated chain, attached when it runs

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> dict[str, dict[str, Any]]:
        """Start the wire simulators; returns [devices.*] tables for the configuration."""
        tables: dict[str, dict[str, Any]] = {}
        for kind in ("validator", "printer", "scanner", "dispenser"):
            choice = self.choice[kind]
            if kind in self.ports:
                tables[kind] = _OUTSIDE_TABLES[(kind, choice)](self.ports[kind])
            elif choice == "standin":
                tables[kind] = {"driver": "standin"}
            else:
                self.sims[kind], tables[kind] = self._start_simulator(choice)
            if kind == "dispenser":
                if choice == "standin":
                    tables[kind]["cassettes"] = {cid: (d, n) for cid, (d, n) in zip(self.cassette_ids(), self.cassettes)}
                else:
                    tables[kind]["denominations"] = [d for d, _ in self.cassettes]
        tables["sensors"] = {"driver": "gpio", "pin_factory": "mock"}
        tables["indicators"] = {"driver": "gpio", "pin_factory": "mock"}
        return tables

    def cassette_ids(self) -> list[str]:
        """The dispenser's cassette ids, in cassette order (as its driver names them)."""
        if self.choice["dispenser"] == "standin":
            return [str(n + 1) for n in range(len(self.cassettes))]
        from drivers.lcdm.frames import MODELS
        return list(MODELS[self.choice["dispenser"]].cassettes[:len(self.cassettes)])

    def initial_loads(self) -> list[tuple[str, int, int]]:
        """(cassette id, denomination minor, notes) as the simulated dispenser starts: the
        counts a technician would book at the first refill."""
        return [(cid, d, n) for cid, (d, n) in zip(self.cassette_ids(), self.cassettes)]

    def _start_simulator(self, choice: str) -> tuple[Any, dict[str, Any]]:
        if choice in ("lcdm4000", "lcdm2000"):
            from simulators.lcdm import LcdmSimulator
            sim = LcdmSimulator(choice, self.cassettes, note_s=0.05)
            return sim, {"driver": choice, "port": sim.start("tcp")}
        if choice == "id003":
            from simulators.id003 import Id003Simulator
            sim = Id003Simulator(currency=self.currency)
            return sim, {"driver": "id003", "port": sim.start("tcp"), "poll_interval": 0.1}
        if choice == "ssp":
            from simulators.ssp import SspSimulator
            sim = SspSimulator(currency=self.currency)
            return sim, {"driver": "ssp", "port": sim.start("tcp"), "poll_interval": 0.1}
        if choice == "ccnet":
            from simulators.ccnet import CcnetSimulator
            sim = CcnetSimulator(currency=self.currency)
            return sim, {"driver": "ccnet", "port": sim.start("tcp"), "poll_interval": 0.1}
        if choice == "escpos":
            from simulators.printer import VirtualPrinter
            sim = VirtualPrinter(width_mm=58)
            return sim, {"driver": "escpos", "port": sim.start("tcp"), "width_mm": 58, "poll_interval": 2.0}
        if choice == "camera":
            from simulators.camera import CameraSimulator
            sim = CameraSimulator(name="camera")
            return sim, {"driver": "camera", "source": sim.source_url}
        from simulators.serial_scanner import SerialScannerSimulator
        sim = SerialScannerSimulator()
        return sim, {"driver": "serial", "port": sim.start("tcp")}

    def attach(self, devices: Any) -> None:
        self.devices = devices

    def attach_chain(self, cas: Any) -> None:
        """The CAS whose simulated chain the customer's wallet pays on (pay_invoice, mine)."""
        self.chain_cas = cas

    def stop(self) -> None:
        for sim in self.sims.values():
            stop = getattr(sim, "stop", None)
            if stop:
                stop()
        self.sims.clear()

    # -- what each control acts on -----------------------------------------------------------

    def _target(self, kind: str) -> Any:
        if kind in self.ports:
            raise LookupError(f"the {kind} is the outside device at {self.ports[kind]}; act on it there")
        if kind in self.sims:
            return self.sims[kind]
        if self.devices is not None and getattr(self.devices, kind, None) is not None:
            return getattr(self.devices, kind)
        raise LookupError(f"no simulated {kind}")

    # -- SimulatorPanel ----------------------------------------------------------------------

    _COMMANDS: list[dict[str, Any]] = [
        {"command": "insert_note", "args": {"minor": "int"}, "help": "insert a note of this value (minor units)"},
        {"command": "insert_counterfeit", "args": {}, "help": "the next note is a fake"},
        {"command": "jam", "args": {"where": "acceptor|stacker"}, "help": "jam the validator"},
        {"command": "clear_jam", "args": {}, "help": "clear a validator jam"},
        {"command": "stacker_full", "args": {"on": "bool"}, "help": "cashbox full"},
        {"command": "stacker_open", "args": {"on": "bool"}, "help": "cashbox pulled out"},
        {"command": "power_cycle", "args": {"note_in": "none|acceptor|stacker"}, "help": "power-cycle the validator"},
        {"command": "stall_stacking", "args": {"then": "stacker|acceptor"},
         "help": "the next note told to stack stalls mid-stack, then the validator powers up with it in the "
                 "stacker or back in the acceptor"},
        {"command": "lose_host_ack_once", "args": {},
         "help": "the kiosk's acknowledgement of the next credited note is lost: the validator repeats the credit"},
        {"command": "present_qr", "args": {"text": "str", "distortion": "str"}, "help": "show a QR code to the scanner"},
        {"command": "take_away_qr", "args": {}, "help": "take the shown QR code away from the scanner"},
        {"command": "door", "args": {"open": "bool"}, "help": "open or close the service door"},
        {"command": "service_switch", "args": {"on": "bool"}, "help": "the technician's service switch"},
        {"command": "paper", "args": {"state": "ok|near_end|out"}, "help": "receipt paper level"},
        # the cash dispenser (LCDM simulators)
        {"command": "double_picks", "args": {"count": "int"},
         "help": "the dispenser's next picks are double notes, diverted to the reject tray"},
        {"command": "jam_dispenser", "args": {"after": "int"},
         "help": "the next dispense jams after this many notes out (a purge clears it)"},
        {"command": "cassette_count", "args": {"cassette": "int", "count": "int"},
         "help": "notes physically in a cassette (1 = first): empty it mid-sale without telling the books"},
        {"command": "remove_cassette", "args": {"cassette": "int"}, "help": "pull a cassette out"},
        {"command": "insert_cassette", "args": {"cassette": "int"}, "help": "put a pulled cassette back"},
        {"command": "lose_dispense_ack", "args": {}, "help": "the dispenser's ACK of the next dispense is lost"},
        {"command": "lose_dispense_answer", "args": {},
         "help": "the dispenser's answer to the next dispense is lost (the notes still leave)"},
        {"command": "dispenser_power_cut", "args": {"after": "int"},
         "help": "the dispenser loses power after this many notes of the next dispense"},
        {"command": "remove_reject_tray", "args": {"removed": "bool"}, "help": "pull the reject tray out"},
        # the customer's wallet, on the simulated chain of the CAS (simulator or stand-in)
        {"command": "pay_invoice", "args": {"invoice": "str", "sats": "int", "confirmations": "int"},
         "help": "pay a sell invoice (the sale id on the payment screen) from the customer's wallet"},
        {"command": "mine", "args": {"count": "int"}, "help": "mine blocks on the simulated chain (confirmations)"},
    ]

    def commands(self) -> list[dict[str, Any]]:
        return list(self._COMMANDS)

    async def run(self, command: str, args: Mapping[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None or not isinstance(args, Mapping):
            return {"ok": False, "error": f"unknown command {command!r}; known: "
                    + ", ".join(c["command"] for c in self._COMMANDS)}
        try:
            result = await asyncio.to_thread(handler, **dict(args))
        except TypeError as exc:
            return {"ok": False, "error": f"{command}: bad arguments ({exc})"}
        except (LookupError, ValueError) as exc:
            return {"ok": False, "error": f"{command}: {exc}"}
        return {"ok": result is not False, **({"error": "the device did not take it"} if result is False else {})}

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"choice": dict(self.choice), "samples": {
            "address": SAMPLE_ADDRESSES.get(self.network), "bip21": f"bitcoin:{SAMPLE_ADDRESSES.get(self.network)}"
            f"?label=Sample", "wrong_network": SAMPLE_ADDRESSES["main" if self.network != "main" else "test"],
            "garbage": "hello world"}}
        for kind in ("validator", "printer", "scanner", "dispenser"):
            try:
                target = self._target(kind)
            except LookupError:
                continue
            reader = getattr(target, "state_info", None) or getattr(target, "state", None)
            out[kind] = reader() if callable(reader) else str(reader)
        if self.devices is not None and self.devices.sensors is not None:
            out["sensors"] = self.devices.sensors.read()
        if self.devices is not None:
            # the notes the kiosk's validator knows, so the panel offers exactly those
            out["denominations"] = sorted(d.minor for d in self.devices.validator.denominations)
        return out

    def _cmd_insert_note(self, minor: int) -> Any:
        return self._target("validator").insert_note(int(minor))

    def _cmd_insert_counterfeit(self) -> Any:
        return self._target("validator").insert_counterfeit()

    def _cmd_jam(self, where: str = "acceptor") -> Any:
        return self._target("validator").jam(where)

    def _cmd_clear_jam(self) -> Any:
        return self._target("validator").clear_jam()

    def _cmd_stacker_full(self, on: bool = True) -> Any:
        return self._validator_switch("stacker_full", on)

    def _cmd_stacker_open(self, on: bool = True) -> Any:
        return self._validator_switch("stacker_open", on)

    def _cmd_power_cycle(self, note_in: str = "none") -> Any:
        return self._validator_switch("power_cycle", note_in)

    def _cmd_stall_stacking(self, then: str = "stacker") -> Any:
        if then not in ("stacker", "acceptor"):
            raise ValueError(f"then is stacker or acceptor, got {then!r}")
        return self._validator_switch("stall_stacking", then)

    def _cmd_lose_host_ack_once(self) -> Any:
        return self._call("validator", "lose_host_ack_once")

    def _validator_switch(self, name: str, value: Any) -> Any:
        return self._call("validator", name, value)

    def _call(self, kind: str, name: str, *args: Any) -> Any:
        target = self._target(kind)
        method = getattr(target, name, None)
        if method is None:
            raise LookupError(f"the {self.choice[kind]} {kind} simulator has no {name}")
        return method(*args)

    def _cmd_present_qr(self, text: str, distortion: str = "none") -> Any:
        target = self._target("scanner")
        if "distortion" in inspect.signature(target.present).parameters:
            return target.present(str(text), distortion=distortion)
        return target.present(str(text))

    def _cmd_take_away_qr(self) -> Any:
        return self._call("scanner", "take_away")

    def _cmd_door(self, open: bool = True) -> Any:
        return self._drive("door", bool(open))

    def _cmd_service_switch(self, on: bool = True) -> Any:
        return self._drive("service_switch", bool(on))

    def _drive(self, sensor: str, active: bool) -> None:
        if self.devices is None or self.devices.sensors is None:
            raise LookupError("no simulated sensors")
        pin = self.devices.sensors.pin(sensor)
        pin.drive_high() if active else pin.drive_low()

    def _cmd_paper(self, state: str = "ok") -> Any:
        if state not in ("ok", "near_end", "out"):
            raise ValueError("paper state is ok, near_end or out")
        return self._target("printer").paper(state)

    # -- the cash dispenser ------------------------------------------------------------------

    def _dispenser_sim(self) -> Any:
        target = self._target("dispenser")
        if not hasattr(target, "set_double_picks"):
            raise LookupError("the stand-in dispenser has no wire faults; run with --dispenser lcdm4000 or lcdm2000")
        return target

    def _cassette_index(self, cassette: Any) -> int:
        index = int(cassette) - 1
        if not 0 <= index < len(self._dispenser_sim().cassettes):
            raise ValueError(f"cassette is 1..{len(self._dispenser_sim().cassettes)}, got {cassette!r}")
        return index

    def _cmd_double_picks(self, count: int = 1) -> Any:
        return self._dispenser_sim().set_double_picks(int(count))

    def _cmd_jam_dispenser(self, after: int = 0) -> Any:
        return self._dispenser_sim().jam_after(int(after))

    def _cmd_cassette_count(self, cassette: int = 1, count: int = 0) -> Any:
        return self._dispenser_sim().set_count(self._cassette_index(cassette), int(count))

    def _cmd_remove_cassette(self, cassette: int = 1) -> Any:
        return self._dispenser_sim().remove_cassette(self._cassette_index(cassette))

    def _cmd_insert_cassette(self, cassette: int = 1) -> Any:
        return self._dispenser_sim().insert_cassette(self._cassette_index(cassette))

    def _cmd_lose_dispense_ack(self) -> Any:
        return self._dispenser_sim().lose_ack_once("dispense")

    def _cmd_lose_dispense_answer(self) -> Any:
        return self._dispenser_sim().lose_answer_once("dispense")

    def _cmd_dispenser_power_cut(self, after: int = 1) -> Any:
        return self._dispenser_sim().power_cut_after(int(after))

    def _cmd_remove_reject_tray(self, removed: bool = True) -> Any:
        return self._dispenser_sim().remove_reject_tray(bool(removed))

    def _chain(self) -> Any:
        if self.chain_cas is None or not hasattr(self.chain_cas, "pay_invoice"):
            raise LookupError("no simulated chain: the kiosk's CAS does not sell")
        return self.chain_cas

    def _cmd_pay_invoice(self, invoice: str, sats: int, confirmations: int = 0) -> Any:
        return bool(self._chain().pay_invoice(str(invoice), int(sats), confirmations=int(confirmations)))

    def _cmd_mine(self, count: int = 1) -> Any:
        return self._chain().mine(int(count))
