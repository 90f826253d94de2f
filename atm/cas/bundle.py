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

from atm.cas.interface import KioskSettings, SellSettings
from atm.cas.payment_proof import Checkpoint, target_from_bits, PaymentProofError
from atm.cas.wallet import WalletError, parse_xpub
from atm.cas.signing import (DocumentError, SignatureInvalid, SignatureMissing, parse_public_key,
                             strict_json, verify_document)
from atm.cas.wire import RATE_MAX, RATE_MIN
from hal.money import Fiat

BUNDLE_TYPE = "atm-config-bundle"
BUNDLE_FORMAT = 1
NETWORKS = ("main", "test", "regtest", "signet")
PAYMENT_HANDLING = ("hold", "refund")
DEFAULT_MAX_OFFLINE_S = 300
DEFAULT_QUOTE_MAX_AGE_S = 60
# A quote younger than 10 s would be refreshed under the customer's finger; one older
# than 10 minutes lets a customer buy at a price the market left long ago.
QUOTE_MAX_AGE_RANGE_S = (10, 600)
MAX_DECIMAL_TEXT = 40
# Signed sell rules. A deposit address waits at least a minute (a customer must be able
# to scan and pay) and at most a day (the kiosk holds the quote that long).
INVOICE_TTL_RANGE_S = (60, 86_400)
MAX_CONFIRMATIONS = 100        # more than a day of blocks: no operator means that
MAX_SATS = 21_000_000 * 100_000_000
# The largest target (least work) each network's consensus allows a block: a signed
# minimum above it would let headers no real chain has count as work.
POW_LIMITS = {
    "main": 0x00000000FFFF << 208,
    "test": 0x00000000FFFF << 208,
    "signet": 0x00000377AE << 216,
    "regtest": 0x7FFFFF << 232,
}


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
    quote_max_age_s: int = DEFAULT_QUOTE_MAX_AGE_S
    sell: SellSettings | None = None               # None: no signed [sell] table, the kiosk does not sell
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
                             wallet=wallet, fixed_fee=self.fixed_fee if self.fixed_fee.minor else None,
                             quote_max_age_s=self.quote_max_age_s,
                             rate_bounds=self.rate_bounds.get(self.currency),
                             max_offline_s=self.max_offline_s, sell=self.sell,
                             languages=self.languages)


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
    if len(str(value)) > MAX_DECIMAL_TEXT:
        raise BundleError(f"bundle {where}: a decimal of more than {MAX_DECIMAL_TEXT} characters")
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
    if fixed_fee.minor and fixed_fee >= min_buy:
        # The fixed fee is taken once per purchase; at or above the smallest purchase a
        # customer's cash could buy nothing at all.
        raise BundleError(f"bundle settings.fixed_fee_minor: {fixed_fee.minor} must be below min_buy_minor "
                          f"({min_buy.minor}), or a smallest purchase buys nothing")
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
    quote_max_age = _get(settings, "quote_max_age_s", int, "settings", required=False,
                         default=DEFAULT_QUOTE_MAX_AGE_S)
    if not QUOTE_MAX_AGE_RANGE_S[0] <= quote_max_age <= QUOTE_MAX_AGE_RANGE_S[1]:
        raise BundleError(f"bundle settings.quote_max_age_s: expected {QUOTE_MAX_AGE_RANGE_S[0]}.."
                          f"{QUOTE_MAX_AGE_RANGE_S[1]} seconds, got {quote_max_age}")
    rate_bounds = _rate_bounds(_get(settings, "rate_bounds", dict, "settings", required=False, default={}))
    if currency not in rate_bounds:
        # Rates come unsigned; without a signed range a compromised CAS could sell the
        # operator's coins for nothing (or a customer's cash for no coins).
        raise BundleError(f"bundle settings.rate_bounds: no signed rate range for the kiosk's currency {currency}; "
                          f"the operator must sign one, e.g. \"rate_bounds\": {{\"{currency}\": [\"LOWEST\", \"HIGHEST\"]}}",
                          "no-rate-bounds")
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
    sell_raw = _get(settings, "sell", (dict, type(None)), "settings", required=False)
    sell = None if sell_raw is None else _sell(sell_raw, currency, wallet)
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
                        max_offline_s=max_offline, rate_bounds=rate_bounds, quote_max_age_s=quote_max_age,
                        sell=sell, cas_pins=cas_pins, operator_key=operator_key,
                        languages=tuple(dict.fromkeys(languages)), payload=payload)


SELL_KEYS = ("min_sell_minor", "max_sell_minor", "fee_percent", "fixed_fee_minor", "zero_conf_cap_sats",
             "confirmations_required", "invoice_ttl_s", "checkpoint")
CHECKPOINT_KEYS = ("height", "block_hash", "max_target", "max_bits")


