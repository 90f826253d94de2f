"""Kiosk configuration: one TOML file, checked against a declared schema at start-up.

Anything wrong (missing file, unknown key, wrong type, out-of-range value) stops
start-up with a ConfigurationError that names the file, the key and what was
expected. Settings that route money (limits, fees, wallet) are the operator's:
a real kiosk takes them only from the signed bundle; here they are what the
simulated operator signs in simulate mode. Relative paths resolve against the
folder of the file that names them, so a kiosk finds its state wherever it is
started from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from hal.errors import ConfigurationError
from hal.money import Fiat

NETWORKS = ("main", "test", "regtest", "signet")
DEVICE_KINDS = ("validator", "dispenser", "printer", "scanner", "sensors", "indicators")


@dataclass(frozen=True)
class Timeouts:
    scan: float = 60.0
    cash: float = 120.0
    confirm: float = 60.0
    sending: float = 30.0
    receipt: float = 20.0
    maintenance: float = 300.0
    recheck: float = 15.0       # out of service: how often to try to recover
    note_settle: float = 15.0   # a note told to stack must settle within this, else the validator is asked
    note_resolve: float = 5.0   # ...whose answer must come within this, else the note is parked
    payment: float = 1800.0     # sell: the payment screen's safety bound (the invoice expiry ends it first)
    dispense: float = 180.0     # cash-out: the dispenser's answer must come within this


@dataclass(frozen=True)
class DeviceConfig:
    kind: str
    driver: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    source: str
    kiosk_id: str = "kiosk-1"
    currency: str = "EUR"
    network: str = "regtest"
    language: str = "en"
    state_dir: Path = Path("var")
    min_buy: Fiat = Fiat(500, "EUR")
    max_buy: Fiat = Fiat(100_000, "EUR")
    fee_percent: str = "5"
    fixed_fee: Fiat = Fiat(0, "EUR")
    # Lowest and highest acceptable rate (fiat per BTC) the simulated operator signs;
    # None: a wide band around the simulator's own rate.
    rate_bounds: tuple[Decimal, Decimal] | None = None
    quote_max_age_s: int = 60
    operator_name: str = "Example Operator"
    operator_contact: str = "support@example.invalid"
    timeouts: Timeouts = Timeouts()
    ui_host: str = "127.0.0.1"
    ui_port: int = 8080
    technician_pin_hash: str | None = None
    on_paper_out: str = "warn"
    cas_mode: str = "standin"
    cas_state_dir: Path = Path("var/cas")
    cas_offline_stop_after_s: float = 300.0
    devices: Mapping[str, DeviceConfig] = field(default_factory=dict)
    # [sell]: the cash-out rules the simulated operator signs (keys as in the signed
    # bundle's settings.sell, the chain checkpoint added by the simulator); None: no selling.
    sell: Mapping[str, Any] | None = None


# Schema: table -> key -> (type, check or None). Keys not listed are refused.
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "kiosk": {
        "id": (str, lambda v: bool(v.strip()) or "a non-empty kiosk id"),
        "currency": (str, lambda v: (len(v) == 3 and v.isalpha() and v.isupper()) or "a 3-letter ISO 4217 code like \"EUR\""),
        "network": (str, lambda v: v in NETWORKS or f"one of {', '.join(NETWORKS)}"),
        "language": (str, None),
        "state_dir": (str, None),
    },
    "limits": {
        "min_buy_minor": (int, lambda v: v > 0 or "a positive whole number of minor units (cents)"),
        "max_buy_minor": (int, lambda v: v > 0 or "a positive whole number of minor units (cents)"),
        "fee_percent": (str, None),
        "fixed_fee_minor": (int, lambda v: v >= 0 or "a whole number of minor units (cents), 0 or more"),
        "rate_bounds": (list, None),
        # The range a kiosk accepts in a signed bundle (atm/cas/bundle.py).
        "quote_max_age_s": (int, lambda v: 10 <= v <= 600 or "a whole number of seconds from 10 to 600"),
    },
    "sell": {
        "min_sell_minor": (int, lambda v: v > 0 or "a positive whole number of minor units (cents)"),
        "max_sell_minor": (int, lambda v: v > 0 or "a positive whole number of minor units (cents)"),
        "fee_percent": (str, None),
        "fixed_fee_minor": (int, lambda v: v >= 0 or "a whole number of minor units (cents), 0 or more"),
        "zero_conf_cap_sats": (int, lambda v: v >= 0 or "a whole number of satoshis, 0 or more"),
        # The ranges a kiosk accepts in a signed bundle (atm/cas/bundle.py).
        "confirmations_required": (int, lambda v: 1 <= v <= 100 or "a whole number of blocks from 1 to 100"),
        "invoice_ttl_s": (int, lambda v: 60 <= v <= 86_400 or "a whole number of seconds from 60 to 86400"),
    },
    "operator": {"name": (str, None), "contact": (str, None)},
    "timeouts": {name: ((int, float), lambda v: v > 0 or "a positive number of seconds")
                 for name in Timeouts.__dataclass_fields__},
    "ui": {
        "host": (str, lambda v: v in ("127.0.0.1", "::1", "localhost") or "a loopback address (127.0.0.1): the kiosk listens on no other"),
        "port": (int, lambda v: 0 <= v <= 65535 or "a TCP port 0-65535"),
    },
    "service": {"pin_hash": (str, lambda v: v.startswith("pbkdf2_sha256$") or "a hash made by `atm pin-hash`")},
    "printer": {"on_paper_out": (str, lambda v: v in ("warn", "out_of_service") or "\"warn\" or \"out_of_service\"")},
    "cas": {
        "mode": (str, lambda v: v in ("standin", "client") or "\"standin\" (no server) or \"client\" (paired CAS)"),
        "state_dir": (str, None),
        "offline_stop_after_s": ((int, float), lambda v: v > 0 or "a positive number of seconds"),
    },
}


def _check(path: str, table: str, key: str, value: Any) -> Any:
    spec = _SCHEMA[table].get(key)
    if spec is None:
        known = ", ".join(sorted(_SCHEMA[table]))
        raise ConfigurationError(f"{path}: unknown key [{table}] {key!r}; known keys: {known}")
    kind, check = spec
    if isinstance(value, bool) or not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigurationError(f"{path}: [{table}] {key} = {value!r} should be of type {want}")
    if check is not None:
        verdict = check(value)
        if verdict is not True:
            raise ConfigurationError(f"{path}: [{table}] {key} = {value!r}; expected {verdict}")
    return value


def _rate_bounds(source: str, value: Any) -> tuple[Decimal, Decimal]:
    expected = (f"{source}: [limits] rate_bounds = {value!r}; expected [lowest, highest] fiat per BTC as "
                "decimal strings or whole numbers, 0 < lowest <= highest, e.g. [\"5000\", \"500000\"]")
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigurationError(expected)
    bounds = []
    for item in value:
        # Floats are refused: a rate bound is money-adjacent and TOML floats are binary.
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigurationError(expected)
        try:
            number = Decimal(str(item).strip())
        except InvalidOperation:
            raise ConfigurationError(expected) from None
        if not number.is_finite():
            raise ConfigurationError(expected)
        bounds.append(number)
    low, high = bounds
    if not Decimal(0) < low <= high:
        raise ConfigurationError(expected)
    return low, high


def _resolve(base: Path | None, value: str) -> Path:
    path = Path(value)
    return path if base is None or path.is_absolute() else base / path


def parse(data: Mapping[str, Any], source: str = "<config>", base: Path | None = None) -> Config:
    """Build a Config from parsed TOML, checking every key. Relative paths resolve
    against `base` (the configuration file's folder; the working directory if None)."""
    values: dict[str, Any] = {}
    for table, content in data.items():
        if table == "devices":
            continue
        if table not in _SCHEMA:
            raise ConfigurationError(f"{source}: unknown table [{table}]; known tables: "
                                     f"{', '.join(sorted([*_SCHEMA, 'devices']))}")
        if not isinstance(content, Mapping):
            raise ConfigurationError(f"{source}: {table} must be a table ([{table}])")
        for key, value in content.items():
            values[(table, key)] = _check(source, table, key, value)

    def get(table: str, key: str, default: Any) -> Any:
        return values.get((table, key), default)

    currency = get("kiosk", "currency", "EUR")
    min_buy = Fiat(get("limits", "min_buy_minor", 500), currency)
    max_buy = Fiat(get("limits", "max_buy_minor", 100_000), currency)
    if min_buy > max_buy:
        raise ConfigurationError(f"{source}: [limits] min_buy_minor ({min_buy.minor}) is above max_buy_minor ({max_buy.minor})")
    fee = get("limits", "fee_percent", "5")
    try:
        fee_value = Decimal(fee)
        if not (0 <= fee_value < 100):
            raise InvalidOperation
    except Exception:
        raise ConfigurationError(f"{source}: [limits] fee_percent = {fee!r}; expected a decimal string from \"0\" to below \"100\"") from None
    fixed_fee = Fiat(get("limits", "fixed_fee_minor", 0), currency)
    if fixed_fee.minor and fixed_fee >= min_buy:
        raise ConfigurationError(f"{source}: [limits] fixed_fee_minor ({fixed_fee.minor}) must be below "
                                 f"min_buy_minor ({min_buy.minor}): a minimum purchase would buy nothing")
    bounds_raw = get("limits", "rate_bounds", None)
    rate_bounds = None if bounds_raw is None else _rate_bounds(source, bounds_raw)

    timeouts = Timeouts(**{name: float(get("timeouts", name, default))
                           for name, default in Timeouts().__dict__.items()})

    devices: dict[str, DeviceConfig] = {}
    raw_devices = data.get("devices", {})
    if not isinstance(raw_devices, Mapping):
        raise ConfigurationError(f"{source}: devices must be tables like [devices.validator]")
    for kind, table in raw_devices.items():
        if kind not in DEVICE_KINDS:
            raise ConfigurationError(f"{source}: unknown device [devices.{kind}]; known: {', '.join(DEVICE_KINDS)}")
        if not isinstance(table, Mapping) or not isinstance(table.get("driver"), str):
            raise ConfigurationError(f"{source}: [devices.{kind}] needs a driver = \"NAME\" key")
        options = {k: v for k, v in table.items() if k != "driver"}
        devices[kind] = DeviceConfig(kind, table["driver"], options)

    sell = _sell(source, {key: value for (table, key), value in values.items() if table == "sell"},
                 "sell" in data)

    state_dir = _resolve(base, get("kiosk", "state_dir", "var"))
    return Config(
        source=source,
        kiosk_id=get("kiosk", "id", "kiosk-1"),
        currency=currency,
        network=get("kiosk", "network", "regtest"),
        language=get("kiosk", "language", "en"),
        state_dir=state_dir,
        min_buy=min_buy,
        max_buy=max_buy,
        fee_percent=fee,
        fixed_fee=fixed_fee,
        rate_bounds=rate_bounds,
        quote_max_age_s=get("limits", "quote_max_age_s", 60),
        operator_name=get("operator", "name", "Example Operator"),
        operator_contact=get("operator", "contact", "support@example.invalid"),
        timeouts=timeouts,
        ui_host=get("ui", "host", "127.0.0.1"),
        ui_port=get("ui", "port", 8080),
        technician_pin_hash=get("service", "pin_hash", None),
        on_paper_out=get("printer", "on_paper_out", "warn"),
        cas_mode=get("cas", "mode", "standin"),
        cas_state_dir=(_resolve(base, values[("cas", "state_dir")]) if ("cas", "state_dir") in values
                       else state_dir / "cas"),
        cas_offline_stop_after_s=float(get("cas", "offline_stop_after_s", 300.0)),
        devices=devices,
        sell=sell,
    )


SELL_REQUIRED = ("min_sell_minor", "max_sell_minor", "zero_conf_cap_sats", "confirmations_required", "invoice_ttl_s")


def _sell(source: str, table: dict[str, Any], present: bool) -> dict[str, Any] | None:
    if not present:
        return None
    missing = [key for key in SELL_REQUIRED if key not in table]
    if missing:
        raise ConfigurationError(f"{source}: [sell] needs {', '.join(missing)} (or no [sell] table: no selling)")
    if table["min_sell_minor"] > table["max_sell_minor"]:
        raise ConfigurationError(f"{source}: [sell] min_sell_minor ({table['min_sell_minor']}) is above "
                                 f"max_sell_minor ({table['max_sell_minor']})")
    fee = table.get("fee_percent", "0")
    try:
        if not 0 <= Decimal(fee) < 100:
            raise InvalidOperation
    except Exception:
        raise ConfigurationError(f"{source}: [sell] fee_percent = {fee!r}; expected a decimal string from \"0\" "
                                 "to below \"100\"") from None
    if table.get("fixed_fee_minor", 0) >= table["min_sell_minor"]:
        raise ConfigurationError(f"{source}: [sell] fixed_fee_minor ({table.get('fixed_fee_minor')}) must be below "
                                 f"min_sell_minor ({table['min_sell_minor']}): a smallest sell would pay no cash")
    return {"fee_percent": fee, "fixed_fee_minor": 0, **table}


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: configuration file not found (pass --config FILE; an example is config/kiosk.example.toml)") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path), base=path.resolve().parent)
