"""A kiosk on in-process stand-ins, for tests of the core: built the same way the
composition root builds it, with short timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

from atm.cas.interface import Quote
from atm.cas.standin import StandinCas, standin_settings
from atm.config import Config, Timeouts
from atm.journal import Journal
from atm.kiosk import DeviceSet, Kiosk
from atm.pins import hash_pin
from drivers.gpio.driver import GpioIndicators, GpioSensors, make_pin_factory
from hal import Fiat
from simulators.standin import StandinPrinter, StandinScanner, StandinValidator

# A valid regtest bech32 address (BIP173 test vector program, regtest HRP).
REGTEST_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
PIN = "246813"
_PIN_HASH = hash_pin(PIN, iterations=1000)


def make_config(tmp: Path, **overrides: Any) -> Config:
    base = Config(source="<test>", state_dir=tmp, min_buy=Fiat(500, "EUR"), max_buy=Fiat(10_000, "EUR"),
                  fee_percent="5", technician_pin_hash=_PIN_HASH,
                  timeouts=Timeouts(scan=30, cash=30, confirm=30, sending=30, receipt=30, maintenance=30, recheck=30))
    return dataclasses.replace(base, **overrides)


class Harness:
    """`settings` overrides the signed settings (fixed_fee, rate_bounds, quote_max_age_s...);
    `cas` replaces the stand-in CAS (a CasClient on the CAS simulator, say), `validator`
    the stand-in validator (a wire driver on its simulator, say)."""

    def __init__(self, tmp: Path, *, settings: dict[str, Any] | None = None, cas: Any = None,
                 validator: Any = None, **config: Any) -> None:
        self.config = make_config(tmp, **config)
        self.journal = Journal(tmp / "journal.sqlite")
        signed = dataclasses.replace(standin_settings(self.config.min_buy, self.config.max_buy, "5", _PIN_HASH),
                                     **(settings or {}))
        self.cas = cas if cas is not None else StandinCas(tmp / "cas-ledger.sqlite", settings=signed)
        self.validator = validator if validator is not None else StandinValidator()
        self.scanner = StandinScanner()
        self.printer = StandinPrinter()
        factory = make_pin_factory("mock", simulate=True)
        self.sensors = GpioSensors(pin_factory=factory)
        self.indicators = GpioIndicators(pin_factory=factory)
        self.kiosk = Kiosk(self.config, self.journal, self.cas,
                           DeviceSet(validator=self.validator, scanner=self.scanner, printer=self.printer,
                                     sensors=self.sensors, indicators=self.indicators))
        self.kiosk.sending_min_display_s = 0      # the money tests need not wait for a reader

    async def __aenter__(self) -> "Harness":
        await self.kiosk.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.kiosk.stop()
        self.journal.close()

    def set_rate(self, rate: str) -> None:
        """The stand-in CAS quotes another rate from now on (soft data, unsigned)."""
        self.cas._quote = Quote("EUR", Decimal(rate), self.cas._quote.fee_percent)

    async def settle_events(self) -> None:
        """Everything queued so far has been handled by the kiosk."""
        await self.kiosk._post_and_wait("refresh")

    @property
    def data(self) -> dict[str, Any]:
        return self.kiosk.snapshot()["data"]

    def said(self, field: str = "message") -> str:
        """A message on the screen (a language-file key with values) in English words."""
        from atm import texts
        return texts.render("en", self.data.get(field))

    @property
    def screen(self) -> str:
        return self.kiosk.snapshot()["screen"]

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:
        """Poll the kiosk until predicate() holds; fail with the current screen if it never does."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met; kiosk state {self.kiosk.state}, "
                                     f"screen {self.kiosk.snapshot()}")
            await asyncio.sleep(0.01)

    async def act(self, action: str, **fields: Any) -> dict[str, Any]:
        return await self.kiosk.handle_action({"action": action, **fields})

    async def insert(self, minor: int) -> None:
        assert self.validator.insert_note(minor), f"validator would not take {minor}"
        await self.wait_for(lambda: self.validator.state_info()["escrow"] is None)
        await self.wait_for(lambda: self.kiosk.nothing_in_flight())
        await self.wait_for(self.screen_shows_the_journal)

    def screen_shows_the_journal(self) -> bool:
        """The kiosk has handled the settled event: its screen shows what the journal credited."""
        tx_id = self.kiosk.tx_id
        data = self.kiosk.snapshot()["data"]
        return tx_id is None or "inserted_minor" not in data or \
            data["inserted_minor"] == self.journal.credited(tx_id).minor

    async def start_buy(self, address: str = REGTEST_ADDRESS) -> None:
        assert (await self.act("start_buy"))["ok"]
        await self.wait_for(lambda: self.screen == "scan_address")
        assert self.scanner.present(address)
        await self.wait_for(lambda: self.screen == "insert_cash")


async def open_service_menu(world: Any, idle_timeout: float = 30.0) -> None:
    """A technician's way in on any kiosk test world (Harness, SellKiosk): the service
    switch inside the door, then the PIN, until the menu is on screen."""
    await world.wait_for(lambda: world.screen == "idle", timeout=idle_timeout)
    world.kiosk.devices.sensors.pin("service_switch").drive_high()
    await world.wait_for(lambda: world.screen == "maintenance_login")
    assert (await world.act("service_login", pin=PIN))["ok"]
    await world.wait_for(lambda: world.screen == "maintenance")
