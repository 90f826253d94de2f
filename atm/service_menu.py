"""The technician's service menu behind the PIN: what each page shows (status, alerts,
cash, cassettes, tests, pairing, logs, activation) and the actions a technician takes
there. The kiosk routes `service_action` here once the PIN was accepted; the page
(atm/ui/static/service.js) draws the pages. Money facts go through the journal like
everywhere else; nothing here decides about a customer's money.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hal import Fiat, Light
from hal.dispenser import CashDispenser
from hal.money import minor_digits
from hal.errors import DeviceError
from hal.printer import Receipt, TextLine
from hal.scanner import CodeScanner
from atm import receipts, texts
from atm.cas.interface import CasError
from atm.cas.pairing import PAIRING_PREFIX
from atm.journal import JournalError
from atm.ui.facade import PreviewRefused

if TYPE_CHECKING:
    from atm.kiosk import Kiosk

log = logging.getLogger("atm.service_menu")

SEVERITY_ORDER = ("critical", "warning", "info")
LOG_LINES_KEPT = 500          # the Logs page and its export; older lines are in the system journal
LOG_LINES_SHOWN = 100
ALERT_LINES_SHOWN = 200
MAX_COUNTED_MINOR = 10**12    # a counted amount beyond this is a typing error, not cash
REMOTE_DEACTIVATORS = ("cas", "operator (unpaired)")
MAX_NOTES = 10_000            # no cassette or reject bin holds more notes: a larger count is a typo
TEST_DISPENSE_PREFIX = "svc-test-"   # request ids of the service menu's test dispenses
BUSY_STATUSES = ("open", "sending", "dispensing")
DEFAULT_NEAR_EMPTY = 10       # a cassette's low level when nothing was booked before
MAX_DENOMINATION_MAJOR = 10_000_000   # no banknote is worth more major units: a larger value is a typo


class ServiceActionError(ValueError):
    """A technician's action that cannot run; the text says what to do instead."""


