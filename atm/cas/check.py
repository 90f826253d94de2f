"""`atm cas check`: a technician's one-shot test of the CAS link from the kiosk's paired
state dir: connect with the pin, fetch the configuration, verify its signature.

Read-only: it changes neither the pairing, the bundle in force nor the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import logging
import sqlite3

from atm.cas.bundle import BundleError, verify_bundle
from atm.cas.errors import NotPaired, PinMismatch, crash_site, plain_text
from atm.cas.interface import CasError
from atm.cas.signing import (DocumentError, SignatureInvalid, SignatureMissing, canonical, parse_public_key,
                             strict_json, verify_document)
from atm.cas.state import BUNDLE_FILE, CERT_FILE, DB_FILE, KEY_FILE, load_pairing
from atm.cas.transport import CasTransport
from atm.cas.wire import parse_config_answer

DEFAULT_STATE_DIR = "var/cas"


def state_dir_from_config(config: Path | None) -> Path:
    """The [cas] state_dir of the kiosk's TOML config (default var/cas); other tables are ignored.
    Relative paths are taken from the working directory, as the kiosk does."""
    if config is None:
        return Path(DEFAULT_STATE_DIR)
    try:
        data = tomllib.loads(config.read_text("utf-8"))
    except OSError as exc:
        raise CasError(f"{config}: cannot read the kiosk config ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CasError(f"{config}: not valid UTF-8 TOML ({exc})") from None
    cas = data.get("cas", {})
    kiosk = data.get("kiosk", {})
    if not isinstance(cas, dict) or not isinstance(kiosk, dict):
        raise CasError(f"{config}: [cas] and [kiosk] must be tables")
    # Same default as the kiosk's own config loader: [kiosk] state_dir + "/cas".
    kiosk_state = kiosk.get("state_dir", "var")
    value = cas.get("state_dir", f"{kiosk_state}/cas" if isinstance(kiosk_state, str) else DEFAULT_STATE_DIR)
    if not isinstance(value, str) or not value:
        raise CasError(f"{config}: [cas] state_dir must be a path as text, got {value!r}")
    return Path(value)


log = logging.getLogger("atm.cas")


def _payload_in_force(state_dir: Path) -> dict[str, Any] | None:
    try:
        saved = strict_json((state_dir / BUNDLE_FILE).read_bytes(), BUNDLE_FILE)
        payload = saved["document"]["payload"]
        return payload if isinstance(payload, dict) and isinstance(payload.get("version"), int) else None
    except (OSError, DocumentError, KeyError, TypeError):
        return None


def _store_counts(state_dir: Path) -> tuple[int | None, int | None, int | None]:
    """(version floor, items queued, alerts queued) from the client's store, opened read-only."""
    path = state_dir / DB_FILE
    if not path.exists():
        return None, 0, 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            floor = db.execute("SELECT value FROM meta WHERE name = 'bundle_version_floor'").fetchone()
            queued = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            alerts = db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'alert'").fetchone()[0]
        finally:
            db.close()
        return (int(floor[0]) if floor else None), queued, alerts
    except (sqlite3.Error, ValueError):
        return None, None, None


async def run_check(state_dir: Path, *, timeout_s: float = 10.0) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False, "pin": "unknown", "config_version": None, "signature": "missing",
                              "problems": [], "queue_length": None, "alerts_queued": None, "sell": None}
    try:
        await _check(state_dir, timeout_s, report)
    except Exception as exc:  # the technician gets a report, never a traceback
        log.error("atm cas check failed (%s)", crash_site(exc))
        report["problems"].append(f"the check itself failed ({crash_site(exc)})")
    report["problems"] = [plain_text(problem, 1000) for problem in report["problems"]]
    report["ok"] = report["ok"] and not report["problems"]
    return report


