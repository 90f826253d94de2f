"""Assembles and runs a kiosk: configuration -> journal, CAS link, devices,
kiosk, UI server. Used by `atm run` and `atm demo`, and by tests that need a
whole kiosk in one process."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from hal.errors import ConfigurationError, PortError
from atm.composition import build_devices, port_of
from atm.config import Config, DeviceConfig
from atm.journal import Journal
from atm.kiosk import Kiosk
from atm.systemd_notify import Watchdog

log = logging.getLogger("atm.app")

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"


def with_devices(config: Config, tables: dict[str, dict[str, Any]]) -> Config:
    """Config with [devices.*] replaced by the simulators' tables."""
    devices = {kind: DeviceConfig(kind, table["driver"], {k: v for k, v in table.items() if k != "driver"})
               for kind, table in tables.items()}
    return dataclasses.replace(config, devices=devices)


# The rate the CAS simulator quotes (fiat per BTC) and, unless [limits] rate_bounds
# says otherwise, the band the simulated operator signs around it.
SIMULATED_RATE = Decimal("50000")
DEFAULT_SIMULATED_BOUNDS = (SIMULATED_RATE / 10, SIMULATED_RATE * 10)

LOCK_FILE = "kiosk.lock"


class StateDirLocked(ConfigurationError):
    """Another kiosk process holds this state folder."""