class _Ring(logging.Handler):
    """The last log lines of the application, for the Logs page."""

    def __init__(self, lines: deque[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:            # a log line must never break the kiosk
            pass


def has_preview(scanner: Any) -> bool:
    """Whether the scanner can show a camera picture (it overrides CodeScanner.preview_jpeg)."""
    method = getattr(type(scanner), "preview_jpeg", None)
    return method is not None and method is not CodeScanner.preview_jpeg


def local_time(at: float | None) -> str | None:
    """A Unix time as the kiosk's local date and time, for people."""
    if at is None:
        return None
    return datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


class ServiceMenu:
    def __init__(self, kiosk: "Kiosk") -> None:
        self.kiosk = kiosk
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._ring = _Ring(self.log_lines)
        self.last_scan: str | None = None
        self.scan_test = False             # the menu started the scanner (scan test or pairing scan)
        self.pairing_mode = False          # the next code scanned here is an operator's pairing code
        self.pairing_busy = False
        self.paired_with: dict[str, Any] | None = None     # what the last pairing here put in use
        self.cassette_info: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None     # what the last action did, shown on its page
        self.note_test = False             # the accept-a-note test: every escrowed note goes back
        self.note_read: Fiat | None = None  # the value the validator read in that test
        self.test_dispense_answer: dict[str, Any] | None = None
        self._returning = False            # a test note was told to go back: its answer is ours
        self._said: str | None = None

    # -- lifecycle (the kiosk calls these from start and stop) ---------------------------

    def start(self) -> None:
        logging.getLogger("atm").addHandler(self._ring)

    def stop(self) -> None:
        logging.getLogger("atm").removeHandler(self._ring)

    # -- what the pages show -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        k = self.kiosk
        journal = k.journal
        alerts = self._alert_facts()
        return {
            "kiosk_id": k.config.kiosk_id, "state": k.state, "active": k.is_active(),
            "out_of_service_reason": k.out_of_service_reason() if k.state.startswith("out_") else None,
            "buy_paused_reason": k.buy_paused_reason(),
            "devices": self.devices(alerts),
            "cas": self.cas_link(),
            "alerts": [f"{local_time(a['at'])} {a['text']}" for a in alerts[:ALERT_LINES_SHOWN]],
            "alert_groups": self.alert_groups(alerts),
            "alerts_total": len(alerts),
            "journal": {"open": len(journal.transactions(("open", "sending"))),
                        "reconciliation": [{"id": r["id"], "summary": r["summary"]}
                                           for r in journal.reconciliation_items()]},
            "cash": self.cash(),
            "cassettes": self.cassettes(),
            "tests": {"sensors": self._sensors(), "last_scan": self.last_scan,
                      "scan_test": {"running": self.scan_test, "preview": has_preview(k.devices.scanner)},
                      "note_test": {"active": self.note_test, "read": self.note_read},
                      "test_dispense": self.test_dispense_answer,
                      "printer": k.device_health().get("printer").state.value
                      if k.device_health().get("printer") else None},
            "logs": list(self.log_lines)[-LOG_LINES_SHOWN:],
            "activation": self.activation(),
            "pairing": self.pairing(),
            "last_result": self.last_result,
        }

    def pairing(self) -> dict[str, Any]:
        """The Pairing page: the CAS link in use (url, pins, operator key), what the last
        pairing here did, and uploads still queued for servers this kiosk left."""
        cas = self.kiosk.cas
        in_use = getattr(cas, "in_use", None)
        previous = getattr(cas, "previous", None)
        return {"waiting_for_code": self.pairing_mode, "busy": self.pairing_busy,
                "paired_with": self.paired_with,
                "in_use": in_use() if in_use is not None else None,
                "settings_in_force": self.kiosk.settings() is not None,
                "previous": [p for p in previous() if p["queued_uploads"]] if previous is not None else []}

    def devices(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        k = self.kiosk
        health = k.device_health()
        rows = []
        for kind, device in k.devices.items():
            h = health.get(kind)
            try:
                info = device.info()
            except Exception as exc:        # a device that cannot say who it is still gets a row
                log.warning("%s: info() failed: %s", kind, exc)
                info = None
            state = h.state.value if h else "unknown"
            rows.append({"name": getattr(device, "name", kind), "kind": kind, "state": state,
                         "detail": h.detail if h else "", "driver": type(device).__name__,
                         "model": getattr(info, "model", "") or "", "firmware": getattr(info, "firmware", "") or "",
                         "serial": getattr(info, "serial", "") or "",
                         "last_error": self._last_error(getattr(device, "name", kind), alerts)})
        return rows

    @staticmethod
    def _last_error(device_name: str, alerts: list[dict[str, Any]]) -> str | None:
        for fact in alerts:                       # newest first
            if fact["kind"] in ("device", "fraud", "printer") and str(fact["text"]).startswith(device_name):
                return f"{local_time(fact['at'])} {fact['text']}"
        return None

    def cas_link(self) -> dict[str, Any]:
        k = self.kiosk
        status_of = getattr(k.cas, "status", None)
        raw = status_of() if status_of else {}
        settings = k.settings()
        return {"paired": bool(raw.get("paired")), "mode": raw.get("mode", "client"),
                "url": raw.get("cas_url"), "pin": raw.get("pin"), "pin_ok": raw.get("pin_ok"),
                "bundle_version": settings.version if settings else None,
                "last_contact": local_time(raw.get("last_contact")),
                "reachable": raw.get("reachable"), "queued_uploads": raw.get("queue_length", 0),
                "last_error": raw.get("last_error")}

    def _alert_facts(self) -> list[dict[str, Any]]:
        """Every alert in the journal, newest first (the journal keeps them all)."""
        out = []
        try:
            facts = list(self.kiosk.journal.facts("alert"))
        except Exception as exc:         # a broken journal: the page still opens
            log.error("alerts cannot be read from the journal: %s", exc)
            return []
        for fact in reversed(facts):
            data = fact.get("data")
            if isinstance(data, str):
                try:
                    data = json.loads(data)
                except ValueError:
                    data = {}
            data = data if isinstance(data, dict) else {}
            out.append({"at": fact.get("at"), "kind": data.get("alert", "?"), "text": str(data.get("text", "")),
                        "severity": data.get("severity", "warning")})
        return out

    @staticmethod
    def alert_groups(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Alerts grouped by severity and kind, counted, each group's newest first;
        critical before warning before info. Nothing is dropped: a group counts all."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for a in alerts:                           # newest first
            key = (a["severity"], a["kind"])
            group = groups.get(key)
            if group is None:
                groups[key] = {"severity": a["severity"], "kind": a["kind"], "count": 1,
                               "last": local_time(a["at"]), "text": a["text"], "recent": [a["text"]]}
            else:
                group["count"] += 1
                if len(group["recent"]) < 5:
                    group["recent"].append(a["text"])
        rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
        # most severe first; within a severity, the group with the newest alert first
        # (groups were made newest first, and sorted() keeps that order among equals)
        return sorted(groups.values(), key=lambda g: rank.get(g["severity"], len(rank)))

    def cash(self) -> dict[str, Any]:
        k = self.kiosk
        currency = k.config.currency
        counts = k.journal.cashbox_counts()
        total = sum(v * n for v, n in counts.items())
        return {"status": k._cashbox.value, "paper": k._paper.value,
                "notes": [{"value": Fiat(v, currency), "count": n} for v, n in sorted(counts.items())],
                "count": sum(counts.values()), "total": Fiat(total, currency), "total_minor": total,
                "collections": self.collections()}

    def collections(self) -> list[dict[str, Any]]:
        k = self.kiosk
        currency = k.config.currency
        counted = {}
        for fact in k.journal.facts("cash_counted"):
            data = json.loads(fact["data"]) if isinstance(fact["data"], str) else fact["data"]
            counted[data.get("collection_at")] = data
        out = []
        for fact in k.journal.facts("cash_collected"):
            data = json.loads(fact["data"]) if isinstance(fact["data"], str) else fact["data"]
            expected = sum(int(v) * n for v, n in data.get("counts", {}).items())
            count = counted.get(fact["at"], {})
            out.append({"at": local_time(fact["at"]), "notes": sum(data.get("counts", {}).values()),
                        "expected": Fiat(expected, currency),
                        "counted": Fiat(count["counted_minor"], currency) if count else None,
                        "difference": Fiat(count["difference_minor"], currency) if count else None})
        return out[::-1]

    def cassettes(self) -> dict[str, Any] | None:
        """The books, the dispenser's cassettes as configured, the notes a refill may book
        and the dispenses waiting for a technician's count (what the dispenser last reported
        is read in a thread by refresh(): asking it is I/O)."""
        if self.kiosk.devices.dispenser is None:
            return None
        journal = self.kiosk.journal
        configured = self._configured_cassettes()
        try:
            books = journal.cassette_books()
            reject_bin = journal.reject_bin()
            unknown = journal.unknown_dispenses()
        except Exception as exc:          # a broken journal: the page still opens and says so
            log.error("cassette books cannot be read from the journal: %s", exc)
            return {**(self.cassette_info or {}), "books": [], "books_error": str(exc)}
        rows = [{"cassette": u.id, "denomination": u.denomination, "denomination_minor": u.denomination.minor,
                 "initial": u.initial, "dispensed": u.dispensed, "rejected": u.rejected, "count": u.count,
                 "near_empty": u.near_empty, "status": u.status.value} for u in books.units]
        by_id = {u.id: u for u in books.units}
        denomination_of = {u.id: u.denomination for u in books.units}
        return {**(self.cassette_info or {}), "books": rows, "reject_bin": reject_bin,
                "mismatches": [f"{m.unit}: {m.detail}" for m in books.mismatches],
                "denomination_mismatches": [
                    {"cassette": cid, "books": by_id[cid].denomination, "configured": value}
                    for cid, value in configured.items() if cid in by_id and by_id[cid].denomination != value],
                "refill": {"currency": self.kiosk.config.currency,
                           "minor_digits": minor_digits(self.kiosk.config.currency),
                           "cassettes": [{"cassette": cid, "configured": value, "configured_minor": value.minor,
                                          "denomination_minor": by_id[cid].denomination.minor if cid in by_id
                                          else value.minor,
                                          "near_empty": by_id[cid].near_empty if cid in by_id
                                          else DEFAULT_NEAR_EMPTY} for cid, value in configured.items()],
                           "denominations": [{"minor": v.minor, "text": v} for v in self._denominations()]},
                "unknown_dispenses": [self._unknown_row(d, denomination_of) for d in unknown]}

    def _configured_cassettes(self) -> dict[str, Fiat]:
        """Cassette id -> the note value the dispenser is configured for."""
        try:
            return {c.id: c.denomination for c in self.kiosk.devices.dispenser.cassettes}
        except DeviceError as exc:
            log.warning("the dispenser's cassettes cannot be read: %s", exc)
            return {}

    def _denominations(self) -> list[Fiat]:
        """The notes of this kiosk's currency that a refill is offered: those the dispenser is
        configured for, those in the books and those the validator takes."""
        currency = self.kiosk.config.currency
        known = set(self._configured_cassettes().values())
        try:
            known |= {u.denomination for u in self.kiosk.journal.cassette_books().units}
        except Exception as exc:            # the books' own error is shown by cassettes()
            log.warning("cassette books: %s", exc)
        known |= set(getattr(self.kiosk, "_denominations", ()) or ())
        return sorted((v for v in known if isinstance(v, Fiat) and v.currency == currency), key=lambda v: v.minor)

    @staticmethod
    def _unknown_row(d: Mapping[str, Any], denomination_of: Mapping[str, Fiat]) -> dict[str, Any]:
        def per_cassette(counts: Mapping[str, int]) -> list[dict[str, Any]]:
            return [{"cassette": cid, "notes": n,
                     "value": denomination_of[cid] if cid in denomination_of else None}
                    for cid, n in sorted(counts.items()) if n]
        return {"request_id": d["request_id"], "tx_id": d["tx_id"],
                "test": d["request_id"].startswith(TEST_DISPENSE_PREFIX),
                "asked": per_cassette(d["plan"]), "cassettes": sorted(d["plan"]),
                "value": Fiat(d["value_minor"], d["currency"]),
                "known_exited": per_cassette(d["exited"]), "uncertain": per_cassette(d["uncertain"]),
                "at": local_time(d["at"])}

    async def refresh(self) -> None:
        """Read what needs device I/O, off the event loop, when the menu opens."""
        dispenser = self.kiosk.devices.dispenser
        if dispenser is None:
            return

        def plain(obj: Any) -> Any:
            return json.loads(json.dumps(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj,
                                         default=str))

        def read() -> dict[str, Any]:
            info: dict[str, Any] = {"cassettes": [plain(c) for c in dispenser.cassettes]}   # hal: a property
            try:
                info["status"] = plain(dispenser.status())
            except DeviceError as exc:          # the cassettes still show; the status says why not
                info["status_error"] = str(exc)
            return info
        try:
            self.cassette_info = await asyncio.to_thread(read)
        except DeviceError as exc:
            self.cassette_info = {"error": str(exc)}
        if self.kiosk.state == "maintenance_menu":
            await self.kiosk._fire("refresh")

    def _sensors(self) -> dict[str, bool]:
        sensors = self.kiosk.devices.sensors
        if sensors is None:
            return {}
        try:
            return dict(sensors.read())
        except DeviceError as exc:
            return {"error": True} if not str(exc) else {f"error: {exc}": True}

    def activation(self) -> dict[str, Any]:
        k = self.kiosk
        by = None
        for fact in k.journal.facts():
            if fact["kind"] in ("activated", "deactivated"):
                data = json.loads(fact["data"]) if isinstance(fact["data"], str) else fact["data"]
                by = data.get("by") if fact["kind"] == "deactivated" else None
        settings = k.settings()
        review: dict[str, Any] = {}
        if settings is not None:
            review = {"version": settings.version, "min_buy": settings.min_buy, "max_buy": settings.max_buy,
                      "fee_percent": str(settings.fee_percent),
                      "fixed_fee": settings.fixed_fee,
                      "rate_bounds": [str(b) for b in settings.rate_bounds] if settings.rate_bounds else None,
                      "max_offline_s": settings.max_offline_s,
                      "languages": list(getattr(settings, "languages", ()) or ()),
                      "technician_pin": "set" if settings.technician_pin_hash else "local file",
                      **{f"wallet_{key}": str(value) for key, value in (settings.wallet or {}).items()}}
        return {"active": k.is_active(), "deactivated_by": by,
                "needs_signature": (not k.is_active()) and by in REMOTE_DEACTIVATORS, "review": review}

    # -- actions -------------------------------------------------------------------------

    async def act(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """One technician action; {"ok": bool, "error"?: str}. Never raises for bad input."""
        do = message.get("do")
        self._said = None                  # what a successful action has to tell, in its result
        handler = {
            "exit": self._exit, "deactivate": self._deactivate, "disable_kiosk": self._deactivate,
            "activate": self._activate, "enable_kiosk": self._activate,
            "collect_cash": self._collect_cash, "print_test": self._print_test,
            "test_lights": self._test_lights, "scan_test": self._scan_test,
            "export_logs": self._export_logs, "print_logs": self._print_logs, "pair_scan": self._pair_scan,
            "refill_cassette": self._refill_cassette, "count_reject_bin": self._count_reject_bin,
            "resolve_dispense": self._resolve_dispense,
            "test_dispense": self._test_dispense, "note_test": self._note_test,
        }.get(do if isinstance(do, str) else "")
        if handler is None:
            return {"ok": False, "error": f"unknown service action {do!r}"}
        try:
            await handler(message)
        except ServiceActionError as exc:
            self.last_result = {"do": do, "ok": False, "text": str(exc)}
            await self.kiosk._fire("refresh")
            return {"ok": False, "error": str(exc)}
        self.last_result = {"do": do, "ok": True, "text": self._said}
        self._said = None
        if self.kiosk.state.startswith("maintenance_menu"):
            await self.kiosk._fire("refresh")
        return {"ok": True}

    async def _exit(self, _m: Mapping[str, Any]) -> None:
        await self.kiosk._fire("service_exit")   # leaving stops the scan and note tests (left())

    async def _deactivate(self, _m: Mapping[str, Any]) -> None:
        # fail safe: a technician may always take the kiosk out of service
        self.kiosk._set_active(False, by="technician")

    async def _activate(self, _m: Mapping[str, Any]) -> None:
        state = self.activation()
        if state["needs_signature"]:
            raise ServiceActionError("the operator deactivated this kiosk remotely: only a command signed by the "
                                     "operator can reactivate it (ask the operator to send 'activate')")
        if self.kiosk.settings() is None:
            raise ServiceActionError("no signed configuration is in force: pair the kiosk or wait for the "
                                     "operator's bundle before putting it back in service")
        self.kiosk._set_active(True, by="technician")

    async def _collect_cash(self, m: Mapping[str, Any]) -> None:
        counted = m.get("counted_minor")
        if isinstance(counted, str) and counted.strip().isdigit():
            counted = int(counted.strip())
        if isinstance(counted, bool) or not isinstance(counted, int) or not 0 <= counted <= MAX_COUNTED_MINOR:
            raise ServiceActionError("enter the amount you counted, in minor units (cents), as a whole number")
        k = self.kiosk
        period_start = k.journal.last_collection_at()
        counts = k.journal.collect_cash()
        collected_at = k.journal.last_collection_at()
        expected = sum(v * n for v, n in counts.items())
        difference = counted - expected
        # journaled with the collection it belongs to, before anything is printed
        k.journal.record_fact("cash_counted", None, collection_at=collected_at, counted_minor=counted,
                              expected_minor=expected, difference_minor=difference)
        currency = k.config.currency
        k.alert("cash_collected", f"cash collected: {sum(counts.values())} notes, {Fiat(expected, currency)} "
                f"expected, {Fiat(counted, currency)} counted, difference {Fiat(difference, currency)}",
                "warning" if difference else "info")
        receipt = self._collection_receipt(counts, period_start, counted)
        k._spawn(k._print(receipt), "print-collection")

    def _collection_receipt(self, counts: dict[int, int], period_start: float | None, counted: int) -> Receipt:
        k = self.kiosk
        config = k.config
        now = datetime.now(timezone.utc)
        start = datetime.fromtimestamp(period_start, timezone.utc) if period_start else now
        return receipts.cash_collection_receipt(
            operator=receipts.OperatorInfo(config.operator_name, config.operator_contact),
            kiosk_id=config.kiosk_id, collection_id=f"collect-{now.strftime('%Y%m%d%H%M%S')}", when=now,
            cashbox_id="cashbox-1", technician="service menu", period_start=start, period_end=now,
            counts={Fiat(v, config.currency): n for v, n in counts.items()}, currency=config.currency,
            language=config.language, counted=Fiat(counted, config.currency))

    async def _print_test(self, _m: Mapping[str, Any]) -> None:
        k = self.kiosk
        title = texts.text(k.config.language, "receipt.print_test_title")
        receipt = Receipt((TextLine(title, align="center", bold=True), TextLine(k.config.kiosk_id),
                           TextLine(datetime.now().astimezone().isoformat(timespec="seconds"))))
        if k.devices.printer is None:
            raise ServiceActionError("this kiosk has no receipt printer configured")
        if not await k._print(receipt):
            raise ServiceActionError("the printer did not print: see the Alerts page for its error")

    async def _test_lights(self, _m: Mapping[str, Any]) -> None:
        indicators = self.kiosk.devices.indicators
        if indicators is None:
            raise ServiceActionError("this kiosk has no indicator lights configured")
        try:
            for light in Light:
                indicators.set_light(light, "blink")
        except DeviceError as exc:
            raise ServiceActionError(f"lights: {exc}") from None

    async def _scan_test(self, m: Mapping[str, Any]) -> None:
        scanner = self.kiosk.devices.scanner
        if m.get("stop"):
            self._stop_scanning()
            return
        try:
            await asyncio.to_thread(scanner.start_scanning)
        except DeviceError as exc:
            raise ServiceActionError(f"scanner: {exc}") from None
        self.scan_test = True

    def _stop_scanning(self) -> None:
        self.scan_test = False             # first: no camera picture is served from here on
        try:
            self.kiosk.devices.scanner.stop_scanning()
        except DeviceError as exc:
            log.warning("stopping the scan test: %s", exc)

    async def left(self) -> None:
        """The kiosk left the menu, by the exit button or any other way (its timer, a
        journal failure): a scan the menu started must not go on scanning for a buy, nor
        a note test leave the validator taking notes on the idle screen."""
        if self.scan_test:
            self._stop_scanning()
        self.pairing_mode = False
        await self._end_note_test()
        self._returning = False                # a note on its way back after this is the buy path's

    async def camera_preview(self) -> bytes:
        """The camera's picture as JPEG, for the scan test's preview, and only while the
        menu is open and its scan runs: behind the service switch and the PIN, so the
        customer screen, which is served by the same page, never gets a camera frame.
        Raises PreviewRefused with the reason otherwise."""
        if self.kiosk.state != "maintenance_menu":
            raise PreviewRefused(404, "no camera picture: the service menu is not open")
        if not self.scan_test:
            raise PreviewRefused(409, "no camera picture: the scan test is not running")
        scanner = self.kiosk.devices.scanner
        if not has_preview(scanner):
            raise PreviewRefused(404, f"no camera picture: {type(scanner).__name__} has no camera")
        jpeg = await asyncio.to_thread(scanner.preview_jpeg)      # encoding takes milliseconds
        if self.kiosk.state != "maintenance_menu" or not self.scan_test:
            raise PreviewRefused(409, "no camera picture: the scan test stopped")
        if not jpeg:
            raise PreviewRefused(503, "no camera picture yet: the camera has given no frame (see the Status page)")
        return jpeg

    def scanned(self, text: str) -> None:
        """A code read while the service menu is open: shown, never acted on, except an
        operator's pairing code the technician asked to pair with."""
        if self.pairing_mode and text.startswith(PAIRING_PREFIX) and not self.pairing_busy:
            self.pairing_mode = False
            self.pairing_busy = True
            self.paired_with = None
            self.last_scan = PAIRING_PREFIX + "…"          # the one-time token is not for the screen
            self.kiosk._spawn(self._pair(text), "service-pairing")
            return
        self.last_scan = text[:200]

    async def _pair_scan(self, _m: Mapping[str, Any]) -> None:
        self._no_transaction_open("pair")
        self.pairing_mode = True
        await self._scan_test({})

    def _open_work(self) -> str | None:
        try:
            self._no_transaction_open("pair")
        except ServiceActionError as exc:
            return str(exc)
        return None

    async def _pair(self, code: str) -> None:
        """Pair by the operator's code and put the new CAS in use in the running kiosk
        (atm.cas.link.CasLink.pair_and_switch): the CAS pin is checked inside the TLS
        handshake before the token leaves; nothing switches while a transaction or a
        dispense is open; a pairing that fails leaves the old link running."""
        k = self.kiosk
        switch = getattr(k.cas, "pair_and_switch", None)
        try:
            if switch is None:
                raise ServiceActionError("this kiosk's server link cannot be switched while it runs")
            refused = self._open_work()       # before the one-time token is spent
            if refused:
                raise ServiceActionError(refused)
            report = await switch(code, self._open_work)
        except Exception as exc:      # whatever failed, the technician reads it on the page
            if not isinstance(exc, (CasError, OSError, ValueError)):
                log.error("pairing from the service menu failed: %s", type(exc).__name__)
            in_use = (getattr(k.cas, "in_use", lambda: None)() or {}).get("cas_url")
            self.last_result = {"do": "pair_scan", "ok": False, "text": str(exc)}
            k.alert("pairing", f"service menu: pairing failed: {exc}; server link in use: {in_use or 'none'}",
                    "warning")
        else:
            result = report.pairing
            self.last_result = {"do": "pair_scan", "ok": True, "text": None}
            self.paired_with = {"kiosk_id": result.kiosk_id, "cas_url": result.cas_url, "cas_pin": result.cas_pin,
                                "operator_key_id": result.operator_key_id, "same_operator": report.same_operator,
                                "carried_uploads": report.carried, "left_behind": report.left_behind,
                                "previous_url": report.previous_url}
            k.pricing.recheck()       # a quote held under the previous settings must pass the ones in force
            left = (f"; {report.left_behind} uploads queued for the previous server {report.previous_url} are "
                    f"kept in {report.archive}") if report.left_behind else ""
            settings = ("" if k.settings() is not None else
                        "; buying is paused until the new operator's signed configuration arrives")
            k.alert("pairing", f"service menu: paired with {result.cas_url} (pin {result.cas_pin}, operator key "
                    f"{result.operator_key_id}); the kiosk now uses it{settings}{left}", "warning")
        finally:
            self.pairing_busy = False
            self._stop_scanning()
            if k.state == "maintenance_menu":
                await k._fire("refresh")

    async def _export_logs(self, m: Mapping[str, Any]) -> None:
        folder = m.get("path")
        if not isinstance(folder, str) or not folder.startswith("/") or ".." in Path(folder).parts:
            raise ServiceActionError("give the USB stick's folder as an absolute path, e.g. /media/usb")
        target = Path(folder)
        if not target.is_dir():
            raise ServiceActionError(f"{folder} is not a folder: is the USB stick plugged in and mounted?")
        name = target / f"atm-{self.kiosk.config.kiosk_id}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log"
        lines = list(self.log_lines)

        def write() -> None:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
                out.flush()
                os.fsync(out.fileno())
        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise ServiceActionError(f"could not write {name}: {exc.strerror or exc}") from None
        self.kiosk.alert("logs_exported", f"service menu: log exported to {name}", "info")

    async def _print_logs(self, _m: Mapping[str, Any]) -> None:
        k = self.kiosk
        if k.devices.printer is None:
            raise ServiceActionError("this kiosk has no receipt printer configured")
        lines = list(self.log_lines)[-40:]
        receipt = Receipt((TextLine(texts.text(k.config.language, "receipt.log_title", kiosk_id=k.config.kiosk_id),
                                    bold=True),
                           *(TextLine(line[:200]) for line in lines)))
        if not await k._print(receipt):
            raise ServiceActionError("the printer did not print: see the Alerts page for its error")

    # -- cassettes: refill and reject bin ------------------------------------------------

    @staticmethod
    def _notes(value: Any, what: str) -> int:
        """A count of notes typed on the keypad: a whole number 0..MAX_NOTES, or refused."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NOTES:
            raise ServiceActionError(f"enter {what} as a whole number of notes from 0 to {MAX_NOTES}")
        return value

    def _cassette(self, m: Mapping[str, Any]) -> Any:
        dispenser = self.kiosk.devices.dispenser
        if dispenser is None:
            raise ServiceActionError("this kiosk has no cash dispenser configured")
        wanted = m.get("cassette")
        known = {c.id: c for c in dispenser.cassettes}
        if not isinstance(wanted, str) or wanted not in known:
            raise ServiceActionError(f"choose a cassette of the dispenser ({', '.join(known) or 'none'})")
        return known[wanted]

    def _no_transaction_open(self, what: str) -> None:
        k = self.kiosk
        if k.tx_id is not None or k.journal.transactions(BUSY_STATUSES) or k.journal.open_dispenses():
            raise ServiceActionError(f"a transaction or a dispense is still open: {what} once it has ended "
                                     "(see the Status page)")

    def _denomination(self, value: Any, cassette: Any) -> Fiat:
        """The note value of a refill: minor units typed or chosen on the page, in the
        kiosk's currency; no value: what the books had for this cassette, else what the
        dispenser is configured for."""
        currency = self.kiosk.config.currency
        if value is None or value == "":
            previous = next((l for l in self.kiosk.journal.cassette_loads() if l["cassette"] == cassette.id), None)
            return Fiat(previous["denomination_minor"], previous["currency"]) if previous else cassette.denomination
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
            value = int(value.strip())
        one = 10 ** minor_digits(currency)
        example = Fiat(20 * one, currency)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ServiceActionError(f"enter the note value as a whole number of minor units of {currency} "
                                     f"(e.g. {example.minor} for {example})")
        if value < one or value > MAX_DENOMINATION_MAJOR * one:
            # 20 typed for a 20 note would book it at a hundredth of its value: refuse, say why
            raise ServiceActionError(f"{value} minor units is no note of {currency}: enter the note value in "
                                     f"minor units, e.g. {example.minor} for {example}")
        return Fiat(value, currency)

    async def _refill_cassette(self, m: Mapping[str, Any]) -> None:
        """Book a refill: the notes loaded, their value and the level at which the cassette
        counts as low. A value other than the one the dispenser is configured for is booked
        (the technician has the notes in hand) but shown as a mismatch and alerted: the
        configuration or the cassette is wrong, and the operator must know which."""
        cassette = self._cassette(m)
        count = self._notes(m.get("count"), "the notes you loaded")
        denomination = self._denomination(m.get("denomination"), cassette)
        near = m.get("near_empty")
        if near is None or near == "":
            previous = next((l for l in self.kiosk.journal.cassette_loads() if l["cassette"] == cassette.id), None)
            near_empty = previous["near_empty"] if previous else DEFAULT_NEAR_EMPTY
        else:
            near_empty = self._notes(near, "the low level (notes left when the cassette counts as low)")
        self._no_transaction_open("refill")
        self.kiosk.journal.load_cassette(cassette.id, denomination, count, near_empty=near_empty,
                                         by="service menu")
        self.kiosk.alert("cassette_loaded", f"service menu: cassette {cassette.id} loaded with {count} notes of "
                         f"{denomination}, low at {near_empty}", "info")
        if denomination != cassette.denomination:
            self.kiosk.alert("cassette_denomination", f"service menu: cassette {cassette.id} booked with notes of "
                             f"{denomination}, but the dispenser is configured for {cassette.denomination}: fix the "
                             "cassette or the configuration before selling", "critical")
        self._said = f"{cassette.id}: {count} x {denomination}"

    async def _resolve_dispense(self, m: Mapping[str, Any]) -> None:
        """Book what a dispense of unknown outcome really paid out, as the technician counted
        it, through the journal call `atm cassettes resolve` uses: only an unknown outcome is
        booked, once; what the sale still owes becomes collectable with its redeem code."""
        k = self.kiosk
        request_id = m.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise ServiceActionError("choose a dispense of unknown outcome from the list on the Cassettes page")
        counts = {}
        for what, key in (("paid out", "exited"), ("rejected", "rejected")):
            given = m.get(key) if m.get(key) is not None else {}
            if not isinstance(given, Mapping):
                raise ServiceActionError(f"enter the notes {what} per cassette of dispense {request_id}")
            counts[key] = {str(cid): self._notes(n, f"the notes {what} from cassette {cid}")
                           for cid, n in given.items() if not (key == "rejected" and n in (None, ""))}
        asked = next((d for d in k.journal.unknown_dispenses() if d["request_id"] == request_id), None)
        if asked is not None:
            missing = [cid for cid in sorted(asked["plan"]) if cid not in counts["exited"]]
            if missing:
                raise ServiceActionError(f"dispense {request_id}: enter the notes paid out from cassette "
                                         f"{', '.join(missing)} (0 if none left it)")
        if k.tx_id is not None or k.journal.open_dispenses():
            raise ServiceActionError("a transaction or a dispense is still open: count once it has ended "
                                     "(see the Status page)")
        try:
            resolved = k.journal.resolve_dispense(request_id, counts["exited"], counts["rejected"],
                                                  by="service menu")
        except JournalError as exc:
            raise ServiceActionError(str(exc)) from None
        sale = "" if resolved["status"] is None else (
            f"; sale {resolved['tx_id']} is {resolved['status']}, "
            f"{Fiat(resolved['owed_minor'], k.config.currency)} still owed")
        k.alert("dispense_resolved", f"service menu: dispense {request_id} booked as counted: paid out "
                f"{counts['exited']}, rejected {counts['rejected']}{sale}", "warning")
        self._said = request_id

    async def _count_reject_bin(self, m: Mapping[str, Any]) -> None:
        counted = self._notes(m.get("counted"), "the notes you counted in the reject bin")
        expected = self.kiosk.journal.count_reject_bin(counted, by="service menu")
        if counted != expected:
            self.kiosk.alert("reject_bin", f"service menu: reject bin counted {counted} notes, the books expected "
                             f"{expected}", "warning")
        self._said = f"{counted} / {expected}"

    # -- tests: test dispense ------------------------------------------------------------

    async def _test_dispense(self, m: Mapping[str, Any]) -> None:
        """One note (or the device's test count) from a cassette into the reject tray.
        Journaled as a dispense intent of its own before the command, so that the notes it
        moves are booked out of the cassette and into the reject bin by the answer, and a
        crash in between is reconciled like any dispense (asked, never repeated)."""
        cassette = self._cassette(m)
        dispenser = self.kiosk.devices.dispenser
        if type(dispenser).test_dispense is CashDispenser.test_dispense:
            raise ServiceActionError(f"{type(dispenser).__name__} has no test dispense")
        self._no_transaction_open("test the dispenser")
        k = self.kiosk
        request_id = f"{TEST_DISPENSE_PREFIX}{uuid.uuid4().hex[:12]}"
        k.journal.record_fact("service_test_dispense", None, request_id=request_id, cassette=cassette.id)
        k.journal.dispense_intended(f"service-{request_id}", request_id, getattr(dispenser, "name", "dispenser"),
                                    {cassette.id: 1}, Fiat.zero(k.config.currency))
        self.test_dispense_answer = {"request_id": request_id, "cassette": cassette.id, "done": False}
        try:
            await asyncio.to_thread(dispenser.test_dispense, request_id, cassette.id)
        except (DeviceError, ValueError) as exc:
            # the driver may or may not have sent it: booked as unknown for the reject-bin count
            books = k.journal.cassette_books()
            k.journal.dispense_outcome(request_id, "hardwareError", {}, {}, Fiat.zero(k.config.currency),
                                       outcome="unknown", uncertain={cassette.id: 1},
                                       uncertain_value=books.value({cassette.id: 1}) if books.units else None)
            k.journal.record_fact("service_test_dispense_answer", None, request_id=request_id, error=str(exc))
            self.test_dispense_answer = {**self.test_dispense_answer, "done": True, "error": str(exc)}
            raise ServiceActionError(f"test dispense: {exc}") from None
        self._said = request_id

    @staticmethod
    def owns_dispense(request_id: str) -> bool:
        return request_id.startswith(TEST_DISPENSE_PREFIX)

    async def test_dispensed(self, event: Any) -> None:
        """The dispenser's answer to a test dispense: booked (rejected notes to the reject
        bin), journaled as a fact, shown on the Tests page."""
        k = self.kiosk
        exited = {c: n for c, n in event.exited.items() if n}
        rejected = {c: n for c, n in event.rejected.items() if n}
        if any(d["request_id"] == event.request_id for d in k.journal.open_dispenses()):
            books = k.journal.cassette_books()
            k.journal.dispense_outcome(event.request_id, event.completion.value, exited, rejected,
                                       books.value(exited) if exited else Fiat.zero(k.config.currency),
                                       outcome=event.outcome, uncertain=dict(event.uncertain),
                                       uncertain_value=books.value(dict(event.uncertain)) if event.uncertain
                                       else None)
        k.journal.record_fact("service_test_dispense_answer", None, request_id=event.request_id,
                              completion=event.completion.value, exited=exited, rejected=rejected)
        if exited:       # a test must never pay out: the technician checks the exit slot
            k.alert("test_dispense", f"test dispense {event.request_id}: {exited} reported as exited, not "
                    "rejected: check the exit slot", "critical")
        self.test_dispense_answer = {**(self.test_dispense_answer or {}), "request_id": event.request_id,
                                     "done": True, "completion": event.completion.value,
                                     "exited": exited, "rejected": rejected}
        if k.state == "maintenance_menu":
            await k._fire("refresh")

    # -- tests: accept a note ------------------------------------------------------------

    async def _note_test(self, m: Mapping[str, Any]) -> None:
        validator = self.kiosk.devices.validator
        if validator is None:
            raise ServiceActionError("this kiosk has no bill validator configured")
        if m.get("stop"):
            await self._end_note_test()
            return
        self.note_read = None
        self.note_test = True          # set before enabling: no note may reach a buy path
        try:
            await asyncio.to_thread(validator.enable)
        except DeviceError as exc:
            self.note_test = False
            raise ServiceActionError(f"validator: {exc}") from None

    async def _end_note_test(self) -> None:
        if not self.note_test:
            return
        self.note_test = False         # a note still on its way back is still ours (_returning)
        try:
            await asyncio.to_thread(self.kiosk.devices.validator.disable)
        except DeviceError as exc:
            log.warning("ending the note test: %s", exc)

    def testing_notes(self) -> bool:
        return (self.note_test or self._returning) and self.kiosk.state == "maintenance_menu"

    async def note_escrowed(self, event: Any) -> None:
        """A note in escrow during the note test: always returned, never stacked, never
        credited; the value read is shown and journaled as a test, not as money."""
        k = self.kiosk
        self.note_read = event.value
        k.journal.record_fact("service_note_test", None, value_minor=event.value.minor,
                              currency=event.value.currency, device=event.device)
        self._returning = True
        try:
            await asyncio.to_thread(k.devices.validator.return_note)
        except DeviceError as exc:
            self._returning = False
            k.alert("note_test", f"note test: the validator did not return the note: {exc}", "critical")
            await self._end_note_test()
        await k._fire("refresh")

    async def note_settled(self, event: Any) -> None:
        """The test note came back (or was refused): shown, nothing to book."""
        if getattr(event, "value", None) is not None and self.note_read is None:
            self.note_read = event.value
        self._returning = False
        await self._end_note_test()
        await self.kiosk._fire("refresh")
