"""CasClient: the kiosk's side of the CAS link (protocol 1, docs/cas-protocol.md).

It polls the pinned CAS, takes settings only from operator-signed bundles, obeys
remote commands by the rules in atm.cas.commands, sends coins idempotently, checks
sell addresses against the signed xpub, and uploads transactions and events from a
durable outbox. Every refusal is logged, kept in status() and queued as an alert.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from atm.cas.alerts import make_alert, plain_detail
from atm.cas.bundle import BundleError, ConfigBundle, verify_bundle
from atm.cas.commands import decide
from atm.cas.errors import (AddressRefused, AnswerMalformed, AnswerTimeout, NotConfigured, PinMismatch,
                            RateRefused, RecordRefused, crash_site, plain_text)
from atm.cas.interface import (CasError, CasRefused, CasUnavailable, KioskSettings, PaymentRefused, Quote,
                               SellPayment, SendResult)
from atm.cas.payment_proof import PaymentProofError
from atm.cas.sell import AcceptedInvoice, invoice_expiry, judge_payment
from atm.cas.signing import DocumentError, key_id, parse_public_key, strict_json
from atm.cas.state import (BUNDLE_FILE, CERT_FILE, DB_FILE, KEY_FILE, PAIRING_FILE, PairingRecord, Store,
                           atomic_write, load_pairing, save_pairing)
from atm.cas.transport import CasTransport
from atm.cas.wallet import WalletError, address_derives_from_xpub
from atm.cas.wire import (PROTOCOL_VERSION, InvoiceStatus, PollAnswer, SellInvoice, parse_config_answer,
                          parse_invoice_status, parse_poll, parse_send, parse_sell_invoice, parse_upload_ack)
from hal.money import Fiat, Sats

log = logging.getLogger("atm.cas")

TX = "tx"
EVENT = "event"
ALERT = "alert"
EVENT_KINDS = ("alert", "fault", "door", "cash_counts", "info")
# What the client itself refused -> the alert kind the operator sees.
_REFUSAL_ALERTS = {"pin": "pin_mismatch", "bundle": "bundle_refused", "command": "command_refused",
                   "rate": "rate_refused", "sell-address": "address_refused", "sell-invoice": "address_refused",
                   "answer": "cas_misbehaving", "sell-payment": "payment_refused"}
_CRITICAL_REASONS = ("pin-mismatch", "unsigned", "bad-signature", "old-version", "other-kiosk", "foreign-address",
                     "wrong-amount",
                     # sell payment evidence that proves nothing it claims (atm.cas.payment_proof reasons)
                     "no_transaction", "bad_transaction", "wrong_address", "bad_merkle", "bad_chain",
                     "insufficient_work", "bad_header", "stale_checkpoint", "bad_amount", "bad_address")
# CAS invoice states that claim money arrived: used only to refuse a claim without evidence.
_CLAIMED_STATES = ("seen", "confirmed", "underpaid", "overpaid", "late")
# Identical refusals within this window are logged but not stored or alerted again,
# so a hostile server repeating itself cannot flood the journal or the CAS.
REFUSAL_REPEAT_S = 60.0


class CasClient:
    """Implements atm.cas.interface.CasService against a paired CAS.

    Build it with CasClient.from_state(state_dir); then `await start()` runs the poll
    and upload tasks until `await stop()`."""

    def __init__(self, state_dir: Path, record: PairingRecord, *, poll_interval_s: float = 5.0,
                 timeout_s: float = 10.0, upload_batch: int = 200, backoff_base_s: float = 0.5,
                 backoff_cap_s: float = 60.0, rate_max_age_s: float = 120.0,
                 max_answer_bytes: int | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self._record = record
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.upload_batch = upload_batch
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.rate_max_age_s = rate_max_age_s
        self._max_answer_bytes = max_answer_bytes
        self._rng = rng or random.Random()
        # The kiosk's own wall clock for sell invoices (expiry, first sighting of a
        # payment); tests move it instead of waiting.
        self.clock = clock
        self._store = Store(self.state_dir / DB_FILE)
        self._transport: CasTransport | None = None
        self._bundle: ConfigBundle | None = None
        self._rates: dict[str, Decimal] = {}
        self._rates_at = 0.0
        self._refused_rates: dict[str, str] = {}   # currency -> why its last rate was refused
        self._texts: dict[str, str] = {}
        self._pin_state = "unknown"
        self._last_error = ""
        self._recent_refusals: dict[tuple[str, str], float] = {}
        self._pending_acks: list[dict[str, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._work = asyncio.Event()      # something new to upload
        self._contact = asyncio.Event()   # the CAS answered a poll: end any upload backoff early
        self._stopping = False
        self.paired = True
        self.on_command: Callable[[str, dict], Awaitable[None]] | None = None
        self.on_settings: Callable[[KioskSettings], None] | None = None
        self._load_bundle()

    # ---- construction and lifecycle -------------------------------------------------

    @classmethod
    def from_state(cls, state_dir: Path, **options: Any) -> "CasClient":
        """A client for the kiosk paired in state_dir; NotPaired (with what to do) if it is not."""
        state_dir = Path(state_dir)
        return cls(state_dir, load_pairing(state_dir), **options)

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._tasks = [asyncio.create_task(self._poll_loop(), name="cas-poll"),
                       asyncio.create_task(self._upload_loop(), name="cas-upload")]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        self._store.close()

    @property
    def kiosk_id(self) -> str:
        return self._record.kiosk_id

    @property
    def record(self) -> PairingRecord:
        """The pairing in use (trust anchors as rotated by signed bundles since)."""
        return self._record

    def _get_transport(self) -> CasTransport:
        if self._transport is None:
            options: dict[str, Any] = {}
            if self._max_answer_bytes is not None:
                options["max_answer_bytes"] = self._max_answer_bytes
            self._transport = CasTransport(self._record.cas_url, self._record.cas_pins,
                                           cert_path=self.state_dir / CERT_FILE, key_path=self.state_dir / KEY_FILE,
                                           kiosk_id=self.kiosk_id, timeout_s=self.timeout_s, **options)
        return self._transport

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        """Every request goes through here, so contact time, pin state and refusals stay true."""
        if not self.paired:
            raise CasRefused("this kiosk was unpaired by a signed operator command; pair it again")
        try:
            answer = await self._get_transport().request(method, path, body)
        except PinMismatch as exc:
            self._pin_state = "mismatch"
            self._last_error = str(exc)
            self._refuse("pin", "pin-mismatch", str(exc))
            raise
        except AnswerMalformed as exc:
            self._pin_state = "ok"
            self._last_error = str(exc)
            self._refuse("answer", "malformed", str(exc))
            raise
        except AnswerTimeout as exc:
            # Connected (the pin was checked in the handshake) but no answer in time:
            # a stalling server is refused and reported like any other misbehaviour.
            self._pin_state = "ok" if self._get_transport().last_pin_ok else self._pin_state
            self._last_error = str(exc)
            self._refuse("answer", "slow", str(exc))
            raise
        except CasUnavailable as exc:
            self._last_error = str(exc)
            if self._get_transport().last_pin_ok:
                self._pin_state = "ok"
            raise
        except CasRefused as exc:
            # The pinned server answered: it is reachable, it just said no.
            self._pin_state = "ok"
            self._mark_contact()
            self._last_error = str(exc)
            raise
        self._pin_state = "ok"
        return answer

    def _parse(self, parser: Callable[..., Any], raw: Any, *args: Any) -> Any:
        """Parse an answer; only a well-formed answer counts as contact with the CAS, so a
        server that answers junk cannot keep the kiosk starting buys it cannot finish."""
        try:
            value = parser(raw, *args)
        except AnswerMalformed as exc:
            self._last_error = str(exc)
            self._refuse("answer", "malformed", str(exc))
            raise
        self._last_error = ""
        self._mark_contact()
        return value

    def _mark_contact(self) -> None:
        self._store.put("last_contact", repr(time.time()))

    # ---- refusals, alerts and events -----------------------------------------------

    def _refuse(self, what: str, reason: str, detail: str) -> None:
        detail = plain_text(detail)
        log.warning("CAS %s refused (%s): %s", what, reason, detail)
        now = time.monotonic()
        last = self._recent_refusals.get((what, reason))
        if last is not None and now - last < REFUSAL_REPEAT_S:
            return
        self._recent_refusals[(what, reason)] = now
        self._store.log_refusal(what, reason, detail)
        self._enqueue_alert(_REFUSAL_ALERTS.get(what, "cas_misbehaving"),
                            "critical" if reason in _CRITICAL_REASONS else "warning",
                            {"what": what, "reason": reason, "detail": detail})

    def _enqueue_event(self, kind: str, detail: Mapping[str, Any]) -> str:
        event_id = str(uuid.uuid4())
        self._store.enqueue(EVENT, event_id, 1, {"id": event_id, "kind": kind, "at": int(time.time()),
                                                 "detail": plain_detail(detail)})
        self._work.set()
        return event_id

    def _enqueue_alert(self, kind: str, severity: str, detail: Mapping[str, Any]) -> str:
        alert = make_alert(kind, detail, severity)
        self._store.enqueue(ALERT, alert["id"], 1, alert)
        self._work.set()
        return alert["id"]

    async def report_alert(self, kind: str, detail: Mapping[str, Any] | None = None,
                           severity: str = "warning") -> str:
        """Queue an alert for the operator (door, tamper, fraud attempt, wrong PIN, cashbox
        full, paper out, parked note, ...): durable in the outbox when this returns,
        uploaded to POST /v1/alerts keyed by the returned id, so a restart or an outage
        loses nothing and a repeated upload stores it once. ValueError for a kind that is
        not a short lower-case token or a severity not in atm.cas.alerts.SEVERITIES."""
        alert_id = self._enqueue_alert(kind, severity, detail or {})
        log.warning("alert %s (%s) queued for the operator", kind, severity)
        return alert_id

    async def report_event(self, kind: str, detail: Mapping[str, Any]) -> str:
        """Journal a device fault, door, cash count or info event for upload; returns its id.
        Kind "alert" goes to the alert queue (see report_alert)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r}: expected one of {EVENT_KINDS}")
        if kind == ALERT:
            return await self.report_alert(ALERT, detail)
        return self._enqueue_event(kind, detail)

    # ---- configuration bundles ------------------------------------------------------

    def _load_bundle(self) -> None:
        path = self.state_dir / BUNDLE_FILE
        if not path.exists():
            return
        try:
            saved = strict_json(path.read_bytes(), str(path))
            signer = parse_public_key(saved["signer"], f"{path} signer")
            bundle = verify_bundle(saved["document"], signer, kiosk_id=self.kiosk_id, current_version=None)
            # The signer must be the trusted operator key, or the bundle must be the
            # one that rotated to the trusted key (signed by the previous key).
            if saved["signer"] != self._record.operator_key and bundle.operator_key != self._record.operator_key:
                raise BundleError(f"{path}: signed by a key that is not the trusted operator key", "bad-signature")
        except (DocumentError, KeyError, TypeError, OSError) as exc:
            reason = getattr(exc, "reason", "malformed")
            self._refuse("bundle", reason, f"stored bundle {path} not used: {exc}")
            return
        self._bundle = bundle

    def bundle(self) -> ConfigBundle | None:
        return self._bundle

    def settings(self) -> KioskSettings | None:
        """Settings from the operator-signed bundle in force; None until one is accepted."""
        return None if self._bundle is None else self._bundle.kiosk_settings()

    def _accept_bundle(self, doc: Any) -> bool:
        current = self._bundle.version if self._bundle is not None else self._stored_version_floor()
        try:
            bundle = verify_bundle(doc, parse_public_key(self._record.operator_key), kiosk_id=self.kiosk_id,
                                   current_version=current)
        except BundleError as exc:
            self._refuse("bundle", exc.reason, str(exc))
            return False
        except Exception as exc:  # a parser gap must end in a refusal, never a dead poll
            log.error("CAS bundle could not be judged (%s)", crash_site(exc))
            self._refuse("bundle", "malformed", f"bundle could not be judged ({type(exc).__name__})")
            return False
        atomic_write(self.state_dir / BUNDLE_FILE, json.dumps(
            {"document": doc, "signer": self._record.operator_key}, sort_keys=True).encode("utf-8"))
        self._store.put("bundle_version_floor", str(bundle.version))
        if bundle.cas_pins is not None or bundle.operator_key is not None:
            self._record = PairingRecord(
                kiosk_id=self._record.kiosk_id, cas_url=self._record.cas_url,
                cas_pins=bundle.cas_pins or self._record.cas_pins,
                operator_key=bundle.operator_key or self._record.operator_key,
                paired_at=self._record.paired_at, kiosk_cert_pin=self._record.kiosk_cert_pin)
            save_pairing(self.state_dir, self._record)
            if bundle.cas_pins is not None and self._transport is not None:
                old, self._transport = self._transport, None
                asyncio.get_running_loop().create_task(old.close())
        self._bundle = bundle
        log.info("CAS configuration version %d accepted (operator key %s)", bundle.version,
                 key_id(parse_public_key(self._record.operator_key)))
        # New bounds judge the rate already held: a narrowed range ends it now, not at
        # the next poll (the kiosk re-checks its own quote through on_settings).
        self._judge_rates()
        if self.on_settings is not None:
            try:
                self.on_settings(bundle.kiosk_settings())
            except Exception as exc:
                log.error("kiosk failed to take CAS configuration version %d (%s)", bundle.version, crash_site(exc))
        return True

    def _stored_version_floor(self) -> int | None:
        # Survives a deleted or corrupted bundle.json, so removing the file cannot
        # reopen the door to an older bundle.
        floor = self._store.get("bundle_version_floor")
        return int(floor) if floor is not None else None

    # ---- polling --------------------------------------------------------------------

    async def poll_once(self) -> PollAnswer:
        """One poll: rates, configuration version, commands. Raises CasError subclasses."""
        body = {"protocol": PROTOCOL_VERSION, "config_version": self._bundle.version if self._bundle else None,
                "ack_commands": list(self._pending_acks), "outbox": self._store.queue_length(),
                "remote_state": self._store.get("remote_state", "active")}
        try:
            answer = self._parse(parse_poll, await self._request("POST", "/v1/poll", body))
        except AnswerMalformed:
            # A server answering junk gives no price: the rates it gave before end too.
            self._rates, self._refused_rates = {}, {}
            raise
        self._contact.set()
        self._pending_acks = [ack for ack in self._pending_acks if ack not in body["ack_commands"]]
        self._rates, self._rates_at, self._texts = dict(answer.rates), time.monotonic(), dict(answer.texts)
        self._refused_rates = {}
        for currency, why in answer.refused_rates.items():
            self._refused_rates[currency] = f"the CAS's {currency} rate was refused: {plain_text(why, 200)}"
            self._refuse("rate", "rate-malformed", why)
        self._judge_rates()
        for doc in answer.commands:
            # Each command on its own: one that cannot be judged is refused and
            # acknowledged, and never stops the others or the bundle check below.
            try:
                await self._handle_command(doc)
            except Exception as exc:
                log.error("CAS remote command could not be judged (%s)", crash_site(exc))
                self._command_failed(doc, exc)
        current = self._bundle.version if self._bundle else None
        if answer.config_version is not None and answer.config_version != current and answer.config_version > 0:
            await self.fetch_config()
        self._work.set()
        return answer

    async def fetch_config(self) -> bool:
        """Fetch the CAS's bundle and accept it if it is valid and newer; True if accepted."""
        doc = self._parse(parse_config_answer, await self._request("GET", "/v1/config"))
        if doc is None:
            return False
        return self._accept_bundle(doc)

    async def _poll_loop(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self.poll_once()
                failures = 0
                delay = self.poll_interval_s
            except CasError as exc:
                failures += 1
                delay = max(self.poll_interval_s, self._backoff(failures))
                log.info("CAS poll failed (%s); next try in %.1f s", plain_text(str(exc), 300), delay)
            except Exception as exc:  # a bug here must not stop the kiosk from retrying
                failures += 1
                delay = max(self.poll_interval_s, self._backoff(failures))
                log.error("CAS poll crashed (%s); next try in %.1f s", crash_site(exc), delay)
            await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** min(failures, 16)))
        # Jitter keeps a fleet of kiosks from hammering a CAS that just came back.
        return ceiling * (0.5 + 0.5 * self._rng.random())

    # ---- remote commands ------------------------------------------------------------

    def _handled_ids(self) -> list[str]:
        return json.loads(self._store.get("handled_commands", "[]"))

    @staticmethod
    def _command_id(doc: Any) -> str | None:
        payload = doc.get("payload") if isinstance(doc, dict) else None
        command_id = payload.get("id") if isinstance(payload, dict) else None
        return command_id if isinstance(command_id, str) and 0 < len(command_id) <= 100 else None

    def _command_failed(self, doc: Any, exc: Exception) -> None:
        """A command whose judgement itself failed: refused, remembered and acknowledged,
        so the CAS stops sending it and later polls go on."""
        command_id = self._command_id(doc)
        self._refuse("command", "malformed", f"command {command_id!r} could not be judged ({type(exc).__name__})")
        if command_id is not None:
            handled = self._handled_ids()
            if command_id not in handled:
                self._store.put("handled_commands", json.dumps((handled + [command_id])[-200:]))
            self._pending_acks.append({"id": command_id, "result": "refused"})

    async def _handle_command(self, doc: Any) -> None:
        command_id = self._command_id(doc)
        if command_id is None:
            self._refuse("command", "malformed", "a remote command without a usable 'id' was ignored")
            return
        handled = self._handled_ids()
        if command_id in handled:
            if not any(ack["id"] == command_id for ack in self._pending_acks):
                self._pending_acks.append({"id": command_id, "result": "done"})
            return
        try:
            command = decide(doc, parse_public_key(self._record.operator_key), kiosk_id=self.kiosk_id,
                             last_sequence=int(self._store.get("command_sequence", "0")))
        except DocumentError as exc:
            reason = getattr(exc, "reason", "malformed")
            self._refuse("command", reason, f"command {command_id}: {exc}")
            result = "refused"
        else:
            if command.sequence is not None:
                self._store.put("command_sequence", str(command.sequence))
            if command.name in ("deactivate", "activate"):
                self._store.put("remote_state", "deactivated" if command.name == "deactivate" else "active")
            log.warning("CAS remote command %s obeyed (%s)", command.name,
                        "operator-signed" if command.signed else "unsigned: deactivate is always obeyed")
            if self.on_command is not None:
                try:
                    await self.on_command(command.name, dict(command.args))
                except Exception as exc:
                    log.error("kiosk failed to carry out remote command %s (%s)", command.name, crash_site(exc))
            if command.name == "unpair":
                self._unpair()
            result = "done"
        self._store.put("handled_commands", json.dumps((handled + [command_id])[-200:]))
        self._pending_acks.append({"id": command_id, "result": result})

    def _unpair(self) -> None:
        path = self.state_dir / PAIRING_FILE
        if path.exists():
            path.rename(self.state_dir / f"{PAIRING_FILE}.unpaired-{int(time.time())}")
        self.paired = False
        self._stopping = True

    # ---- money ----------------------------------------------------------------------

    def _require_bundle(self) -> ConfigBundle:
        if self._bundle is None:
            raise NotConfigured("no operator-signed configuration is in force; the kiosk cannot sell or buy yet")
        return self._bundle

    def _rate_max_age(self) -> float:
        bundle = self._bundle
        return min(self.rate_max_age_s, bundle.quote_max_age_s) if bundle is not None else self.rate_max_age_s

    def _judge_rates(self) -> None:
        """Drop every held rate outside the signed bounds of the bundle in force, with a
        refusal the operator can read. Rates may come unsigned, but a server that could
        set any rate could sell the operator's coins for nothing (or a customer's cash
        for no coins): the operator signs the sane range."""
        bundle = self._bundle
        if bundle is None:
            return
        for currency, rate in list(self._rates.items()):
            bounds = bundle.rate_bounds.get(currency)
            if bounds is None:
                if currency == bundle.currency:
                    why = f"no signed {currency} rate range is in force, so no {currency} rate is used"
                else:
                    continue
            elif bounds[0] <= rate <= bounds[1]:
                continue
            else:
                why = (f"the CAS's {currency} rate {rate} is outside the range the operator signed, "
                       f"{bounds[0]}..{bounds[1]} (configuration version {bundle.version}); no purchase at that price")
            del self._rates[currency]
            self._refused_rates[currency] = why
            self._refuse("rate", "rate-out-of-bounds", why)

    def rate(self, currency: str) -> Decimal | None:
        """The rate in force for `currency`: fresh (younger than the signed quote age)
        and inside the signed bounds, else None. Nothing stale is ever returned."""
        if time.monotonic() - self._rates_at > self._rate_max_age():
            return None
        return self._rates.get(currency)

    async def quote(self, currency: str) -> Quote:
        """A quote at the CAS's current rate, refused (RateRefused, a CasRefused) when
        the rate is missing, malformed or outside the signed bounds; CasUnavailable when
        no fresh rate can be had. Call it again for every new quote: it holds none."""
        bundle = self._require_bundle()
        if currency != bundle.currency:
            raise CasRefused(f"quote in {currency}: the signed configuration is for {bundle.currency}")
        stale = time.monotonic() - self._rates_at > self._rate_max_age()
        if stale or (currency not in self._rates and currency not in self._refused_rates):
            await self.poll_once()
        if currency in self._refused_rates:
            raise RateRefused(self._refused_rates[currency])
        rate = self.rate(currency)
        if rate is None:
            raise RateRefused(f"the CAS gives no {currency} rate; no purchase can be priced")
        bounds = bundle.rate_bounds.get(currency)
        if bounds is None or not bounds[0] <= rate <= bounds[1]:  # _judge_rates dropped it; never trust one path
            raise RateRefused(f"the CAS's {currency} rate {rate} is not inside a signed range")
        return Quote(currency=currency, rate=rate, fee_percent=bundle.fee_percent,
                     fixed_fee=bundle.fixed_fee if bundle.fixed_fee.minor else None)

    async def send_coins(self, request_id: str, address: str, amount: Sats) -> SendResult:
        """Ask the CAS to send `amount` to `address`. Idempotent by request_id on the
        server; CasUnavailable means: nothing known, call again later with the same id."""
        bundle = self._require_bundle()
        if "BTC" not in bundle.coins:
            raise NotConfigured("the signed configuration does not enable BTC")
        if not isinstance(amount, Sats) or amount.sat <= 0:
            raise ValueError(f"send {request_id}: amount must be positive Sats, got {amount!r}")
        raw = await self._request("POST", "/v1/sends", {"protocol": PROTOCOL_VERSION, "id": request_id,
                                                         "address": address, "sats": amount.sat})
        return self._parse(parse_send, raw, request_id)

    async def sell_invoice(self, invoice_id: str, cash: Fiat, amount: Sats) -> SellInvoice:
        """A deposit address for a sell; refused (AddressRefused, alerted) unless it derives
        from the operator's signed xpub and asks exactly `amount`."""
        bundle = self._require_bundle()
        if bundle.wallet is None:
            raise NotConfigured("the signed configuration has no wallet xpub, so the kiosk cannot buy bitcoin back")
        raw = await self._request("POST", "/v1/sell-invoices", {
            "protocol": PROTOCOL_VERSION, "id": invoice_id, "fiat_minor": cash.minor, "currency": cash.currency,
            "sats": amount.sat})
        invoice = self._parse(parse_sell_invoice, raw, invoice_id)
        try:
            ours = address_derives_from_xpub(invoice.address, bundle.wallet.xpub, bundle.wallet.network, invoice.index)
        except WalletError as exc:
            ours = False
            detail = str(exc)
        else:
            detail = f"address {invoice.address} is not 0/{invoice.index} of the signed xpub"
        if not ours:
            self._refuse("sell-address", "foreign-address", f"sell invoice {invoice_id}: {detail}")
            raise AddressRefused(f"sell invoice {invoice_id}: {detail}; refused")
        if invoice.sats != amount.sat:
            detail = f"sell invoice {invoice_id}: CAS asks {invoice.sats} sat, the kiosk quoted {amount.sat}"
            self._refuse("sell-invoice", "wrong-amount", detail)
            raise CasRefused(detail)
        if bundle.sell is not None:
            self._remember_invoice(invoice, bundle.wallet.network, bundle.sell)
        return invoice

    def _remember_invoice(self, invoice: SellInvoice, network: str, sell: Any) -> AcceptedInvoice:
        """Keep what the kiosk accepted, with its own clock: the expiry and the payment
        checks later use this record, never what the CAS says about the invoice then."""
        key = f"sell_invoice:{invoice.id}"
        kept = self._store.get(key)
        if kept is not None:
            record = AcceptedInvoice.from_json(json.loads(kept))
            if (record.address, record.index, record.sats) == (invoice.address, invoice.index, invoice.sats):
                return record  # asked again (idempotent): the first acceptance's clock stands
        now = self.clock()
        record = AcceptedInvoice(id=invoice.id, address=invoice.address, index=invoice.index, sats=invoice.sats,
                                 network=network, accepted_at=now,
                                 expires_at=invoice_expiry(invoice.expires_at, now, sell))
        self._store.put(key, json.dumps(record.to_json()))
        return record

    async def sell_invoice_status(self, invoice_id: str) -> InvoiceStatus:
        """The CAS's status answer as it came (claims and evidence); nothing here is proven."""
        raw = await self._request("GET", f"/v1/sell-invoices/{invoice_id}")
        return self._parse(parse_invoice_status, raw, invoice_id)

    def _first_seen(self, invoice_id: str) -> Any:
        def first_seen(txid: str, now: float) -> float:
            key = f"sell_seen:{invoice_id}:{txid}"
            kept = self._store.get(key)
            if kept is None:
                self._store.put(key, repr(now))
                return now
            return float(kept)
        return first_seen

    async def sell_payment(self, invoice_id: str) -> SellPayment:
        """The payment of a sell invoice as the kiosk proved it (atm.cas.sell): "waiting",
        "proven" (with the proof) or "expired". The CAS's state, received_sats and
        confirmations are never used for money. Evidence that proves nothing it claims
        raises PaymentRefused (a CasRefused) with the payment_proof reason, is kept as a
        refusal and queued as an alert (critical unless the customer underpaid)."""
        bundle = self._require_bundle()
        if bundle.sell is None or bundle.wallet is None:
            raise NotConfigured("the signed configuration has no sell rules, so the kiosk does not sell")
        kept = self._store.get(f"sell_invoice:{invoice_id}")
        if kept is None:
            raise CasRefused(f"sell invoice {invoice_id}: this kiosk never accepted it, so no payment for it counts")
        invoice = AcceptedInvoice.from_json(json.loads(kept))
        status = await self.sell_invoice_status(invoice_id)
        claims = status.state in _CLAIMED_STATES or status.received_sats > 0
        try:
            return judge_payment(invoice, status.payment, cas_claims_payment=claims, sell=bundle.sell,
                                 now=self.clock(), first_seen=self._first_seen(invoice_id))
        except PaymentProofError as exc:
            detail = f"sell invoice {invoice_id}: {exc}"
            self._refuse("sell-payment", exc.reason, detail)
            raise PaymentRefused(f"{detail}; not paid out", exc.reason) from None

    # ---- outbox ---------------------------------------------------------------------

    async def upload_transaction(self, record: Mapping[str, Any]) -> None:
        """Make `record` durable in the outbox; it is uploaded later, keyed by its id and version."""
        tx_id, version = record.get("id"), record.get("version")
        if not isinstance(tx_id, str) or not tx_id:
            raise RecordRefused("transaction record needs a non-empty string 'id'")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise RecordRefused(f"transaction {tx_id}: 'version' must be a non-negative integer")
        self._store.enqueue(TX, tx_id, version, dict(record))
        self._work.set()

    def queue_length(self) -> int:
        return self._store.queue_length()

    async def flush_once(self) -> int:
        """Upload one batch of alerts, events and transactions; returns how many the server
        acknowledged. Each queue on its own: a CAS that refuses one (an older CAS without
        /v1/alerts) still gets the others; the first failure is raised after all tried."""
        acknowledged = 0
        failure: CasError | None = None
        for kind, path, field in ((ALERT, "/v1/alerts", "alerts"), (EVENT, "/v1/events", "events"),
                                  (TX, "/v1/transactions", "transactions")):
            batch = self._store.pending(kind, self.upload_batch)
            if not batch:
                continue
            if kind == TX:
                items = [{"id": key, "version": version, "record": body} for key, version, body in batch]
            else:
                items = [body for _key, _version, body in batch]
            try:
                raw = await self._request("POST", path, {"protocol": PROTOCOL_VERSION, field: items})
                held = self._parse(parse_upload_ack, raw)
            except CasUnavailable:
                raise  # the CAS is not there: the next queue would only wait for the same timeout
            except CasError as exc:
                failure = failure or exc
                continue
            self._store.acknowledge(kind, held)
            acknowledged += len(held)
        if failure is not None:
            raise failure
        return acknowledged

    async def _upload_loop(self) -> None:
        failures = 0
        while not self._stopping:
            # Everything in the loop body is guarded, the store's reads included: a full
            # disk or a bug must cost a retry, never the upload task itself.
            try:
                if self._store.queue_length() == 0:
                    self._work.clear()
                    try:
                        await asyncio.wait_for(self._work.wait(), timeout=self.poll_interval_s)
                    except asyncio.TimeoutError:
                        pass
                    continue
                await self.flush_once()
                failures = 0
                continue
            except CasError as exc:
                failures += 1
                delay = self._backoff(failures)
                log.info("CAS upload failed (%s); next try in %.1f s", plain_text(str(exc), 300), delay)
            except Exception as exc:
                failures += 1
                delay = max(self.backoff_base_s, self._backoff(failures))
                log.error("CAS upload crashed (%s); next try in %.1f s", crash_site(exc), delay)
            # New records must not shorten the backoff (that would hammer a CAS that
            # is down); a successful poll may, since the CAS is evidently back.
            self._contact.clear()
            try:
                await asyncio.wait_for(self._contact.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    # ---- service view ---------------------------------------------------------------

    def last_contact(self) -> float | None:
        value = self._store.get("last_contact")
        return float(value) if value is not None else None

    def is_reachable(self, max_offline_s: float) -> bool:
        """False once the CAS has not answered for longer than max_offline_s: the kiosk
        then starts no new buys (and finishes the ones in progress)."""
        last = self.last_contact()
        return last is not None and time.time() - last <= max_offline_s

    def status(self) -> dict[str, Any]:
        bundle = self._bundle
        max_offline = bundle.max_offline_s if bundle is not None else 300
        return {
            "paired": self.paired,
            "kiosk_id": self.kiosk_id,
            "cas_url": self._record.cas_url,
            "cas_pins": list(self._record.cas_pins),
            "pin": self._pin_state,
            "pin_ok": self._pin_state == "ok",
            "operator_key_id": key_id(parse_public_key(self._record.operator_key)),
            "config_version": bundle.version if bundle is not None else None,
            "last_contact": self.last_contact(),
            "reachable": self.is_reachable(max_offline),
            "queue_length": self._store.queue_length(),
            "alerts_queued": self._store.queue_length(ALERT),
            "rates": {currency: str(self.rate(currency)) for currency in sorted(self._rates)
                      if self.rate(currency) is not None},
            "remote_state": self._store.get("remote_state", "active"),
            "last_error": self._last_error,
            "refusals": self._store.refusals(),
        }