def _sell(raw: Mapping[str, Any], currency: str, wallet: WalletPolicy | None) -> SellSettings:
    """settings.sell: the operator's signed rules of cash-out, every key checked."""
    where = "settings.sell"
    unknown = sorted(set(raw) - set(SELL_KEYS))
    if unknown:
        # A key the kiosk does not know could be a rule the operator believes in force.
        raise BundleError(f"bundle {where}: unknown key {unknown[0][:40]!r}; known keys: {', '.join(SELL_KEYS)}")
    if wallet is None:
        raise BundleError(f"bundle {where}: selling needs settings.wallet (the xpub deposit addresses derive from)",
                          "no-wallet")
    min_sell = _get(raw, "min_sell_minor", int, where)
    max_sell = _get(raw, "max_sell_minor", int, where)
    if not 0 < min_sell <= max_sell:
        raise BundleError(f"bundle {where}: need 0 < min_sell_minor <= max_sell_minor, got {min_sell}..{max_sell}")
    fixed_fee = _get(raw, "fixed_fee_minor", int, where, required=False, default=0)
    if not 0 <= fixed_fee < min_sell:
        raise BundleError(f"bundle {where}.fixed_fee_minor: expected 0 <= fee < min_sell_minor ({min_sell}), "
                          f"got {fixed_fee}: at or above the smallest sell a customer would get no cash")
    fee_percent = _decimal(_get(raw, "fee_percent", (int, str), where), f"{where}.fee_percent")
    if not Decimal(0) <= fee_percent < Decimal(100):
        raise BundleError(f"bundle {where}.fee_percent: expected 0 <= fee < 100, got {fee_percent}")
    cap = _get(raw, "zero_conf_cap_sats", int, where)
    if not 0 <= cap <= MAX_SATS:
        raise BundleError(f"bundle {where}.zero_conf_cap_sats: expected 0..{MAX_SATS} sats, got {cap}")
    confirmations = _get(raw, "confirmations_required", int, where)
    if not 1 <= confirmations <= MAX_CONFIRMATIONS:
        raise BundleError(f"bundle {where}.confirmations_required: expected 1..{MAX_CONFIRMATIONS}, "
                          f"got {confirmations}")
    ttl = _get(raw, "invoice_ttl_s", int, where)
    if not INVOICE_TTL_RANGE_S[0] <= ttl <= INVOICE_TTL_RANGE_S[1]:
        raise BundleError(f"bundle {where}.invoice_ttl_s: expected {INVOICE_TTL_RANGE_S[0]}..{INVOICE_TTL_RANGE_S[1]} "
                          f"seconds, got {ttl}")
    checkpoint = _checkpoint(_get(raw, "checkpoint", dict, where), wallet.network)
    try:
        return SellSettings(min_sell=Fiat(min_sell, currency), max_sell=Fiat(max_sell, currency),
                            fee_percent=fee_percent, fixed_fee=Fiat(fixed_fee, currency) if fixed_fee else None,
                            zero_conf_cap_sats=cap, confirmations_required=confirmations, invoice_ttl_s=ttl,
                            checkpoint=checkpoint, invalid_payment=wallet.invalid_payment,
                            late_payment=wallet.late_payment)
    except ValueError as exc:
        raise BundleError(f"bundle {where}: {exc}") from None


def _hex_text(value: Any, where: str, max_digits: int) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= max_digits
            and all(c in "0123456789abcdefABCDEF" for c in value)):
        raise BundleError(f"bundle {where}: expected up to {max_digits} hex digits as a string")
    return value


def _checkpoint(raw: Mapping[str, Any], network: str) -> Checkpoint:
    """settings.sell.checkpoint: {height, block_hash (display hex), max_target (hex) or max_bits (hex)}."""
    where = "settings.sell.checkpoint"
    unknown = sorted(set(raw) - set(CHECKPOINT_KEYS))
    if unknown:
        raise BundleError(f"bundle {where}: unknown key {unknown[0][:40]!r}; known keys: {', '.join(CHECKPOINT_KEYS)}")
    height = _get(raw, "height", int, where)
    if not 0 <= height <= 100_000_000:
        raise BundleError(f"bundle {where}.height: expected a block height 0..100000000, got {height}")
    block_hash = _hex_text(_get(raw, "block_hash", str, where), f"{where}.block_hash", 64)
    if len(block_hash) != 64:
        raise BundleError(f"bundle {where}.block_hash: expected the block hash as 64 hex digits (as explorers show it)")
    if ("max_target" in raw) == ("max_bits" in raw):
        raise BundleError(f"bundle {where}: give exactly one of max_target (hex) or max_bits (compact hex, "
                          "e.g. \"1d00ffff\")")
    if "max_target" in raw:
        max_target = int(_hex_text(raw["max_target"], f"{where}.max_target", 64), 16)
    else:
        bits = int(_hex_text(raw["max_bits"], f"{where}.max_bits", 8), 16)
        try:
            max_target = target_from_bits(bits)
        except PaymentProofError as exc:
            raise BundleError(f"bundle {where}.max_bits: {exc}") from None
    limit = POW_LIMITS[network]
    if not 0 < max_target <= limit:
        raise BundleError(f"bundle {where}: the minimum work must be a target 0 < target <= {limit:#x}, the "
                          f"{network} network's own limit; got {max_target:#x}")
    return Checkpoint.from_display(height, block_hash.lower(), max_target)


def _rate_bounds(raw: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    bounds = {}
    for cur, pair in raw.items():
        where = f"settings.rate_bounds.{cur}"
        if not (len(cur) == 3 and cur.isascii() and cur.isalpha() and cur.isupper()):
            raise BundleError(f"bundle settings.rate_bounds: {cur[:10]!r} is not an ISO 4217 currency code")
        if not isinstance(pair, list) or len(pair) != 2:
            raise BundleError(f"bundle {where}: expected [lowest, highest] as decimal strings")
        low, high = _decimal(pair[0], where), _decimal(pair[1], where)
        if not RATE_MIN <= low <= high <= RATE_MAX:
            raise BundleError(f"bundle {where}: need {RATE_MIN} <= lowest <= highest <= {RATE_MAX} "
                              f"(fiat per bitcoin), got {low}..{high}")
        bounds[cur] = (low, high)
    return bounds


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
