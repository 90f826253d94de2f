"""One parser for every text a customer or technician scans: Bitcoin addresses,
BIP21 payment links, Lightning (BOLT11) invoices, pairing and redeem codes.

It validates checksums and the configured network and turns anything it cannot
accept into a PayloadError with a stable `.reason` code. Pure: no I/O, no devices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union
from urllib.parse import unquote

from embit import base58
from embit.bech32 import CHARSET, bech32_hrp_expand, bech32_polymod, convertbits
from embit.networks import NETWORKS

from hal.errors import ConfigurationError

__all__ = [
    "MAX_PAYLOAD_CHARS",
    "NETWORK_NAMES",
    "BitcoinAddress",
    "PaymentRequest",
    "LightningInvoice",
    "PairingCode",
    "RedeemCode",
    "Payload",
    "PayloadError",
    "parse_payload",
    "parse_address",
    "payload_kind",
]

# A BOLT11 invoice with routing hints can pass 1,500 characters; a QR code
# holds at most ~4,300 alphanumeric characters. Anything longer is not ours.
MAX_PAYLOAD_CHARS = 4096

NETWORK_NAMES = ("main", "test", "regtest", "signet")

_SATS_PER_BTC = 100_000_000
_MAX_SATS = 21_000_000 * _SATS_PER_BTC
_MSAT_PER_BTC = 100_000_000_000

_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3

# BOLT11 prefixes per network; longest first so "lnbcrt" is not read as "lnbc" + "rt".
_LIGHTNING_PREFIXES = (("lnbcrt", "regtest"), ("lntbs", "signet"), ("lntb", "test"), ("lnbc", "main"))
# Multiplier letter -> millisatoshi per unit, as a fraction (numerator, denominator):
# "p" is a tenth of a millisatoshi, so a pico amount must be a multiple of 10.
_LIGHTNING_MULTIPLIERS = {
    "": (_MSAT_PER_BTC, 1),
    "m": (100_000_000, 1),
    "u": (100_000, 1),
    "n": (100, 1),
    "p": (1, 10),
}
# timestamp (7 groups) + signature (104 groups) + checksum (6 groups)
_LIGHTNING_MIN_DATA_CHARS = 7 + 104 + 6

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# ASCII digits only: \d would also take Arabic-Indic and other Unicode digits.
_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_BASE58_CHARS = frozenset(base58.B58_DIGITS)

AddressKind = Literal["p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr", "witness"]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BitcoinAddress:
    """An address that passed its checksum on `network`. Bech32 addresses are
    kept in lower case (their canonical form), base58 ones exactly as given."""

    address: str
    network: str
    kind: AddressKind


@dataclass(frozen=True)
class PaymentRequest:
    """A BIP21 `bitcoin:` link: the address, and what the wallet asked for."""

    address: BitcoinAddress
    amount_sats: int | None = None
    label: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class LightningInvoice:
    """A BOLT11 invoice whose bech32 checksum and network prefix were checked.
    `amount_msat` is None for an any-amount invoice. The data part (payment
    hash, expiry, signature) is not decoded here; the Lightning backend does that."""

    invoice: str
    network: str
    amount_msat: int | None


@dataclass(frozen=True)
class PairingCode:
    """`atmpair:...`: the text after the prefix, decoded by atm.cas.pairing."""

    payload: str


@dataclass(frozen=True)
class RedeemCode:
    """`atmredeem:...`: a code the kiosk printed on a sell receipt."""

    code: str


Payload = Union[BitcoinAddress, PaymentRequest, LightningInvoice, PairingCode, RedeemCode]


class PayloadError(ValueError):
    """Scanned text the kiosk refuses. `reason` is a short stable code for logs,
    tests and screen texts; the message is for the person at the machine."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __repr__(self) -> str:
        return f"PayloadError({self.reason!r}, {str(self)!r})"


def payload_kind(payload: Payload) -> str:
    """A one-word name of the payload's type for logs and tool output."""
    if isinstance(payload, BitcoinAddress):
        return "address"
    if isinstance(payload, PaymentRequest):
        return "bip21"
    if isinstance(payload, LightningInvoice):
        return "lightning"
    if isinstance(payload, PairingCode):
        return "pairing"
    if isinstance(payload, RedeemCode):
        return "redeem"
    raise TypeError(f"not a payload: {payload!r}")


# --------------------------------------------------------------------------- entry point