class StateDirLock:
    """An exclusive lock on a state folder (fcntl.flock on <state_dir>/kiosk.lock), taken
    before anything in the folder is touched: two kiosks on one journal and one set of
    keys would each overwrite what the other relies on. The kernel drops the lock when
    the process dies, so a killed kiosk never leaves a stale one behind."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "StateDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateDirLocked(f"{self.path.parent}: another kiosk (pid {holder}) is running on this state "
                                 f"folder and holds {self.path}; stop it first, or give this one its own "
                                 "folder with --state-dir") from None
        except OSError:
            os.close(fd)
            raise
        # Only the holder writes: who it is, for the message above.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "StateDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def make_cas(config: Config, *, simulate: bool) -> Any:
    """The kiosk's CAS link. A real kiosk runs only against its operator's paired CAS:
    the stand-in (which sends no coins) and an unpaired client are refused here, before
    any device is opened or enabled."""
    if config.cas_mode == "standin":
        if not simulate:
            raise ConfigurationError(f"{config.source}: [cas] mode = \"standin\" (the default when the file has no "
                                     "[cas] table) is a simulator; a real kiosk needs [cas] mode = \"client\" "
                                     "paired with the operator's CAS")
        from atm.cas.standin import StandinCas, standin_settings
        return StandinCas(config.state_dir / "standin-cas.sqlite",
                          settings=standin_settings(config.min_buy, config.max_buy, config.fee_percent,
                                                    config.technician_pin_hash), currency=config.currency,
                          sell=config.sell)
    from atm.cas.client import CasClient
    from atm.cas.interface import CasError
    from atm.cas.link import finish_interrupted_switch
    try:
        finish_interrupted_switch(config.cas_state_dir)     # a pairing switch cut by a power loss
        return CasClient.from_state(config.cas_state_dir)
    except CasError as exc:
        raise ConfigurationError(f"{config.source}: [cas] mode = \"client\" but {exc}. Pair it with "
                                 f"`atm cas pair --config {config.source} --scan-source 0` (or --code TEXT) "
                                 "while the kiosk service is stopped") from exc


def simulated_settings(config: Config) -> dict[str, Any]:
    """What the simulated operator signs for this kiosk: the [limits] table's limits,
    fees, rate bounds and quote age (decimals as strings: signed documents hold no floats)."""
    low, high = config.rate_bounds or DEFAULT_SIMULATED_BOUNDS
    settings: dict[str, Any] = {
        "currency": config.currency, "min_buy_minor": config.min_buy.minor, "max_buy_minor": config.max_buy.minor,
        "fee_percent": config.fee_percent, "fixed_fee_minor": config.fixed_fee.minor,
        "rate_bounds": {config.currency: [str(low), str(high)]}, "quote_max_age_s": config.quote_max_age_s}
    settings["languages"] = ["en", "de", "es", "fr"]   # the simulated operator enables all four
    if config.technician_pin_hash:
        settings["technician_pin_hash"] = config.technician_pin_hash
    # [sell]: signed with the simulator chain's checkpoint (simulators.cas.harness);
    # None signs no sell table, so the kiosk does not sell.
    settings["sell"] = dict(config.sell) if config.sell is not None else None
    return settings


async def start_simulated_cas(config: Config) -> tuple[Any, Any]:
    """A CAS simulator on loopback with TLS, an operator key, and this kiosk paired to
    it with a signed bundle carrying the configuration's limits (simulate mode only).

    The simulated CAS is new on every start (new TLS key, so the kiosk pairs again),
    but the simulated operator is the same one: its signing key stays in the state
    folder (mode 0600) and its bundle versions keep going up, so the bundle the kiosk
    kept from the last run still verifies and the new one is newer."""
    from atm.cas.bundle import BundleError
    from atm.cas.errors import KeyFileError
    from atm.cas.signing import generate_operator_key, load_operator_key, save_operator_key
    from simulators.cas.harness import SimulatedOperator
    home = config.state_dir / "simulated-operator"
    key_path, version_path = home / "operator.key", home / "bundle-version.json"
    try:
        key = load_operator_key(key_path) if key_path.exists() else None
        last_version = json.loads(version_path.read_text("utf-8"))["version"] if version_path.exists() else 0
        if not isinstance(last_version, int) or last_version < 0:
            raise ValueError(f"version {last_version!r} is not a whole number")
    except (KeyFileError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigurationError(f"{home}: the simulated operator's key or bundle version is unreadable ({exc}); "
                                 "remove that folder to start the simulated operator afresh") from None
    if key is None:
        key = generate_operator_key()
        save_operator_key(key_path, key)
    operator = SimulatedOperator(config.state_dir / "cas-sim", kiosk_id=config.kiosk_id,
                                 settings=simulated_settings(config), rates={config.currency: str(SIMULATED_RATE)},
                                 pair_kiosk=False)
    operator.operator_key = key
    save_operator_key(operator.operator_key_path, key)
    operator.version = last_version
    # Reserve the version start() publishes before the kiosk can see it: a crash in
    # between skips a number, never reuses one.
    version_path.write_text(json.dumps({"version": last_version + 1}), encoding="utf-8")
    try:
        await operator.start()
    except BundleError as exc:
        await operator.stop()
        raise ConfigurationError(f"{config.source}: [limits]/[sell]: the simulated operator will not sign these "
                                 f"settings, as a kiosk would refuse them: {exc}") from None
    # Paired as a technician's pairing is installed (atm.cas.link): the same simulated
    # operator carries its bundle and queue on; after a pairing with another operator
    # from the service menu, that operator's state is archived, not taken over.
    from atm.cas.link import STAGING_DIR, install_staged_pairing
    from atm.cas.pairing import pair
    staging = operator.state_dir / STAGING_DIR
    try:
        operator.pairing = dataclasses.replace(await pair(operator.pairing_code, staging),
                                               state_dir=operator.state_dir)
        install_staged_pairing(operator.state_dir, staging)
    except BaseException:
        await operator.stop()
        raise
    return operator, operator.client(poll_interval_s=2.0)


class RunningKiosk:
    """A kiosk with everything around it, started and stopped as one."""

    def __init__(self, config: Config, *, simulate: bool, world: Any = None, cas: Any = None,
                 ui: bool = True) -> None:
        self.config = config
        self.simulate = simulate
        self.world = world
        # The CAS first: a real kiosk without its paired CAS stops here, before the
        # journal or any device is touched. The kiosk holds it through a CasLink, so a
        # pairing made in the service menu switches every user of it at once.
        from atm.cas.link import CasLink
        raw = cas if cas is not None else make_cas(config, simulate=simulate)
        self.cas = raw if isinstance(raw, CasLink) else CasLink(raw, pairing_dir=config.cas_state_dir)
        self.journal = Journal(config.state_dir / "journal.sqlite")
        self.devices = build_devices(config, simulate=simulate)
        if world is not None:
            world.attach(self.devices)
        self.kiosk = Kiosk(config, self.journal, self.cas, self.devices)
        self._ui_enabled = ui
        self.watchdog = Watchdog()
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
        self.watchdog.ready()

    async def stop(self) -> None:
        await self.watchdog.stopping()
        if self.ui is not None:
            await self.ui.stop()
        await self.kiosk.stop()
        stop_cas = getattr(self.cas, "stop", None)
        if stop_cas is not None:
            await stop_cas()
        self.journal.close()
