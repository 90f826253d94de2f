"""Operator-signed configuration bundles: the only source of anything that routes
money or opens the kiosk (wallet, payment handling, fees, limits, coins, technician
PIN hash, CAS pin changes, operator key rotation).

Pure parsing and policy: bytes + trusted key + current version in, a verified
ConfigBundle or a typed refusal out. Persistence is the client's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from atm.cas.interface import KioskSettings
from atm.cas.wallet import WalletError, parse_xpub
from atm.cas.signing import (DocumentError, SignatureInvalid, SignatureMissing, parse_public_key,
                             strict_json, verify_document)
from hal.money import Fiat

BUNDLE_TYPE = "atm-config-bundle"
BUNDLE_FORMAT = 1
NETWORKS = ("main", "test", "regtest", "signet")
PAYMENT_HANDLING = ("hold", "refund")
DEFAULT_MAX_OFFLINE_S = 300


class BundleError(DocumentError):
    """The bundle is not acceptable; the message names the field and what was expected."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason  # short word for status and alerts: malformed/unsigned/bad-signature/old-version/...


@dataclass(frozen=True)
class WalletPolicy:
    xpub: str
    network: str
    invalid_payment: str = "hold"
    late_payment: str = "hold"


@dataclass(frozen=True)
class ConfigBundle:
    kiosk_id: str
    version: int
    issued_at: int
    currency: str
    min_buy: Fiat
    max_buy: Fiat
    fee_percent: Decimal
    fixed_fee: Fiat
    coins: tuple[str, ...]
    wallet: WalletPolicy | None
    technician_pin_hash: str | None
    max_offline_s: int
    rate_bounds: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    cas_pins: tuple[str, ...] | None = None        # a signed pin change, else None
    operator_key: str | None = None                # a signed operator key rotation, else None
    languages: tuple[str, ...] = ()                # customer languages the operator enables
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def kiosk_settings(self) -> KioskSettings:
        wallet: dict[str, Any] = {"coins": list(self.coins), "fixed_fee_minor": self.fixed_fee.minor,
                                  "max_offline_s": self.max_offline_s}
        if self.wallet is not None:
            wallet.update(xpub=self.wallet.xpub, network=self.wallet.network,
                          invalid_payment=self.wallet.invalid_payment,
                          late_payment=self.wallet.late_payment)
        return KioskSettings(version=self.version, min_buy=self.min_buy, max_buy=self.max_buy,
                             fee_percent=self.fee_percent, technician_pin_hash=self.technician_pin_hash,
                             wallet=wallet, languages=self.languages)


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *,
         required: bool = True, default: Any = None) -> Any:
    if key not in obj:
        if required:
            raise BundleError(f"bundle {where}.{key}: missing")
        return default
    value = obj[key]
    if isinstance(value, bool) and kind is not bool:
        raise BundleError(f"bundle {where}.{key}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        raise BundleError(f"bundle {where}.{key}: expected {kind}, got {type(value).__name__}")
    return value


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BundleError(f"bundle {where}: expected a decimal as a string, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError):
        raise BundleError(f"bundle {where}: {value!r} is not a decimal number") from None
    if not result.is_finite():
        raise BundleError(f"bundle {where}: {value!r} is not a finite number")
    return result


def _pin_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BundleError(f"bundle {where}: expected a non-empty list of SHA-256 hex pins")
    pins = []
    for pin in value:
        if not (isinstance(pin, str) and len(pin) == 64 and all(c in "0123456789abcdef" for c in pin)):
            raise BundleError(f"bundle {where}: {pin!r} is not a lower-case SHA-256 hex pin")
        pins.append(pin)
    return tuple(pins)


def parse_payload(payload: Mapping[str, Any]) -> ConfigBundle:
    """Validate a bundle payload's fields (its signature is checked by the caller)."""
    if payload.get("type") != BUNDLE_TYPE:
        raise BundleError(f"bundle type: expected {BUNDLE_TYPE!r}, got {payload.get('type')!r}")
    fmt = _get(payload, "format", int, "")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(f"bundle format: this kiosk reads format {BUNDLE_FORMAT}, got {fmt}", "unsupported")
    kiosk_id = _get(payload, "kiosk_id", str, "")
    version = _get(payload, "version", int, "")
    if version < 1:
        raise BundleError(f"bundle version: expected a positive integer, got {version}")
    issued_at = _get(payload, "issued_at", int, "")
    settings = _get(payload, "settings", dict, "")
    currency = _get(settings, "currency", str, "settings")
    try:
        min_buy = Fiat(_get(settings, "min_buy_minor", int, "settings"), currency)
        max_buy = Fiat(_get(settings, "max_buy_minor", int, "settings"), currency)
        fixed_fee = Fiat(_get(settings, "fixed_fee_minor", int, "settings", required=False, default=0), currency)
    except ValueError as exc:
        raise BundleError(f"bundle settings: {exc}") from None
    if min_buy.minor < 0 or max_buy < min_buy:
        raise BundleError(f"bundle settings: need 0 <= min_buy_minor <= max_buy_minor, got {min_buy.minor}..{max_buy.minor}")
    if fixed_fee.minor < 0:
        raise BundleError("bundle settings.fixed_fee_minor: must not be negative")
    fee_percent = _decimal(_get(settings, "fee_percent", (int, str), "settings"), "settings.fee_percent")
    if not Decimal(0) <= fee_percent < Decimal(100):
        raise BundleError(f"bundle settings.fee_percent: expected 0 <= fee < 100, got {fee_percent}")
    coins_raw = _get(settings, "coins", list, "settings", required=False, default=["BTC"])
    if not coins_raw or not all(isinstance(c, str) and c.isascii() and c.isalnum() for c in coins_raw):
        raise BundleError("bundle settings.coins: expected a non-empty list of coin codes like 'BTC'")
    pin_hash = _get(settings, "technician_pin_hash", (str, type(None)), "settings", required=False)
    max_offline = _get(settings, "max_offline_s", int, "settings", required=False, default=DEFAULT_MAX_OFFLINE_S)
    if max_offline < 0:
        raise BundleError("bundle settings.max_offline_s: must not be negative")
    rate_bounds = {}
    bounds_raw = _get(settings, "rate_bounds", dict, "settings", required=False, default={})
    for cur, pair in bounds_raw.items():
        where = f"settings.rate_bounds.{cur}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise BundleError(f"bundle {where}: expected [lowest, highest] as decimal strings")
        low, high = _decimal(pair[0], where), _decimal(pair[1], where)
        if not Decimal(0) < low <= high:
            raise BundleError(f"bundle {where}: need 0 < lowest <= highest, got {low}..{high}")
        rate_bounds[cur] = (low, high)
    wallet = None
    wallet_raw = _get(settings, "wallet", (dict, type(None)), "settings", required=False)
    if wallet_raw is not None:
        network = _get(wallet_raw, "network", str, "settings.wallet")
        if network not in NETWORKS:
            raise BundleError(f"bundle settings.wallet.network: expected one of {NETWORKS}, got {network!r}")
        handling = {}
        for key in ("invalid_payment", "late_payment"):
            handling[key] = _get(wallet_raw, key, str, "settings.wallet", required=False, default="hold")
            if handling[key] not in PAYMENT_HANDLING:
                raise BundleError(f"bundle settings.wallet.{key}: expected one of {PAYMENT_HANDLING}, got {handling[key]!r}")
        xpub = _get(wallet_raw, "xpub", str, "settings.wallet")
        try:
            parse_xpub(xpub, network)
        except WalletError as exc:
            raise BundleError(f"bundle settings.wallet.xpub: {exc}") from None
        wallet = WalletPolicy(xpub=xpub, network=network, **handling)
    trust = _get(payload, "trust", dict, "", required=False, default={})
    cas_pins = _pin_list(trust["cas_pins"], "trust.cas_pins") if "cas_pins" in trust else None
    operator_key = None
    if "operator_key" in trust:
        try:
            parse_public_key(trust["operator_key"], "bundle trust.operator_key")
        except DocumentError as exc:
            raise BundleError(str(exc)) from None
        operator_key = trust["operator_key"]
    languages = _get(settings, "languages", list, "settings", required=False, default=[])
    if not all(isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha() and code.islower()
               for code in languages) or len(languages) > 32:
        raise BundleError("bundle settings.languages: expected a list of two-letter language codes like "
                          "[\"en\", \"de\"], at most 32")
    return ConfigBundle(kiosk_id=kiosk_id, version=version, issued_at=issued_at, currency=currency,
                        min_buy=min_buy, max_buy=max_buy, fee_percent=fee_percent, fixed_fee=fixed_fee,
                        coins=tuple(coins_raw), wallet=wallet, technician_pin_hash=pin_hash,
                        max_offline_s=max_offline, rate_bounds=rate_bounds, cas_pins=cas_pins, operator_key=operator_key,
                        languages=tuple(dict.fromkeys(languages)), payload=payload)


def verify_bundle(data: bytes | Mapping[str, Any], operator_key: Ed25519PublicKey, *, kiosk_id: str,
                  current_version: int | None) -> ConfigBundle:
    """The bundle if, and only if, the operator key signed it, it is for this kiosk and
    its version is newer than `current_version`. Otherwise BundleError with a reason."""
    try:
        doc = strict_json(data, "bundle") if isinstance(data, (bytes, str)) else data
        payload = verify_document(doc, operator_key, "bundle")
    except SignatureMissing as exc:
        raise BundleError(str(exc), "unsigned") from None
    except SignatureInvalid as exc:
        raise BundleError(str(exc), "bad-signature") from None
    except DocumentError as exc:
        raise BundleError(str(exc)) from None
    bundle = parse_payload(payload)
    if bundle.kiosk_id != kiosk_id:
        raise BundleError(f"bundle is for kiosk {bundle.kiosk_id!r}, this kiosk is {kiosk_id!r}", "other-kiosk")
    if current_version is not None and bundle.version <= current_version:
        raise BundleError(f"bundle version {bundle.version} is not newer than the version in force "
                          f"({current_version}): replayed or rolled back", "old-version")
    return bundle
