"""Fixtures for the UI tests: a fake kiosk and a fake simulator panel that stand
in for atm.kiosk (tests only), plus the browser fixtures of browser_fixtures.py
(`chromium`, `browser_page`, `serve_ui`), which the end-to-end tests reuse."""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path
from typing import Any, Mapping

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_fixtures import browser_page, chromium, serve_ui, simulated_kiosk  # noqa: E402,F401  (fixtures)


class FakeKiosk:
    """Implements atm.ui.facade.KioskFacade with a screen the test sets and a
    record of every action the page sent."""

    def __init__(self, screen: str = "idle", data: Mapping[str, Any] | None = None) -> None:
        self.seq = 1
        self.current: dict[str, Any] = {"screen": screen, "data": dict(data or IDLE), "seq": self.seq}
        self.queues: list[asyncio.Queue] = []
        self.actions: list[dict[str, Any]] = []
        self._action_queue: asyncio.Queue = asyncio.Queue()
        self.reply: dict[str, Any] = {"ok": True}
        self.raise_on_action: Exception | None = None

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.current)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.remove(queue)

    async def handle_action(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self.actions.append(dict(message))
        self._action_queue.put_nowait(dict(message))
        if self.raise_on_action is not None:
            raise self.raise_on_action
        return dict(self.reply)

    def show(self, screen: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Publish a new screen to every subscriber, as the kiosk does."""
        self.seq += 1
        self.current = {"screen": screen, "data": dict(data or {}), "seq": self.seq}
        for queue in self.queues:
            queue.put_nowait(copy.deepcopy(self.current))
        return self.current

    async def next_action(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._action_queue.get(), timeout)


class FakePanel:
    """Implements atm.ui.facade.SimulatorPanel: records the commands it ran."""

    def __init__(self, denominations: list | None = None) -> None:
        self.denominations = denominations
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self._ran_queue: asyncio.Queue = asyncio.Queue()
        self.door_open = False
        self.fail_with: Exception | None = None

    def commands(self) -> list[dict[str, Any]]:
        return [
            {"command": "insert_note", "args": {"minor": "int"}, "help": "Insert a banknote"},
            {"command": "counterfeit_next", "args": {}, "help": "The next note is a fake"},
            {"command": "jam", "args": {"where": "acceptor|stacker"}, "help": "Jam the bill validator"},
            {"command": "clear_jam", "args": {}, "help": "Clear a validator jam"},
            {"command": "present_qr", "args": {"text": "str", "distortion": "str"},
             "help": "Show a code to the camera"},
            {"command": "door", "args": {"open": "bool"}, "help": "Open or close the service door"},
            {"command": "paper", "args": {"level": ["ok", "near_end", "out"]}, "help": "Printer paper"},
            {"command": "power_cycle", "args": {"note_in": "none|acceptor|stacker", "slow_boot": "bool"},
             "help": "Power-cycle the validator"},
        ]

    async def run(self, command: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        self.ran.append((command, dict(args)))
        self._ran_queue.put_nowait((command, dict(args)))
        if command == "door":
            self.door_open = bool(args.get("open"))
        if command not in {c["command"] for c in self.commands()}:
            return {"ok": False, "error": f"unknown command {command!r}"}
        return {"ok": True}

    def state(self) -> dict[str, Any]:
        validator: dict[str, Any] = {"notes": len([c for c, _ in self.ran if c == "insert_note"])}
        if self.denominations is not None:
            validator["denominations"] = self.denominations
        return {
            "validator": validator,
            "door": "open" if self.door_open else "closed",
            "samples": {"regtest": "bcrt1q94c3vs4hy6cygqtz0j5lhtpj7hy9xra3cpcc0y",
                        "bad checksum": "bcrt1q94c3vs4hy6cygqtz0j5lhtpj7hy9xra3cpcc0z"},
        }

    async def next_run(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self._ran_queue.get(), timeout)


IDLE = {"buy_enabled": True, "sell_enabled": False, "rate": "43,210.00 EUR/BTC",
        "currency": "EUR", "notice": None}


@pytest.fixture
def fake_kiosk() -> FakeKiosk:
    return FakeKiosk()


@pytest.fixture
def fake_panel() -> FakePanel:
    return FakePanel(denominations=[{"minor": 500, "label": "5 EUR"}, {"minor": 2000, "label": "20 EUR"}])
