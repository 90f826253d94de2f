"""`atm-operator`: the operator's offline tool. Makes the config-signing key, pairing
codes (text and QR PNG), signed configuration bundles and remote commands, and
verifies either. Run it on the operator's own machine, never on the CAS: the
private key it makes is what a compromised CAS cannot forge.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import segno

from atm.cas.bundle import BUNDLE_FORMAT, BUNDLE_TYPE, BundleError, parse_payload
from atm.cas.commands import COMMAND_TYPE, KNOWN as KNOWN_COMMANDS
from atm.cas.errors import KeyFileError, PairingCodeError
from atm.cas.pairing import PairingOffer, check_kiosk_id, encode_pairing_code
from atm.cas.signing import (DocumentError, SignatureInvalid, SignatureMissing, generate_operator_key, key_id,
                             load_operator_key, parse_public_key, public_key_text, save_operator_key, sign_payload,
                             strict_json, verify_document)
from atm.cas.tls import spki_pin_of_pem


class OperatorToolError(Exception):
    """A problem the operator can fix; printed without a traceback."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return strict_json(path.read_bytes(), f"{what} {path}")
    except OSError as exc:
        raise OperatorToolError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except DocumentError as exc:
        raise OperatorToolError(str(exc)) from None


def _write_out(doc: Any, out: Path | None) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, "utf-8")
        print(f"wrote {out}", file=sys.stderr)


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.force:
        raise OperatorToolError(f"{args.out} exists; refusing to overwrite a signing key (use --force if you mean it)")
    key = generate_operator_key()
    save_operator_key(args.out, key)
    pub = public_key_text(key)
    pub_path = args.out.with_name(args.out.name + ".pub")
    pub_path.write_text(pub + "\n", "ascii")
    print(f"operator key {key_id(key)} written to {args.out} (mode 600); public key in {pub_path}")
    print(pub)
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    try:
        print(spki_pin_of_pem(args.cert.read_bytes()))
    except (OSError, ValueError) as exc:
        raise OperatorToolError(f"{args.cert}: not a readable PEM certificate ({exc})") from None
    return 0


