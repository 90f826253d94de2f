"""`atm run --simulate` as a separate process, driven the way a person at the screen
and the control panel would: actions over the customer WebSocket, device controls
over POST /sim/api. Every wait has a deadline, and stop() always ends the process
(SIGINT, then SIGKILL), so a test never leaves a kiosk running."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

import aiohttp

REPO = Path(__file__).resolve().parents[2]
REGTEST_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
START_S = 90.0


class KioskProcess:
    def __init__(self, state_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.args = [sys.executable, "-m", "atm.cli", "run", "--simulate", "--state-dir", str(state_dir),
                     "--ui-port", "0", *extra]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.output: list[str] = []
        self._next_id = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "KioskProcess":
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("Customer screen: "):
                self.url = line.split(": ", 1)[1].strip()
                return self
        self.stop()
        raise AssertionError(f"the kiosk did not start: {self.log()[-3000:]}")

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (as Ctrl-C does), SIGKILL if it has not ended within `timeout`."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> "KioskProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the screen and the panel ----------------------------------------------------

    def screen(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "api/screen", timeout=10) as resp:
            return json.loads(resp.read())

    def sim(self, command: str, **args: Any) -> dict[str, Any]:
        req = urllib.request.Request(self.url + "sim/api", method="POST",
                                     data=json.dumps({"command": command, "args": args}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30.0,
                 poke: Callable[[], Any] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if predicate(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what}; the kiosk shows {shown}")
            if poke is not None:
                poke()
            time.sleep(0.2)

    async def action(self, ws: aiohttp.ClientWebSocketResponse, name: str, **fields: Any) -> dict[str, Any]:
        self._next_id += 1
        await ws.send_str(json.dumps({"id": self._next_id, "action": name, **fields}))
        while True:
            msg = await ws.receive_json(timeout=30)
            if msg.get("reply_to") == self._next_id:
                return msg

    async def buy(self, notes: Sequence[int] = (2000,), *, insert: Callable[[int], Any] | None = None,
                  present: Callable[[], Any] | None = None) -> None:
        """One purchase from the idle screen to the receipt. `insert` puts a note into the
        validator (default: the panel's insert_note), `present` shows the wallet's QR
        code to the scanner (default: the panel's present_qr)."""
        import asyncio
        self.wait_for(lambda s: s["screen"] == "idle" and s["data"].get("buy_enabled"), "buying enabled")
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url + "ws") as ws:
            reply = await self.action(ws, "start_buy")
            assert reply["ok"], reply
            await asyncio.to_thread(self.wait_for, lambda s: s["screen"] == "insert_cash", "the cash screen",
                                    poke=present or (lambda: self.sim("present_qr", text=REGTEST_ADDRESS)))
            total = 0
            for minor in notes:
                total += minor
                put = insert or (lambda m: self.sim("insert_note", minor=m).get("ok"))
                deadline = time.monotonic() + 20
                while not put(minor):  # like a customer: until the validator takes notes again
                    assert time.monotonic() < deadline, f"the validator did not take {minor}: {self.log()[-2000:]}"
                    await asyncio.sleep(0.2)
                await asyncio.to_thread(self.wait_for, lambda s, t=total: s["data"].get("inserted_minor") == t,
                                        f"{total} credited")
            deadline = time.monotonic() + 20
            while not (await self.action(ws, "finish_cash"))["ok"]:
                assert time.monotonic() < deadline, self.screen()
                await asyncio.sleep(0.2)
            await asyncio.to_thread(self.wait_for, lambda s: s["screen"] == "confirm", "the confirm screen")
            reply = await self.action(ws, "confirm")
            assert reply["ok"], reply
            await asyncio.to_thread(self.wait_for, lambda s: s["screen"] in ("receipt", "idle"),
                                    "the receipt", 60)


def journal(state_dir: Path) -> dict[str, Any]:
    """`atm journal --state-dir D --json`, run from a folder that is not the repository."""
    result = subprocess.run([sys.executable, "-m", "atm.cli", "journal", "--state-dir", str(state_dir), "--json"],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