def parse_payload(text: str, *, network: str = "main", lightning: bool = False) -> Payload:
    """Turn scanned text into a typed payload, or raise PayloadError.

    `network` is the kiosk's configured chain ("main", "test", "regtest",
    "signet"); `lightning` says whether this kiosk accepts Lightning invoices.
    """
    _require_known_network(network)
    if not isinstance(text, str):
        raise PayloadError("not_a_payload", "The scanned code is not text.")
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadError(
            "too_long",
            f"The scanned code is too long ({len(text)} characters, at most {MAX_PAYLOAD_CHARS}).",
        )
    text = text.strip()
    if not text:
        raise PayloadError("empty", "The scanned code is empty.")

    scheme_match = _SCHEME.match(text)
    if scheme_match is not None:
        scheme = scheme_match.group(1).lower()
        rest = text[scheme_match.end():]
        if scheme == "bitcoin":
            return _parse_bip21(rest, network, lightning)
        if scheme == "lightning":
            return _parse_lightning(rest, network, lightning)
        if scheme == "atmpair":
            return _parse_pairing(rest)
        if scheme == "atmredeem":
            return _parse_redeem(rest)
        raise PayloadError(
            "unknown_scheme",
            f"This machine does not accept '{scheme_match.group(1)}:' codes; "
            "please show a Bitcoin address or payment request.",
        )

    lowered = text.lower()
    if "1" in lowered and lowered.startswith(tuple(prefix for prefix, _ in _LIGHTNING_PREFIXES)):
        return _parse_lightning(text, network, lightning)
    return parse_address(text, network)


# --------------------------------------------------------------------------- addresses


def parse_address(text: str, network: str = "main") -> BitcoinAddress:
    """Validate one bare address (no scheme) for `network`."""
    _require_known_network(network)
    if not text:
        raise PayloadError("bad_address", "The payment request has no Bitcoin address.")
    if _looks_like_segwit(text):
        return _parse_segwit(text, network)
    if all(ch in _BASE58_CHARS for ch in text):
        return _parse_base58(text, network)
    raise PayloadError(
        "not_a_payload",
        "The scanned code is not a Bitcoin address or payment request.",
    )


def _require_known_network(network: str) -> None:
    # The kiosk's configuration is wrong, not the customer's code: never a PayloadError.
    if network not in NETWORK_NAMES:
        raise ConfigurationError(
            f"network = {network!r} is not a Bitcoin network this kiosk knows; "
            f"expected one of {', '.join(NETWORK_NAMES)}"
        )


def _known_segwit_hrps() -> dict[str, set[str]]:
    hrps: dict[str, set[str]] = {}
    for name, params in NETWORKS.items():
        hrps.setdefault(params["bech32"], set()).add(name)
    return hrps


def _looks_like_segwit(text: str) -> bool:
    lowered = text.lower()
    return any(lowered.startswith(hrp + "1") for hrp in _known_segwit_hrps())