async def _check(state_dir: Path, timeout_s: float, report: dict[str, Any]) -> None:
    problems: list[str] = report["problems"]
    floor, report["queue_length"], report["alerts_queued"] = _store_counts(state_dir)
    try:
        record = load_pairing(state_dir)
    except NotPaired as exc:
        problems.append(str(exc))
        return
    transport = CasTransport(record.cas_url, record.cas_pins, cert_path=state_dir / CERT_FILE,
                             key_path=state_dir / KEY_FILE, kiosk_id=record.kiosk_id, timeout_s=timeout_s)
    try:
        answer = await transport.request("GET", "/v1/config")
        report["pin"] = "match"
        doc = parse_config_answer(answer)
    except PinMismatch as exc:
        report["pin"] = "mismatch"
        problems.append(str(exc))
        return
    except CasError as exc:
        if transport.last_pin_ok:
            report["pin"] = "match"
        problems.append(str(exc))
        return
    finally:
        await transport.close()
    if doc is None:
        problems.append("the CAS holds no configuration bundle for this kiosk")
        return
    if isinstance(doc, dict) and isinstance(doc.get("payload"), dict):
        version = doc["payload"].get("version")
        report["config_version"] = version if isinstance(version, int) and not isinstance(version, bool) else None
    operator_key = parse_public_key(record.operator_key)
    # The signature first, on its own, so a well-signed bundle with a bad field says
    # "signature valid" and names the field.
    try:
        verify_document(doc, operator_key, "bundle")
        report["signature"] = "valid"
    except SignatureMissing:
        report["signature"] = "missing"
    except (SignatureInvalid, DocumentError):
        report["signature"] = "invalid"
    try:
        bundle = verify_bundle(doc, operator_key, kiosk_id=record.kiosk_id, current_version=None)
    except BundleError as exc:
        problems.append(f"the kiosk refuses this bundle: {exc}")
        return
    if bundle.sell is not None:
        # What pays cash out: a technician checks the cap and the checkpoint against the
        # operator's own records.
        report["sell"] = {"zero_conf_cap_sats": bundle.sell.zero_conf_cap_sats,
                          "confirmations_required": bundle.sell.confirmations_required,
                          "checkpoint_height": bundle.sell.checkpoint.height,
                          "checkpoint_hash": bundle.sell.checkpoint.block_hash[::-1].hex(),
                          "invoice_ttl_s": bundle.sell.invoice_ttl_s}
    # Judged as the kiosk judges it: against the bundle in force and the version floor
    # its store keeps (which outlives a deleted bundle.json).
    in_force = _payload_in_force(state_dir)
    in_force_version = max(v for v in (floor, in_force["version"] if in_force else None, 0) if v is not None)
    if bundle.version < in_force_version:
        problems.append(f"the CAS serves version {bundle.version}, older than version {in_force_version} in force "
                        "(rollback); the kiosk refuses it")
    elif bundle.version == in_force_version:
        if in_force is None or in_force.get("version") != bundle.version:
            problems.append(f"the CAS serves version {bundle.version}, which the kiosk already passed; it refuses it")
        elif canonical(in_force) != canonical(dict(bundle.payload)):
            problems.append(f"the CAS serves version {bundle.version} with other content than the version "
                            f"{bundle.version} in force; the kiosk refuses it (a version is signed once)")
    report["ok"] = True


def _print_human(report: dict[str, Any]) -> None:
    print(f"CAS link: {'OK' if report['ok'] else 'NOT OK'}")
    print(f"  server key pin:  {report['pin']}")
    print(f"  configuration:   version {report['config_version']}, signature {report['signature']}")
    print(f"  upload queue:    {report['queue_length']} waiting, {report['alerts_queued']} of them alerts")
    sell = report.get("sell")
    if sell is None:
        print("  selling:         no signed sell rules (the kiosk does not sell)")
    else:
        print(f"  selling:         unconfirmed up to {sell['zero_conf_cap_sats']} sat, above it "
              f"{sell['confirmations_required']} confirmations; checkpoint height {sell['checkpoint_height']} "
              f"({sell['checkpoint_hash']}); invoices live {sell['invoice_ttl_s']} s")
    for problem in report["problems"]:
        print(f"  problem: {problem}")


def _command(args: argparse.Namespace) -> int:
    try:
        state_dir = state_dir_from_config(args.config)
    except CasError as exc:
        report = {"ok": False, "pin": "unknown", "config_version": None, "signature": "missing",
                  "problems": [str(exc)], "queue_length": None, "alerts_queued": None, "sell": None}
    else:
        report = asyncio.run(run_check(state_dir, timeout_s=args.timeout))
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_human(report)
    return 0 if report["ok"] else 1


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add `cas check` to the `atm` command line; the handler is in `func`, returning the exit code."""
    cas = subparsers.add_parser("cas", help="the link to the operator's CAS")
    cas_sub = cas.add_subparsers(dest="cas_command", required=True, metavar="COMMAND")
    check = cas_sub.add_parser("check", help="connect with the pin, fetch and verify the configuration")
    check.add_argument("--config", type=Path, default=None, help="kiosk TOML config (reads [cas] state_dir)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the CAS (default 10)")
    check.set_defaults(func=_command)
    from atm.cas.pairing_cli import register as register_pair
    register_pair(cas_sub)
