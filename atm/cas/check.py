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

from atm.cas.bundle import BundleError, verify_bundle
from atm.cas.errors import NotPaired, PinMismatch
from atm.cas.interface import CasError
from atm.cas.signing import DocumentError, parse_public_key, strict_json
from atm.cas.state import BUNDLE_FILE, CERT_FILE, KEY_FILE, load_pairing
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


def _version_in_force(state_dir: Path) -> int | None:
    try:
        saved = strict_json((state_dir / BUNDLE_FILE).read_bytes(), BUNDLE_FILE)
        version = saved["document"]["payload"]["version"]
        return version if isinstance(version, int) else None
    except (OSError, DocumentError, KeyError, TypeError):
        return None


async def run_check(state_dir: Path, *, timeout_s: float = 10.0) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False, "pin": "unknown", "config_version": None, "signature": "missing",
                              "problems": []}
    problems: list[str] = report["problems"]
    try:
        record = load_pairing(state_dir)
    except NotPaired as exc:
        problems.append(str(exc))
        return report
    transport = CasTransport(record.cas_url, record.cas_pins, cert_path=state_dir / CERT_FILE,
                             key_path=state_dir / KEY_FILE, kiosk_id=record.kiosk_id, timeout_s=timeout_s)
    try:
        answer = await transport.request("GET", "/v1/config")
        report["pin"] = "match"
        doc = parse_config_answer(answer)
    except PinMismatch as exc:
        report["pin"] = "mismatch"
        problems.append(str(exc))
        return report
    except CasError as exc:
        if transport.last_pin_ok:
            report["pin"] = "match"
        problems.append(str(exc))
        return report
    finally:
        await transport.close()
    if doc is None:
        problems.append("the CAS holds no configuration bundle for this kiosk")
        return report
    if isinstance(doc, dict) and isinstance(doc.get("payload"), dict):
        version = doc["payload"].get("version")
        report["config_version"] = version if isinstance(version, int) and not isinstance(version, bool) else None
    try:
        bundle = verify_bundle(doc, parse_public_key(record.operator_key), kiosk_id=record.kiosk_id,
                               current_version=None)
    except BundleError as exc:
        report["signature"] = {"unsigned": "missing", "bad-signature": "invalid"}.get(exc.reason, "invalid")
        problems.append(str(exc))
        return report
    report["signature"] = "valid"
    in_force = _version_in_force(state_dir)
    if in_force is not None and bundle.version < in_force:
        problems.append(f"the CAS serves version {bundle.version}, older than version {in_force} in force (rollback)")
    report["ok"] = not problems
    return report


def _print_human(report: dict[str, Any]) -> None:
    print(f"CAS link: {'OK' if report['ok'] else 'NOT OK'}")
    print(f"  server key pin:  {report['pin']}")
    print(f"  configuration:   version {report['config_version']}, signature {report['signature']}")
    for problem in report["problems"]:
        print(f"  problem: {problem}")


def _command(args: argparse.Namespace) -> int:
    try:
        state_dir = state_dir_from_config(args.config)
    except CasError as exc:
        report = {"ok": False, "pin": "unknown", "config_version": None, "signature": "missing",
                  "problems": [str(exc)]}
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