def _parse_segwit(text: str, network: str) -> BitcoinAddress:
    if text.lower() != text and text.upper() != text:
        raise PayloadError(
            "bad_address",
            "The address mixes upper- and lower-case letters, which a valid address never does.",
        )
    if len(text) > 90:
        raise PayloadError("bad_address", "The address is too long to be a Bitcoin address.")
    lowered = text.lower()
    sep = lowered.rfind("1")
    hrp, data_part = lowered[:sep], lowered[sep + 1:]
    if len(data_part) < 6 or any(ch not in CHARSET for ch in data_part):
        raise PayloadError(
            "bad_checksum",
            "The address contains a character that cannot appear in it; please check the code.",
        )
    data = [CHARSET.find(ch) for ch in data_part]
    const = bech32_polymod(bech32_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise PayloadError(
            "bad_checksum",
            "The address checksum does not match: a character is wrong. Please check the code.",
        )
    values = data[:-6]
    if not values:
        raise PayloadError("bad_address", "The address has no witness program.")
    version = values[0]
    if version > 16:
        raise PayloadError("bad_address", f"The address has an invalid witness version ({version}).")
    # BIP350: version 0 keeps the original bech32 constant, 1 and above use bech32m.
    expected = _BECH32_CONST if version == 0 else _BECH32M_CONST
    if const != expected:
        raise PayloadError(
            "bad_checksum",
            "The address checksum uses the wrong encoding for its version "
            "(bech32 vs bech32m); it was probably made by faulty software.",
        )
    program = convertbits(values[1:], 5, 8, False)
    if program is None or not 2 <= len(program) <= 40:
        raise PayloadError("bad_address", "The address has an invalid witness program length.")
    if version == 0 and len(program) not in (20, 32):
        raise PayloadError(
            "bad_address",
            f"A version 0 address must carry 20 or 32 bytes, this one carries {len(program)}.",
        )
    _require_network(network, _known_segwit_hrps()[hrp])
    kind: AddressKind
    if version == 0:
        kind = "p2wpkh" if len(program) == 20 else "p2wsh"
    elif version == 1 and len(program) == 32:
        kind = "p2tr"
    else:
        kind = "witness"
    return BitcoinAddress(address=lowered, network=network, kind=kind)


def _parse_base58(text: str, network: str) -> BitcoinAddress:
    # 21 payload bytes + 4 checksum bytes encode to 25..35 base58 characters.
    if not 25 <= len(text) <= 35:
        raise PayloadError(
            "not_a_payload",
            "The scanned code is not a Bitcoin address or payment request.",
        )
    try:
        raw = base58.decode_check(text)
    except ValueError:
        raise PayloadError(
            "bad_checksum",
            "The address checksum does not match: a character is wrong. Please check the code.",
        ) from None
    if len(raw) != 21:
        raise PayloadError("bad_address", "The code decodes to something that is not a Bitcoin address.")
    prefix = raw[:1]
    for kind in ("p2pkh", "p2sh"):
        owners = {name for name, params in NETWORKS.items() if params[kind] == prefix}
        if owners:
            _require_network(network, owners)
            return BitcoinAddress(address=text, network=network, kind=kind)  # type: ignore[arg-type]
    raise PayloadError(
        "bad_address",
        f"The address has an unknown version byte 0x{raw[0]:02x}; it is not a Bitcoin address.",
    )


def _require_network(network: str, owners: set[str]) -> None:
    if network not in owners:
        raise PayloadError(
            "wrong_network",
            f"This address is for the Bitcoin {_network_words(owners)} network, "
            f"but this machine works on {_network_words({network})}.",
        )


def _network_words(names: set[str]) -> str:
    words = {"main": "main", "test": "test", "regtest": "regtest", "signet": "signet"}
    return "/".join(words[name] for name in sorted(names))


# --------------------------------------------------------------------------- BIP21


def _parse_bip21(rest: str, network: str, lightning: bool) -> Payload:
    address_part, _, query = rest.partition("?")
    params: dict[str, str] = {}
    if query:
        for pair in query.split("&"):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            # Keys are compared without case: upper-case QR codes (alphanumeric
            # mode, denser) arrive as BITCOIN:ADDR?AMOUNT=1.
            key = key.lower()
            if not key:
                raise PayloadError("bad_uri", "The payment request has a parameter without a name.")
            if key in params:
                raise PayloadError(
                    "duplicate_param",
                    f"The payment request gives '{key}' twice; it is ambiguous, so it is refused.",
                )
            if key.startswith("req-"):
                raise PayloadError(
                    "unsupported_req_param",
                    f"The payment request requires '{key[4:]}', which this machine does not support.",
                )
            params[key] = value

    if not address_part:
        invoice = params.get("lightning")
        if invoice is not None:
            return _parse_lightning(invoice, network, lightning)
        raise PayloadError("bad_address", "The payment request has no Bitcoin address.")

    address = parse_address(address_part, network)
    amount = _parse_btc_amount(params["amount"]) if "amount" in params else None
    return PaymentRequest(
        address=address,
        amount_sats=amount,
        label=_percent_decode(params, "label"),
        message=_percent_decode(params, "message"),
    )


def _parse_btc_amount(raw: str) -> int:
    match = _AMOUNT.fullmatch(raw)
    if match is None or not (match.group(1) or match.group(2)):
        raise PayloadError(
            "bad_amount",
            f"The payment request amount '{raw[:32]}' is not a plain decimal number of bitcoin.",
        )
    whole, fraction = match.group(1) or "0", match.group(2) or ""
    if len(fraction) > 8:
        raise PayloadError(
            "bad_amount",
            "The payment request amount has more than 8 decimals (smaller than one satoshi).",
        )
    if len(whole) > 9:
        raise PayloadError("bad_amount", "The payment request amount is larger than all bitcoin.")
    sats = int(whole) * _SATS_PER_BTC + int(fraction.ljust(8, "0"))
    if sats == 0:
        raise PayloadError("bad_amount", "The payment request asks for an amount of zero.")
    if sats > _MAX_SATS:
        raise PayloadError("bad_amount", "The payment request amount is larger than all bitcoin.")
    return sats


def _percent_decode(params: dict[str, str], key: str) -> str | None:
    if key not in params:
        return None
    try:
        return unquote(params[key], errors="strict")
    except UnicodeDecodeError:
        raise PayloadError(
            "bad_encoding",
            f"The payment request's {key} is not valid percent-encoded UTF-8 text.",
        ) from None


# --------------------------------------------------------------------------- Lightning


def _parse_lightning(text: str, network: str, lightning: bool) -> LightningInvoice:
    if not lightning:
        raise PayloadError(
            "lightning_disabled",
            "This machine does not accept Lightning invoices; please show an on-chain Bitcoin address.",
        )
    if text.lower() != text and text.upper() != text:
        raise PayloadError(
            "bad_invoice",
            "The invoice mixes upper- and lower-case letters, which a valid invoice never does.",
        )
    invoice = text.lower()
    if any(not 33 <= ord(ch) <= 126 for ch in invoice):
        raise PayloadError("bad_invoice", "The invoice contains characters that cannot appear in it.")
    sep = invoice.rfind("1")
    if sep < 1:
        raise PayloadError("bad_invoice", "The scanned code is not a Lightning invoice.")
    hrp, data_part = invoice[:sep], invoice[sep + 1:]
    if any(ch not in CHARSET for ch in data_part):
        raise PayloadError(
            "bad_checksum",
            "The invoice contains a character that cannot appear in it; please check the code.",
        )
    data = [CHARSET.find(ch) for ch in data_part]
    # BOLT11 keeps the original bech32 constant (not bech32m).
    if len(data) < 6 or bech32_polymod(bech32_hrp_expand(hrp) + data) != _BECH32_CONST:
        raise PayloadError(
            "bad_checksum",
            "The invoice checksum does not match: part of it was misread or altered.",
        )
    if len(data) < _LIGHTNING_MIN_DATA_CHARS:
        raise PayloadError("bad_invoice", "The invoice is too short to carry a signature.")

    for prefix, invoice_network in _LIGHTNING_PREFIXES:
        if hrp.startswith(prefix):
            amount_text = hrp[len(prefix):]
            break
    else:
        raise PayloadError("bad_invoice", "The invoice is not for Bitcoin (unknown prefix).")
    if invoice_network != network:
        raise PayloadError(
            "wrong_network",
            f"This invoice is for the Bitcoin {invoice_network} network, "
            f"but this machine works on {network}.",
        )
    return LightningInvoice(invoice=invoice, network=network, amount_msat=_lightning_amount(amount_text))


def _lightning_amount(amount_text: str) -> int | None:
    if not amount_text:
        return None
    digits, multiplier = amount_text, ""
    if amount_text[-1] in _LIGHTNING_MULTIPLIERS:
        digits, multiplier = amount_text[:-1], amount_text[-1]
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0"):
        raise PayloadError("bad_amount", "The invoice amount is not a valid number.")
    if len(digits) > 20:
        raise PayloadError("bad_amount", "The invoice amount is larger than all bitcoin.")
    numerator, denominator = _LIGHTNING_MULTIPLIERS[multiplier]
    scaled = int(digits) * numerator
    if scaled % denominator:
        raise PayloadError("bad_amount", "The invoice amount is smaller than one millisatoshi.")
    msat = scaled // denominator
    if msat > _MAX_SATS * 1000:
        raise PayloadError("bad_amount", "The invoice amount is larger than all bitcoin.")
    return msat


# --------------------------------------------------------------------------- kiosk codes


def _parse_pairing(rest: str) -> PairingCode:
    if not rest:
        raise PayloadError("bad_pairing_code", "The pairing code is empty after 'atmpair:'.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in rest):
        raise PayloadError("bad_pairing_code", "The pairing code contains control characters.")
    return PairingCode(payload=rest)


def _parse_redeem(rest: str) -> RedeemCode:
    if not rest:
        raise PayloadError("bad_redeem_code", "The redeem code is empty after 'atmredeem:'.")
    if len(rest) > 128 or any(not 33 <= ord(ch) <= 126 for ch in rest):
        raise PayloadError(
            "bad_redeem_code",
            "The redeem code is not one this machine printed (unexpected characters or length).",
        )
    return RedeemCode(code=rest)