def cmd_pairing_code(args: argparse.Namespace) -> int:
    key = load_operator_key(args.key)
    if args.cas_pin:
        pin = args.cas_pin.lower()
    elif args.cas_cert:
        try:
            pin = spki_pin_of_pem(args.cas_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise OperatorToolError(f"{args.cas_cert}: not a readable PEM certificate ({exc})") from None
    else:
        raise OperatorToolError("give the CAS key pin with --cas-pin HEX or --cas-cert FILE")
    token = args.token or secrets.token_urlsafe(24)
    code = encode_pairing_code(PairingOffer(cas_url=args.cas_url, cas_pin=pin, token=token,
                                            operator_key=public_key_text(key), kiosk_id=args.kiosk_id))
    if args.png:
        segno.make(code, error="m").save(str(args.png), scale=6, border=4)
        print(f"QR code written to {args.png}", file=sys.stderr)
    print(f"one-time pairing token (register it on the CAS for kiosk {args.kiosk_id}): {token}", file=sys.stderr)
    print(code)
    return 0


def _rate_bounds_option(text: str, settings: Any) -> dict[str, list[str]]:
    """--rate-bounds [CUR=]LOWEST:HIGHEST -> {"CUR": ["LOWEST", "HIGHEST"]} (CUR: the settings' currency)."""
    currency, _, pair = text.rpartition("=")
    if not currency:
        currency = settings.get("currency") if isinstance(settings, dict) else None
        if not isinstance(currency, str):
            raise OperatorToolError("--rate-bounds: the settings name no currency; write CUR=LOWEST:HIGHEST")
    low, sep, high = pair.partition(":")
    if not sep or not low.strip() or not high.strip():
        raise OperatorToolError(f"--rate-bounds {text!r}: expected [CUR=]LOWEST:HIGHEST, e.g. 20000:200000 "
                                "(fiat per bitcoin)")
    return {currency.strip(): [low.strip(), high.strip()]}


def _int_option(text: str, option: str, what: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise OperatorToolError(f"{option} {text!r}: expected {what}") from None


def _sell_options(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Put the --sell-*/--zero-conf-cap/--confirmations/--invoice-ttl/--checkpoint options
    into settings["sell"], over whatever the settings file has there."""
    sell: dict[str, Any] = {}
    if args.sell_limits is not None:
        low, sep, high = args.sell_limits.partition(":")
        if not sep:
            raise OperatorToolError(f"--sell-limits {args.sell_limits!r}: expected MIN:MAX in minor units "
                                    "(cents), e.g. 2000:50000")
        sell["min_sell_minor"] = _int_option(low, "--sell-limits", "MIN:MAX in minor units")
        sell["max_sell_minor"] = _int_option(high, "--sell-limits", "MIN:MAX in minor units")
    if args.sell_fee is not None:
        sell["fee_percent"] = args.sell_fee.strip()
    if args.sell_fixed_fee is not None:
        sell["fixed_fee_minor"] = args.sell_fixed_fee
    if args.zero_conf_cap is not None:
        sell["zero_conf_cap_sats"] = args.zero_conf_cap
    if args.confirmations is not None:
        sell["confirmations_required"] = args.confirmations
    if args.invoice_ttl is not None:
        sell["invoice_ttl_s"] = args.invoice_ttl
    if args.checkpoint is not None or args.checkpoint_bits is not None or args.checkpoint_target is not None:
        existing = settings.get("sell") if isinstance(settings.get("sell"), dict) else {}
        checkpoint = dict(existing.get("checkpoint") or {}) if isinstance(existing.get("checkpoint"), dict) else {}
        if args.checkpoint is not None:
            height, sep, block_hash = args.checkpoint.partition(":")
            if not sep:
                raise OperatorToolError(f"--checkpoint {args.checkpoint!r}: expected HEIGHT:BLOCKHASH (the hash as "
                                        "explorers show it)")
            checkpoint["height"] = _int_option(height, "--checkpoint", "HEIGHT:BLOCKHASH")
            checkpoint["block_hash"] = block_hash.strip().lower()
        if args.checkpoint_bits is not None:
            checkpoint.pop("max_target", None)
            checkpoint["max_bits"] = args.checkpoint_bits.strip().lower().removeprefix("0x")
        if args.checkpoint_target is not None:
            checkpoint.pop("max_bits", None)
            checkpoint["max_target"] = args.checkpoint_target.strip().lower().removeprefix("0x")
        sell["checkpoint"] = checkpoint
    if sell:
        base = settings.get("sell") if isinstance(settings.get("sell"), dict) else {}
        settings["sell"] = {**base, **sell}


def cmd_sign_bundle(args: argparse.Namespace) -> int:
    key = load_operator_key(args.key)
    settings = _read_json(args.settings, "settings")
    if not isinstance(settings, dict):
        raise OperatorToolError(f"{args.settings}: expected a JSON object of settings")
    for text in args.rate_bounds or []:
        settings["rate_bounds"] = {**(settings.get("rate_bounds") or {}), **_rate_bounds_option(text, settings)}
    if args.quote_max_age is not None:
        settings["quote_max_age_s"] = args.quote_max_age
    _sell_options(args, settings)
    payload: dict[str, Any] = {"type": BUNDLE_TYPE, "format": BUNDLE_FORMAT, "kiosk_id": check_kiosk_id(args.kiosk_id),
                               "version": args.version, "issued_at": int(time.time()), "settings": settings}
    if args.trust:
        payload["trust"] = _read_json(args.trust, "trust changes")
    try:
        parse_payload(payload)  # never sign what a kiosk would refuse
    except BundleError as exc:
        raise OperatorToolError(f"not signed: {exc}") from None
    _write_out(sign_payload(payload, key), args.out)
    return 0


def cmd_sign_command(args: argparse.Namespace) -> int:
    key = load_operator_key(args.key)
    try:
        command_args = json.loads(args.args) if args.args else {}
    except ValueError as exc:
        raise OperatorToolError(f"--args: not JSON ({exc})") from None
    if not isinstance(command_args, dict):
        raise OperatorToolError("--args: expected a JSON object")
    payload = {"type": COMMAND_TYPE, "kiosk_id": check_kiosk_id(args.kiosk_id), "name": args.name,
               "id": args.id or f"cmd-{secrets.token_hex(8)}", "sequence": args.sequence,
               "issued_at": int(time.time()), "args": command_args}
    _write_out(sign_payload(payload, key), args.out)
    return 0


def verify_file(path: Path, public_key_text_or_file: str, kiosk_id: str | None) -> dict[str, Any]:
    pub_source = Path(public_key_text_or_file)
    pub_text = pub_source.read_text("ascii").strip() if pub_source.exists() else public_key_text_or_file
    try:
        pub = parse_public_key(pub_text)
    except DocumentError as exc:
        raise OperatorToolError(f"--pub: {exc}") from None
    doc = _read_json(path, "signed document")
    result: dict[str, Any] = {"ok": False, "file": str(path), "type": None, "signature": "missing", "problems": []}
    payload = doc.get("payload") if isinstance(doc, dict) else None
    if isinstance(payload, dict):
        result["type"] = payload.get("type")
        result["version" if payload.get("type") == BUNDLE_TYPE else "sequence"] = payload.get(
            "version" if payload.get("type") == BUNDLE_TYPE else "sequence")
    try:
        payload = verify_document(doc, pub, str(path))
        result["signature"] = "valid"
    except SignatureMissing as exc:
        result["problems"].append(str(exc))
    except SignatureInvalid as exc:
        result["signature"] = "invalid"
        result["problems"].append(str(exc))
    except DocumentError as exc:
        result["signature"] = "invalid"
        result["problems"].append(str(exc))
    if result["signature"] == "valid":
        if payload.get("type") == BUNDLE_TYPE:
            try:
                parse_payload(payload)
            except BundleError as exc:
                result["problems"].append(str(exc))
        elif payload.get("type") == COMMAND_TYPE:
            if payload.get("name") not in KNOWN_COMMANDS:
                result["problems"].append(f"command {payload.get('name')!r} is not one kiosks know")
        else:
            result["problems"].append(f"unknown document type {payload.get('type')!r}")
        if kiosk_id is not None and payload.get("kiosk_id") != kiosk_id:
            result["problems"].append(f"signed for kiosk {payload.get('kiosk_id')!r}, not {kiosk_id!r}")
    result["ok"] = result["signature"] == "valid" and not result["problems"]
    return result


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_file(args.file, args.pub, args.kiosk_id)
    print(json.dumps(result, sort_keys=True))
    return 0 if result["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atm-operator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="make the operator's Ed25519 config-signing key (file mode 600)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="overwrite an existing key file")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("pin", help="print the SPKI SHA-256 pin of a CAS certificate (PEM)")
    p.add_argument("--cert", type=Path, required=True)
    p.set_defaults(func=cmd_pin)

    p = sub.add_parser("pairing-code", help="make a kiosk pairing code (text on stdout, QR PNG with --png)")
    p.add_argument("--key", type=Path, required=True, help="operator signing key file")
    p.add_argument("--cas-url", required=True, help="https://HOST:PORT of the CAS")
    p.add_argument("--cas-pin", help="SHA-256 of the CAS SubjectPublicKeyInfo, hex")
    p.add_argument("--cas-cert", type=Path, help="the CAS certificate (PEM), to compute the pin from")
    p.add_argument("--kiosk-id", required=True)
    p.add_argument("--token", help="one-time pairing token (default: a fresh random one)")
    p.add_argument("--png", type=Path, help="also write the code as a QR image")
    p.set_defaults(func=cmd_pairing_code)

    p = sub.add_parser("sign-bundle", help="sign a configuration bundle for one kiosk")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--kiosk-id", required=True)
    p.add_argument("--version", type=int, required=True, help="must be higher than any version signed before")
    p.add_argument("--settings", type=Path, required=True, help="JSON settings (see docs/cas-protocol.md)")
    p.add_argument("--trust", type=Path, help="JSON trust changes: cas_pins and/or operator_key")
    p.add_argument("--rate-bounds", action="append", metavar="[CUR=]LOWEST:HIGHEST",
                   help="the range the CAS's unsigned rate must fall in, fiat per bitcoin (required for the "
                        "settings' currency, here or as rate_bounds in the settings file)")
    p.add_argument("--quote-max-age", type=int, metavar="SECONDS",
                   help="a quote older than this is refreshed before the customer commits (default 60)")
    sell = p.add_argument_group("cash-out (settings.sell; without a sell table the kiosk does not sell)")
    sell.add_argument("--sell-limits", metavar="MIN:MAX", help="smallest and largest sell, in minor units (cents)")
    sell.add_argument("--sell-fee", metavar="PERCENT", help="percent fee on a sell, as a decimal, e.g. 6.5")
    sell.add_argument("--sell-fixed-fee", type=int, metavar="MINOR", help="fixed fee once per sell, minor units")
    sell.add_argument("--zero-conf-cap", type=int, metavar="SATS",
                      help="a payment up to this many sats is paid out unconfirmed")
    sell.add_argument("--confirmations", type=int, metavar="N", help="confirmations needed above the cap")
    sell.add_argument("--invoice-ttl", type=int, metavar="SECONDS", help="how long a deposit address waits")
    sell.add_argument("--checkpoint", metavar="HEIGHT:BLOCKHASH",
                      help="a recent block you checked yourself; payments are proven from it")
    work = sell.add_mutually_exclusive_group()
    work.add_argument("--checkpoint-bits", metavar="HEX",
                      help="least work a header after the checkpoint must show, as compact bits, e.g. 17034219")
    work.add_argument("--checkpoint-target", metavar="HEX", help="the same as the largest target, in hex")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_sign_bundle)

    p = sub.add_parser("sign-command", help="sign a remote command (activate, unpair, deactivate)")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--kiosk-id", required=True)
    p.add_argument("--name", required=True, choices=sorted(KNOWN_COMMANDS))
    p.add_argument("--sequence", type=int, required=True, help="must be higher than any command signed before")
    p.add_argument("--id", help="command id (default: random)")
    p.add_argument("--args", help="JSON object of command arguments")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_sign_command)

    p = sub.add_parser("verify", help="verify a signed bundle or command; exit 1 if not valid")
    p.add_argument("file", type=Path)
    p.add_argument("--pub", required=True, help="operator public key (ed25519:...) or a file holding it")
    p.add_argument("--kiosk-id", help="also check it is for this kiosk")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OperatorToolError, KeyFileError, PairingCodeError) as exc:
        print(f"atm-operator: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
