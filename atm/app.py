"""Assembles and runs a kiosk: configuration -> journal, CAS link, devices,
kiosk, UI server. Used by `atm run` and `atm demo`, and by tests that need a
whole kiosk in one process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from hal.errors import ConfigurationError, PortError
from atm.composition import build_devices, port_of
from atm.config import Config, DeviceConfig
from atm.journal import Journal
from atm.kiosk import Kiosk

log = logging.getLogger("atm.app")

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"


def with_devices(config: Config, tables: dict[str, dict[str, Any]]) -> Config:
    """Config with [devices.*] replaced by the simulators' tables."""
    devices = {kind: DeviceConfig(kind, table["driver"], {k: v for k, v in table.items() if k != "driver"})
               for kind, table in tables.items()}
    return dataclasses.replace(config, devices=devices)


def make_cas(config: Config) -> Any:
    if config.cas_mode == "standin":
        from atm.cas.standin import StandinCas, standin_settings
        return StandinCas(config.state_dir / "standin-cas.sqlite",
                          settings=standin_settings(config.min_buy, config.max_buy, config.fee_percent,
                                                    config.technician_pin_hash), currency=config.currency)
    from atm.cas.client import CasClient
    from atm.cas.interface import CasError
    try:
        return CasClient.from_state(config.cas_state_dir)
    except CasError as exc:
        raise ConfigurationError(f"{config.source}: [cas] mode = \"client\" but {exc}. Pair it with "
                                 f"`atm cas pair --config {config.source} --scan-source 0` (or --code TEXT) "
                                 "while the kiosk service is stopped") from exc


async def start_simulated_cas(config: Config) -> tuple[Any, Any]:
    """A CAS simulator on loopback with TLS, an operator key, and this kiosk paired to
    it with a signed bundle carrying the configuration's limits (simulate mode only)."""
    from simulators.cas.harness import SimulatedOperator
    settings = {"currency": config.currency, "min_buy_minor": config.min_buy.minor,
                "max_buy_minor": config.max_buy.minor, "fee_percent": config.fee_percent}
    settings["languages"] = ["en", "de", "es", "fr"]   # the simulated operator enables all four
    if config.technician_pin_hash:
        settings["technician_pin_hash"] = config.technician_pin_hash
    operator = SimulatedOperator(config.state_dir / "cas-sim", kiosk_id=config.kiosk_id, settings=settings,
                                 rates={config.currency: "50000"})
    await operator.start()
    return operator, operator.client(poll_interval_s=2.0)


class RunningKiosk:
    """A kiosk with everything around it, started and stopped as one."""

    def __init__(self, config: Config, *, simulate: bool, world: Any = None, cas: Any = None,
                 ui: bool = True) -> None:
        self.config = config
        self.simulate = simulate
        self.world = world
        self.journal = Journal(config.state_dir / "journal.sqlite")
        self.cas = cas if cas is not None else make_cas(config)
        self.devices = build_devices(config, simulate=simulate)
        if world is not None:
            world.attach(self.devices)
        self.kiosk = Kiosk(config, self.journal, self.cas, self.devices)
        self._ui_enabled = ui
        self.ui: Any = None
        self.url: str | None = None

    async def start(self) -> None:
        if hasattr(self.cas, "on_command"):
            self.cas.on_command = self.kiosk.remote_command
        if hasattr(self.cas, "on_settings"):
            self.cas.on_settings = self.kiosk.settings_changed
        start_cas = getattr(self.cas, "start", None)
        if start_cas is not None:
            await start_cas()
        await self.kiosk.start()
        if not self.simulate:
            for kind, health in self.kiosk.device_health().items():
                if health.state.value == "offline" and kind in ("validator", "scanner"):
                    await self.stop()
                    raise ConfigurationError(f"{self.config.source}: [devices.{kind}] port = "
                                             f"{port_of(self.config, kind)!r} did not open: {health.detail}")
        if self._ui_enabled:
            from atm.ui.server import UiServer
            self.ui = UiServer(self.kiosk, self.world if self.simulate else None,
                               host=self.config.ui_host, port=self.config.ui_port)
            self.url = await self.ui.start()

    async def stop(self) -> None:
        if self.ui is not None:
            await self.ui.stop()
        await self.kiosk.stop()
        stop_cas = getattr(self.cas, "stop", None)
        if stop_cas is not None:
            await stop_cas()
        self.journal.close()
