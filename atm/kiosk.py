"""The kiosk application: consumes device events in order, drives the state table
(atm.machine), routes money events and actions to the transaction flow at the
kiosk (atm.flows), and publishes the customer screen (composed by atm.screens).
Money rules live in the flows; this module holds timers, health and alerts.

One asyncio task consumes one queue: device events (from driver threads, via a
thread-safe sink), UI actions, timer expiries and results of background work
(CAS calls, printing). Transition callbacks never wait on hardware or network:
they start a task whose result comes back through the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Mapping

from transitions.core import MachineError

from hal import (
    BillValidator, CashboxChanged, CodeScanned, CodeScanner, DeviceState, DeviceStatusChanged, Event, Fiat,
    FraudDetected, Indicators, Light, NoteCredited, NoteEscrowed, NoteOutcomeUnknown, NoteRejected, NoteReturned,
    NoteStacked,
    PaperState, PrinterStatusChanged, ReceiptPrinter, SensorChanged, Sensors, UnitStatus,
)
from hal.device import Device
from hal.dispenser import CashDispenser
from hal.errors import DeviceError
from atm.cas.interface import CasError, CasService, KioskSettings
from atm.config import Config
from atm.journal import Journal, JournalWriteError
from atm.operator_alerts import OperatorAlerts
from atm.settlement import QuoteRefused, Settlement
from atm.flows import BuyFlow, FlowContext, TransactionFlow
from atm.flows.note_watch import NoteOverdue, NoteWatch
from atm.flows.cash_out import CashOutFlow, books_value
from atm.cash_out_recovery import CashOutRecovery
from atm.flows.redeem import RedeemFlow
from atm.flows.sell import SellFlow, offered_amounts, sell_settings
from atm.redeem_codes import RedeemCodes, load_or_create_secret
from hal.events import CassetteStatusChanged, DispenseCompleted
from atm.flows.pricing import Pricing
from atm.machine import IGNORABLE, build_machine, state_spec
from atm import texts
from atm.service_lockout import PinGuard, PinVerdict
from atm.screens import ScreenComposer, localise
from atm.service_menu import ServiceMenu

log = logging.getLogger("atm.kiosk")


@dataclass
class DeviceSet:
    validator: BillValidator
    scanner: CodeScanner
    printer: ReceiptPrinter | None = None
    dispenser: CashDispenser | None = None
    sensors: Sensors | None = None
    indicators: Indicators | None = None

    def items(self) -> list[tuple[str, Device]]:
        return [(kind, dev) for kind in ("validator", "scanner", "printer", "dispenser", "sensors", "indicators")
                if (dev := getattr(self, kind)) is not None]


# Internal events that travel through the same queue as device events.
@dataclass(frozen=True)
class _Timer:
    token: int


@dataclass(frozen=True)
class _Action:
    message: Mapping[str, Any] = field(repr=False)       # may hold a PIN: never in a log line
    reply: "asyncio.Future[dict[str, Any]]" = field(repr=False)

    def __repr__(self) -> str:
        return f"_Action({self.message.get('action')!r})"


@dataclass(frozen=True)
class _JournalFailed:
    reason: str


@dataclass(frozen=True)
class _Alert:
    """An alert raised in a driver's thread, handed to the loop."""

    kind: str
    text: str
    severity: str


@dataclass(frozen=True)
class _Trigger:
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    done: "asyncio.Future[None] | None" = None     # set once the trigger was handled


@dataclass
class _Health:
    state: DeviceState = DeviceState.STARTING
    detail: str = ""


_STOP = object()          # tells the consumer to end, in queue order

# UI action -> trigger, for the actions that map one to one. No action opens the service
# menu: only the physical service switch does (SensorChanged "service_switch").
_ACTION_TRIGGERS = {"start_buy": "start_buy", "cancel": "cancel", "finish_cash": "finish_cash",
                    "confirm": "confirm", "done": "done",
                    "start_sell": "start_sell", "start_redeem": "start_redeem"}
# Screens a customer may change the language on: before any money moves.
_LANGUAGE_STATES = ("idle", "buy_scan")
_REQUIRED = ("validator", "scanner")


class Kiosk:
    """The model of the state machine, and the UI's KioskFacade."""

    def __init__(self, config: Config, journal: Journal, cas: CasService, devices: DeviceSet) -> None:
        self.config = config
        self.journal = journal
        self.cas = cas
        self.devices = devices
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self._seq = 0
        self._screen: dict[str, Any] = {"screen": "booting", "data": {}, "seq": 0}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_token = 0
        self._timer_state: str | None = None
        self._deadline: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._consumer: asyncio.Task[Any] | None = None
        self._health: dict[str, _Health] = {kind: _Health() for kind, _ in devices.items()}
        self._paper = PaperState.UNKNOWN
        self._cashbox = UnitStatus.OK
        self._door_open = False
        self._active = self._load_active()
        self._alerts = OperatorAlerts(journal, self._spawn)
        self.pricing = Pricing(cas, config.currency, self.settings)
        self.flow: TransactionFlow | None = None    # the transaction at the kiosk now, if any
        self._login_error: dict[str, Any] | None = None
        # Wrong PINs are counted on disk: a power cut does not reset the lockout.
        self.pin_guard = PinGuard(config.state_dir / "service-pin.json")
        self.language = config.language          # the customer's choice, for one transaction
        self.service_menu = ServiceMenu(self)
        # "Sending" stays on screen at least this long, so a customer can read it.
        self.sending_min_display_s = 2.5
        self._sending_since: float | None = None
        # The notes the validator takes, for the screens: read in a thread (a driver may hold
        # its lock while it talks to the unit), never from a screen being drawn.
        self._denominations: list[Fiat] = []
        self._last_receipt_printed: bool | None = None
        self._journal_error: str | None = None       # set once a journal write failed: no more cash
        self._refused_quotes: set[str] = set()       # transactions whose confirmed rate left the signed bounds
        self.settlement = Settlement(journal, cas, lambda: self.pricing.quote, self.settings)
        self._flow_context = FlowContext(config=config, journal=journal, cas=cas, settings=self.settings,
                                         alert=self.alert)
        self.retry_interval = 10.0              # seconds between retries of postponed sends
        # A note told to stack must settle within a bound, else the device is asked; its
        # answer must come within a second bound, else the note is parked for the operator.
        self.notes = NoteWatch(journal, devices.validator, self.alert, self._post,
                               config.timeouts.note_settle, config.timeouts.note_resolve)
        self.receipts: deque[Any] = deque(maxlen=20)   # latest Receipt documents printed (or attempted)
        # Redeem codes are MAC-bound to this kiosk under a secret kept in its state folder (0600).
        self.redeem_codes = RedeemCodes(load_or_create_secret(Path(config.state_dir) / "redeem.key"),
                                        config.kiosk_id)
        self.payment_poll_s = 2.0               # how often a shown deposit address is checked for a proof
        self._chosen_amount: Any = None
        self._cash_out_task: asyncio.Task[Any] | None = None
        self.ready = asyncio.Event()
        self.screens = ScreenComposer(self)
        self.machine = build_machine(self)

    # ---------------------------------------------------------------- start and stop

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.service_menu.start()
        self._consumer = asyncio.create_task(self._consume(), name="kiosk-events")
        for kind, device in self.devices.items():
            if kind == "validator":
                device.set_credit_recorder(self._record_credit)
            try:
                await asyncio.to_thread(device.open, self._sink)
                self._health[kind] = _Health(device.state if device.state != DeviceState.STARTING
                                             else DeviceState.ONLINE)
            except DeviceError as exc:
                self._health[kind] = _Health(DeviceState.OFFLINE, str(exc))
                self.alert("device", f"{kind} did not start: {exc}", "critical")
        await self._read_denominations()
        if self.devices.sensors is not None:
            self._door_open = bool(self.devices.sensors.read().get("door", False))
        if self.devices.printer is not None:
            await self._read_printer_status()
        # nothing the CAS answers (or a broken journal) may stop the kiosk from booting
        await self._guarded("rate refresh", self._refresh_quote())
        await self._guarded("recovery", self.recover())
        self._spawn(self._background_loop(), "kiosk-background")
        await self._post_and_wait("booted")
        self.ready.set()

    async def stop(self) -> None:
        # The consumer ends through the queue, not by cancel: transitions swallows a
        # CancelledError raised inside a transition, which would leave it running.
        for task in list(self._tasks):
            task.cancel()
        self._post(_STOP)
        pending = [*self._tasks, *([self._consumer] if self._consumer else [])]
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=5)
            for task in stuck:
                log.error("task %s did not stop: %s", task.get_name(), task.get_stack(limit=5))
        if self._timer:
            self._timer.cancel()
        self.service_menu.stop()
        self.notes.stop()
        for _, device in self.devices.items():
            try:
                await asyncio.to_thread(device.close)
            except DeviceError as exc:
                log.warning("closing %s: %s", device, exc)

    def _sink(self, event: Event) -> None:
        """Thread-safe: drivers call this from their own threads."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._events.put_nowait, event)

    def _record_credit(self, event: NoteCredited) -> None:
        """CreditRecorder: runs in the validator's thread, durable before the device is acknowledged.
        If the journal cannot write, it raises: the driver does not acknowledge the note."""
        try:
            outcome = self.journal.record_credit(event)
        except JournalWriteError as exc:
            self._sink(_JournalFailed(str(exc)))
            raise
        log.info("credit %s from %s: %s (tx %s)", event.value, event.device, outcome.kind, outcome.tx_id)
        if outcome.kind == "orphan":
            self._sink(_Alert("note_parked", f"{event.device}: a settled note of {event.value} matched no escrow "
                                             "decision; parked for reconciliation", "critical"))

    def _post(self, item: Any) -> None:
        self._events.put_nowait(item)

    async def _post_and_wait(self, name: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(_Trigger(name, done=done))
        await done

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("background task %s failed: %s: %s", task.get_name(), type(exc).__name__, exc)
            if isinstance(exc, JournalWriteError):
                self._post(_JournalFailed(str(exc)))
            self.alert("internal", f"internal error in {task.get_name()}: {type(exc).__name__}", "critical")

    async def _guarded(self, what: str, coro: Any) -> None:
        """Run background work whose failure must not end the kiosk or its background task."""
        try:
            await coro
        except JournalWriteError as exc:
            self._post(_JournalFailed(str(exc)))
        except Exception as exc:               # logged by type and text only: no secrets in there
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
            self.alert("internal", f"{what} failed: {type(exc).__name__}", "critical")

    # ---------------------------------------------------------------- the one consumer

    async def _consume(self) -> None:
        while True:
            item = await self._events.get()
            if item is _STOP:
                return
            try:
                await self._dispatch(item)
            except Exception as exc:          # one bad event must not stop the kiosk
                await self._handler_failed(item, exc)

    async def _handler_failed(self, item: Any, exc: Exception) -> None:
        """Answer the screen, log without secrets (the item itself may carry a PIN, so only
        its kind is named), and leave the kiosk safe."""
        what = (item.message.get("action") if isinstance(item, _Action)
                else item.name if isinstance(item, _Trigger) else type(item).__name__)
        log.error("while handling %s: %s: %s", what, type(exc).__name__,
                  exc if isinstance(exc, (JournalWriteError, DeviceError, CasError)) else "see the journal")
        if isinstance(item, _Action) and not item.reply.done():
            item.reply.set_result({"ok": False, "error": "Sorry, that did not work. The kiosk is checking itself."})
        if isinstance(item, _Trigger) and item.done is not None and not item.done.done():
            item.done.set_result(None)
        if isinstance(exc, JournalWriteError):
            await self._journal_failed(str(exc))
        else:
            self.alert("internal", f"internal error while handling {what}: {type(exc).__name__}", "critical")
            self._publish()

    async def _journal_failed(self, reason: str) -> None:
        """No money step may run without the journal: stop taking cash, go out of service."""
        first = self._journal_error is None
        self._journal_error = reason
        self._call(self.devices.validator.disable)
        if first:
            self.alert("journal", f"journal write failed: {reason}", "critical")
        try:
            await self._fire("journal_failed")
        except Exception as exc:       # the table must still show the reason
            log.error("could not leave %s after the journal failed: %s", self.state, type(exc).__name__)
        self._publish()

    async def _dispatch(self, item: Any) -> None:
        if isinstance(item, _Action):
            if item.message.get("action") == "service_login":
                self._check_pin(item)
                return
            result = await self._apply_action(item.message)
            if not item.reply.done():
                item.reply.set_result(result)
        elif isinstance(item, _Trigger):
            try:
                await self._fire(item.name, **item.kwargs)
            finally:
                if item.done is not None and not item.done.done():
                    item.done.set_result(None)
        elif isinstance(item, _Timer):
            if item.token == self._timer_token:
                await self._fire("timeout")
        elif isinstance(item, _JournalFailed):
            await self._journal_failed(item.reason)
        elif isinstance(item, _Alert):
            self.alert(item.kind, item.text, item.severity)
        elif isinstance(item, NoteOverdue):
            await self._note_parked(await self.notes.overdue(item))
        elif isinstance(item, NoteEscrowed) and self.service_menu.testing_notes():
            await self.service_menu.note_escrowed(item)   # the note test: always returned, never credited
        elif isinstance(item, (NoteReturned, NoteRejected)) and self.service_menu.testing_notes():
            await self.service_menu.note_settled(item)
        elif isinstance(item, NoteEscrowed):
            stacking = await self._buy_flow().on_escrow(item, taking_cash=self.state == "buy_cash")
            if stacking:
                self.notes.watch(item.device)
            self._publish()
        elif isinstance(item, (NoteCredited, NoteStacked, NoteReturned, NoteRejected)):
            trigger = await self._buy_flow().on_event(item)
            resolved = isinstance(item, (NoteCredited, NoteReturned)) and self.notes.settled(item.device)
            if trigger:
                await self._fire(trigger)
            if resolved:
                await self._fire("note_resolved")
        elif isinstance(item, DispenseCompleted) and self.service_menu.owns_dispense(item.request_id):
            await self.service_menu.test_dispensed(item)   # a technician's test dispense, not a customer's
        elif isinstance(item, DispenseCompleted):
            await self._on_dispensed(item)
        elif isinstance(item, CassetteStatusChanged):
            if item.status in (UnitStatus.MISSING, UnitStatus.INOPERATIVE, UnitStatus.EMPTY) and any(
                    load["cassette"] == item.cassette for load in self.journal.cassette_loads()):
                self.alert("cassette", f"{item.device}: cassette {item.cassette} {item.status.value} "
                           f"{item.detail}".strip(), "warning")
        elif isinstance(item, NoteOutcomeUnknown):
            await self._note_parked(self.notes.park(item.device, item.detail or "the validator cannot tell where it went"))
        elif isinstance(item, DeviceStatusChanged):
            self._health[self._kind_of(item.device)] = _Health(item.state, item.detail)
            if self._kind_of(item.device) == "validator" and item.state == DeviceState.ONLINE:
                self._spawn(self._read_denominations(), "validator-notes")
            if item.state in (DeviceState.HARDWARE_ERROR, DeviceState.OFFLINE, DeviceState.FRAUD_ATTEMPT,
                              DeviceState.USER_ERROR):
                kind = "fraud_attempt" if item.state == DeviceState.FRAUD_ATTEMPT else "device"
                self.alert(kind, f"{item.device}: {item.state.value} {item.detail}".strip(), "critical")
            await self._fire("recheck" if self.is_healthy() else "fault")
        elif isinstance(item, CashboxChanged):
            self._cashbox = item.status
            self.alert("cashbox_full" if item.status == UnitStatus.FULL else "cashbox",
                       f"{item.device}: cashbox {item.status.value}",
                       "critical" if item.status in (UnitStatus.FULL, UnitStatus.MISSING) else "warning")
            await self._fire("recheck" if self.is_healthy() else "fault")
        elif isinstance(item, FraudDetected):
            self.alert("fraud_attempt", f"{item.device}: fraud attempt: {item.detail}", "critical")
            self.journal.record_fact("fraud_attempt", self.tx_id, device=item.device, detail=item.detail)
        elif isinstance(item, CodeScanned):
            if self.state == "maintenance_menu":
                self.service_menu.scanned(item.text)      # the scan test: shown, never acted on
                self._publish()
            else:
                await self._fire("scanned", text=item.text)
        elif isinstance(item, SensorChanged):
            await self._on_sensor(item)
        elif isinstance(item, PrinterStatusChanged):
            self._paper = item.paper
            self._health["printer"] = _Health(item.state, f"paper {item.paper.value}")
            if item.paper == PaperState.NEAR_END:
                self.alert("paper_low", "printer: paper near end", "warning")
            elif item.paper == PaperState.OUT:
                self.alert("paper_out", "printer: paper out", "critical")
            await self._fire("recheck" if self.is_healthy() else "fault")
        else:
            log.warning("ignored unknown event %r", item)

    async def _fire(self, trigger: str, **kwargs: Any) -> bool:
        try:
            return bool(await self.trigger(trigger, **kwargs))
        except MachineError:
            if trigger in IGNORABLE:
                self._publish()
                return False
            raise

    def _kind_of(self, device_name: str) -> str:
        for kind, device in self.devices.items():
            if getattr(device, "name", None) == device_name:
                return kind
        return device_name

    # ---------------------------------------------------------------- UI facade

    def snapshot(self) -> dict[str, Any]:
        return self._screen

    def subscribe(self) -> "asyncio.Queue[dict[str, Any]]":
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: "asyncio.Queue[dict[str, Any]]") -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    async def handle_action(self, message: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(message, Mapping) or not isinstance(message.get("action"), str):
            return {"ok": False, "error": "an action is an object with an \"action\" name"}
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._post(_Action(dict(message), fut))
        reply = await fut
        # a refusal's message leaves the kiosk here: its amounts in the language on screen
        return localise(reply, self._screen["data"].get("language") or self.language)

    async def _apply_action(self, message: Mapping[str, Any]) -> dict[str, Any]:
        action = message["action"]
        before = self.state
        if action in _ACTION_TRIGGERS:
            trigger = _ACTION_TRIGGERS[action]
        elif action == "choose_amount":
            self._chosen_amount = message.get("minor")
            trigger = "choose_amount"
        elif action == "set_language":
            return self._set_language(message.get("language"))
        elif action == "service_action":
            if not self.state.startswith("maintenance_menu"):
                return {"ok": False, "error": "log in to the service menu first"}
            return await self.service_menu.act(message)
        else:
            return {"ok": False, "error": f"unknown action {action!r}"}
        try:
            await self.trigger(trigger)
        except MachineError:
            return _refused(texts.message("message.not_available"), f"{action} is not available on this screen")
        # Every customer action that succeeds moves to another screen. (A queued machine's
        # trigger returns True even when every guard said no, so the state is the witness.)
        if self.state == before:
            why = self._why_not(action)
            detail = self.buy_paused_reason() if action == "start_buy" else None
            return _refused(why, f"{action} refused: {detail}" if detail else texts.render("en", why))
        return {"ok": True}

    def _why_not(self, action: str) -> dict[str, Any]:
        """Why a customer's tap did nothing, as a message in their language."""
        if action in ("start_sell", "start_redeem"):
            return texts.message("message.not_available")
        if action == "start_buy":
            return self.screens.idle_notice() or texts.message("message.not_available")
        if action in ("finish_cash", "cancel") and self.flow is not None and self.flow.money_in_flight():
            return texts.message("message.note_in_progress")
        if self.flow is not None and (why := self.flow.why_not(action)) is not None:
            return why
        return texts.message("message.not_available")

    # ---------------------------------------------------------------- language

    def languages(self) -> list[str]:
        """The languages a customer may choose: those the signed settings enable and the
        kiosk has texts for; the configured language first. Never empty."""
        settings = self.settings()
        enabled = list(getattr(settings, "languages", ()) or ())
        have = set(texts.available_languages())
        chosen = [code for code in dict.fromkeys([self.config.language, *enabled]) if code in have]
        return chosen or [texts.DEFAULT_LANGUAGE]

    def _set_language(self, language: Any) -> dict[str, Any]:
        if self.state not in _LANGUAGE_STATES:
            return _refused(texts.message("message.not_available"), "the language is chosen before a purchase starts")
        if not isinstance(language, str) or language not in self.languages():
            return {"ok": False, "error": f"language {language!r} is not enabled; choose one of "
                                          f"{', '.join(self.languages())}"}
        self.language = language
        if self.flow is not None:
            self.flow.language = language
        if self.state == "idle":
            self._arm_timer()            # a customer who just chose gets the idle screen's full time
        self._publish()
        return {"ok": True}

    def reset_language(self, event: Any = None) -> None:
        """Back at idle with nobody choosing: the next customer starts in the default."""
        self.language = self.languages()[0]
        self._publish()

    # ---------------------------------------------------------------- service login

    def _check_pin(self, item: _Action) -> None:
        """The PIN is checked off the table and off the loop (PinGuard runs the hash in a
        thread and keeps the lockout on disk); its verdict comes back as the
        `service_login` trigger. The event queue goes on meanwhile."""
        if self.state != "maintenance_login":
            item.reply.set_result({"ok": False, "error": "the PIN pad is not open: turn the service switch"})
            return
        pin = item.message.get("pin")
        self._spawn(self._pin_attempt(pin if isinstance(pin, str) else "", item.reply), "service-login")

    async def _pin_attempt(self, pin: str, reply: "asyncio.Future[dict[str, Any]]") -> None:
        try:
            verdict = await self.pin_guard.attempt(pin, self._pin_hash())
        except OSError as exc:
            # the lockout file cannot be written: refuse rather than count nothing
            log.error("service login refused: the PIN lockout file cannot be written (%s)", exc)
            verdict = PinVerdict(False, 60.0, self.pin_guard.failures)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(_Trigger("service_login", {"verdict": verdict}, done))
        await done
        if reply.done():
            return
        if self.state.startswith("maintenance_menu"):
            reply.set_result({"ok": True})
        else:
            reply.set_result(_refused(self._login_error or texts.message("service.locked", wait=0),
                                      "service login refused"))

    # ---------------------------------------------------------------- guards (pure)

    def settings(self) -> KioskSettings | None:
        """Limits, fees and wallet in force. From a paired CAS only a verified operator-signed
        bundle counts (None until one arrives); the stand-in uses local configuration."""
        return self.cas.settings()

    def _pin_hash(self) -> str | None:
        # The signed bundle's PIN wins; before the first bundle a technician on site can
        # still log in with the PIN hash installed in the local configuration file.
        settings = self.settings()
        return (settings.technician_pin_hash if settings else None) or self.config.technician_pin_hash

    def is_healthy(self, event: Any = None) -> bool:
        if self._journal_error is not None:
            return False
        for kind in _REQUIRED:
            health = self._health.get(kind)
            if health is None or health.state not in (DeviceState.ONLINE, DeviceState.BUSY):
                return False
        if self._cashbox in (UnitStatus.MISSING, UnitStatus.FULL):
            return False
        if self.devices.printer is not None and self.config.on_paper_out == "out_of_service" \
                and self._paper == PaperState.OUT:
            return False
        return not self._door_open

    def is_door_open(self, event: Any = None) -> bool:
        return self._door_open

    def is_deactivated(self, event: Any = None) -> bool:
        return not self._active

    def is_active(self, event: Any = None) -> bool:
        return self._active

    def can_start_buy(self, event: Any = None) -> bool:
        return self.is_healthy() and self._active and self.paused() is None

    def buy_paused_reason(self) -> str | None:
        """Why no purchase may start now, in a technician's words (service menu, refusal
        replies, logs); the customer's words are atm.screens' idle notice."""
        paused = self.paused()
        return paused[1] if paused else None

    def paused(self) -> tuple[str, str] | None:
        """Why no purchase may start now: (message key for the customer, a technician's words), or None."""
        if self.settings() is None:
            return "message.buy_paused_no_settings", "waiting for the operator's signed configuration"
        why = self.pricing.why_not()
        if why is not None:
            return "message.buy_paused", why
        reachable = getattr(self.cas, "is_reachable", None)
        if reachable is not None and not reachable(self._max_offline_s()):
            return "message.buy_paused_offline", "the kiosk cannot reach its server"
        if self.journal.unresolved_on(self._validator_name()):
            return "message.buy_paused_validator", "the note validator is finishing a previous note"
        return None

    def _max_offline_s(self) -> float:
        """The stricter of the local setting and the operator's signed one."""
        local = float(self.config.cas_offline_stop_after_s)
        settings = self.settings()
        signed = getattr(settings, "max_offline_s", None)
        return min(local, float(signed)) if signed is not None else local

    def _validator_name(self) -> str:
        return str(getattr(self.devices.validator, "name", "validator"))

    # ---------------------------------------------------------------- cash-out guards

    def _dispenser_ready(self) -> bool:
        health = self._health.get("dispenser")
        return (self.devices.dispenser is not None and health is not None
                and health.state in (DeviceState.ONLINE, DeviceState.BUSY))

    def _sell_notice(self) -> str | None:
        if self.devices.dispenser is None:
            return "this kiosk has no cash dispenser"
        if sell_settings(self._flow_context) is None:
            return "the operator has not signed cash-out for this kiosk"
        if not hasattr(self.cas, "sell_invoice") or not hasattr(self.cas, "sell_payment"):
            return "the kiosk's server offers no cash-out"
        if not self._dispenser_ready():
            return "the cash dispenser is not ready"
        if self.pricing.fresh() is None:
            return "no current price"
        if self.journal.open_dispenses():
            return "a dispense is waiting for reconciliation"
        if not offered_amounts(self._flow_context, self.devices.dispenser):
            return "the cassettes cannot pay any amount inside the limits"
        return None

    def can_start_sell(self, event: Any = None) -> bool:
        return self.is_healthy() and self._active and self.paused() is None and self._sell_notice() is None

    def can_start_redeem(self, event: Any = None) -> bool:
        return (self.is_healthy() and self._active and self.devices.dispenser is not None
                and self._dispenser_ready() and not self.journal.open_dispenses())

    def accept_amount(self, event: Any = None) -> bool:
        chosen, self._chosen_amount = self._chosen_amount, None
        flow = self.flow
        if not isinstance(flow, SellFlow):
            return False
        quote = self.pricing.fresh()
        return flow.choose(chosen, quote.rate if quote is not None else None)

    def accept_address(self, event: Any) -> bool:
        return self._buy_flow().accept_address(event.kwargs.get("text", ""))

    def has_credit(self, event: Any = None) -> bool:
        return self.flow is not None and self.flow.has_money_in()

    def nothing_in_flight(self, event: Any = None) -> bool:
        return self.flow is None or not self.flow.money_in_flight()

    def anything_in_flight(self, event: Any = None) -> bool:
        return not self.nothing_in_flight()

    def reaches_minimum(self, event: Any = None) -> bool:
        return isinstance(self.flow, BuyFlow) and self.flow.reaches_minimum()

    def quote_is_fresh(self, event: Any = None) -> bool:
        return isinstance(self.flow, BuyFlow) and self.flow.quote_is_fresh()

    def refresh_flow_quote(self, event: Any = None) -> None:
        """Confirm on a stale quote: fetch a fresh one and show it again (the customer
        confirms what they see)."""
        self._spawn(self._refresh_flow_quote(), "quote")
        self._publish()

    def pin_ok(self, event: Any = None) -> bool:
        """Reads the verdict PinGuard gave (atm.service_lockout); every attempt is journaled
        and sent to the CAS as an alert. The PIN itself is never in either."""
        verdict = event.kwargs.get("verdict") if event is not None else None
        if not isinstance(verdict, PinVerdict):
            return False
        self.journal.record_fact("service_login", None, ok=verdict.ok, failures=verdict.failures,
                                 locked_for_s=round(verdict.locked_for_s))
        if verdict.ok:
            self._login_error = None
            self.alert("service_login", "service menu: technician logged in with the PIN", "info")
            return True
        if verdict.locked_for_s > 0:
            self._login_error = texts.message("service.locked", wait=int(verdict.locked_for_s + 0.999))
            self.alert("wrong_pin", f"service menu: PIN attempt while locked ({verdict.failures} wrong PINs in a row)",
                       "critical")
        else:
            from atm.service_lockout import FREE_ATTEMPTS, lockout_delay
            wait = lockout_delay(verdict.failures)
            self._login_error = (texts.message("service.wrong_pin_locking", wait=int(wait)) if wait > 0 else
                                 texts.message("service.wrong_pin", left=FREE_ATTEMPTS - verdict.failures))
            self.alert("wrong_pin", f"service menu: wrong PIN ({verdict.failures} in a row"
                       + (f", PIN pad locked for {wait:g} s)" if wait > 0 else ")"),
                       "critical" if wait > 0 else "warning")
        return False

    def login_refused(self, event: Any = None) -> None:
        """A wrong PIN restarts the login screen's timer: the technician gets the full time."""
        self._arm_timer()
        self._publish()

    # ---------------------------------------------------------------- state callbacks

    def on_state_changed(self, event: Any) -> None:
        if self.state != self._timer_state:
            self._arm_timer()
        self._publish()

    def rearm_timeout(self, event: Any = None) -> None:
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._timer_token += 1
        self._timer_state = self.state
        key = state_spec(self.state).get("timeout_key")
        self._deadline = None
        if key and self._loop:
            token = self._timer_token
            seconds = getattr(self.config.timeouts, key)
            self._deadline = self._loop.time() + seconds
            self._timer = self._loop.call_later(seconds, self._post, _Timer(token))

    def refresh_screen(self, event: Any = None) -> None:
        self._publish()

    def refresh_cash(self, event: Any = None) -> None:
        self._enable_validator()
        self._arm_timer()               # every note gives the customer a fresh timeout
        if not self.is_healthy() and self.nothing_in_flight():
            self._post(_Trigger("fault"))
        self._publish()

    def wait_for_note(self, event: Any = None) -> None:
        """Cancel, door or service while a note moves: take no new note, keep the countdown,
        and let the note settle or be parked (the note watch bounds the wait); then the
        cash screen's health check moves on."""
        self._enable_validator()
        self._publish()

    def enter_idle(self, event: Any) -> None:
        self.flow = None
        self.language = self.languages()[0]     # the chosen language lasts for one transaction
        if not self.is_healthy():           # e.g. a door opened while a note was moving
            self._post(_Trigger("recheck"))
        self._light(Light.VALIDATOR, "off")
        self._light(Light.SCANNER, "off")

    def enter_scan(self, event: Any) -> None:
        self.flow = BuyFlow(self._flow_context, self.devices.validator, self.settlement, self.pricing)
        self.flow.language = self.language
        self._call(self.devices.scanner.start_scanning)
        self._light(Light.SCANNER, "blink")

    def leave_scan(self, event: Any) -> None:
        self._call(self.devices.scanner.stop_scanning)
        self._light(Light.SCANNER, "off")

    def enter_cash(self, event: Any) -> None:
        self._buy_flow().open()
        self._enable_validator()
        self._light(Light.VALIDATOR, "blink")

    def leave_cash(self, event: Any) -> None:
        self._call(self.devices.validator.disable)
        self._light(Light.VALIDATOR, "off")

    def enter_confirm(self, event: Any) -> None:
        if not self.quote_is_fresh():
            self._spawn(self._refresh_flow_quote(), "quote")

    def enter_sending(self, event: Any) -> None:
        flow = self._buy_flow()
        self._sending_since = self._loop.time() if self._loop is not None else None
        why = getattr(getattr(event, "event", None), "name", None)
        if flow.has_money_in() and why in ("fault", "door_opened", "service"):
            # the customer did not choose to stop: say why, and what happens to their cash
            flow.message = texts.message("message.ended_door" if why in ("door_opened", "service")
                                         else "message.ended_fault", credited=flow.credited())
        if flow.tx_id:
            flow.close_cash()
            self._spawn(self._settle(flow.tx_id, notify=True), f"send-{flow.tx_id}")

    def enter_receipt(self, event: Any) -> None:
        if self.tx_id:
            self._spawn(self._print_buy_receipt(self._buy_flow()), f"receipt-{self.tx_id}")

    # ---------------------------------------------------------------- cash-out callbacks

    def enter_sell_amount(self, event: Any) -> None:
        self.flow = SellFlow(self._flow_context, self.devices.dispenser, self.redeem_codes)
        self.flow.language = self.language

    def _cash_out_spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        self._cash_out_task = task

    def enter_sell_invoice(self, event: Any) -> None:
        flow = self.flow
        assert isinstance(flow, SellFlow)

        async def ask() -> None:
            self._post(_Trigger(await flow.request_invoice()))
        self._cash_out_spawn(ask(), f"invoice-{flow.tx_id}")

    def sell_invoice_late(self, event: Any = None) -> None:
        """The CAS did not give an address in time: the address was never shown, nothing paid."""
        if self._cash_out_task is not None:
            self._cash_out_task.cancel()
        flow = self.flow
        if isinstance(flow, SellFlow) and flow.tx_id:
            flow.message = flow.say("sell.not_available")
            if self.journal.transaction(flow.tx_id)["status"] == "open":
                self.journal.finish(flow.tx_id, "canceled")

    def enter_sell_pay(self, event: Any) -> None:
        flow = self.flow
        assert isinstance(flow, SellFlow)
        flow.showing_address()
        self._cash_out_spawn(self._watch_payment(flow), f"payment-{flow.tx_id}")

    async def _watch_payment(self, flow: SellFlow) -> None:
        """Poll the payment as the kiosk proves it, until paid, unpaid or expired."""
        while self.flow is flow and self.state == "sell_pay":
            trigger = await flow.poll_payment()
            if trigger is None and flow.seconds_left() <= 0:
                trigger = "expired"
            if trigger is not None:
                self._post(_Trigger(trigger))
                return
            self._post(_Trigger("refresh"))
            await asyncio.sleep(self.payment_poll_s)

    def sell_unpaid(self, event: Any = None) -> None:
        if isinstance(self.flow, SellFlow):
            self.flow.unpaid()

    def sell_no_proof(self, event: Any = None) -> None:
        if self._cash_out_task is not None:
            self._cash_out_task.cancel()
        flow = self.flow
        if isinstance(flow, SellFlow) and flow.verdict is None:
            flow.no_proof_yet()

    def enter_sell_dispensing(self, event: Any) -> None:
        flow = self.flow
        assert isinstance(flow, SellFlow)
        trigger = flow.start_payout()
        if trigger is not None:
            self._post(_Trigger(trigger))

    def dispense_timed_out(self, event: Any = None) -> None:
        flow = self.flow
        if isinstance(flow, (SellFlow, RedeemFlow)):
            flow.timed_out()

    async def _on_dispensed(self, event: DispenseCompleted) -> None:
        flow = self.flow
        if isinstance(flow, CashOutFlow) and flow.request_id == event.request_id:
            trigger = await flow.on_event(event)
            if trigger:
                await self._fire(trigger)
            self._publish()
            return
        # an answer nobody at the screen waits for (late, after a timeout or a restart)
        intent = next((d for d in self.journal.open_dispenses() if d["request_id"] == event.request_id), None)
        if intent is not None:
            books = self.journal.cassette_books()
            exited = {k: v for k, v in event.exited.items() if v}
            self.journal.dispense_outcome(event.request_id, event.completion.value, exited,
                                          {k: v for k, v in event.rejected.items() if v},
                                          books_value(books, exited, self.config.currency), outcome=event.outcome,
                                          uncertain=dict(event.uncertain),
                                          uncertain_value=books_value(books, event.uncertain, self.config.currency))
        self.alert("dispense_late", f"dispenser answered {event.request_id} with no one waiting: "
                   f"{dict(event.exited)} exited", "warning")

    def enter_redeem_scan(self, event: Any) -> None:
        self.flow = RedeemFlow(self._flow_context, self.devices.dispenser, self.redeem_codes)
        self.flow.language = self.language
        self._call(self.devices.scanner.start_scanning)
        self._light(Light.SCANNER, "blink")

    def enter_redeem_checking(self, event: Any) -> None:
        flow = self.flow
        assert isinstance(flow, RedeemFlow)
        text = str(event.kwargs.get("text", ""))

        async def check() -> None:
            self._post(_Trigger(await flow.claim(text)))
        self._cash_out_spawn(check(), "redeem-claim")

    def enter_cash_out_receipt(self, event: Any) -> None:
        flow = self.flow
        # a receipt once money may have moved: an address was shown, or a code paid out
        if isinstance(flow, (SellFlow, RedeemFlow)) and flow.tx_id and (
                flow.shown_address if isinstance(flow, SellFlow) else flow.dispenses):
            async def print_it() -> None:
                self._last_receipt_printed = await self._print(flow.receipt(_now()))
                self._publish()
            self._spawn(print_it(), f"receipt-{flow.tx_id}")
            # the sale as it stands now goes to the CAS outbox (idempotent by id and version)
            self._spawn(self._guarded("sale upload", self.cas.upload_transaction(self.journal.summary(flow.tx_id))),
                        f"upload-{flow.tx_id}")

    def leave_cash_out(self, event: Any) -> None:
        if self._cash_out_task is not None and not self._cash_out_task.done():
            self._cash_out_task.cancel()
        if self.flow is not None and self._journal_error is None:
            self.flow.abandon()

    async def _recover_cash_out(self) -> None:
        await CashOutRecovery(self.journal, self.devices.dispenser, self.config.currency, self.alert).run()

    def leave_buy(self, event: Any) -> None:
        # with a broken journal nothing is written: the restart's recovery closes the transaction
        if self.flow is not None and self._journal_error is None:
            self.flow.abandon()

    def enter_out_of_service(self, event: Any) -> None:
        self._light(Light.VALIDATOR, "off")
        self._light(Light.SCANNER, "off")

    def enter_login(self, event: Any) -> None:
        self._login_error = None

    def enter_menu(self, event: Any) -> None:
        self.journal.record_fact("service_menu_opened", None)
        self._spawn(self._guarded("service menu refresh", self.service_menu.refresh()), "service-refresh")

    async def leave_menu(self, event: Any) -> None:
        await self.service_menu.left()

    async def service_camera_preview(self) -> bytes:
        """The scan test's camera picture (atm.ui.facade.CameraPreview)."""
        return await self.service_menu.camera_preview()

    # ---------------------------------------------------------------- money steps

    @property
    def tx_id(self) -> str | None:
        return self.flow.tx_id if self.flow is not None else None

    def _buy_flow(self) -> BuyFlow:
        """The buy at the kiosk; notes that arrive with no buy open are judged by a
        flow with no transaction, which returns them."""
        if isinstance(self.flow, BuyFlow):
            return self.flow
        return BuyFlow(self._flow_context, self.devices.validator, self.settlement, self.pricing)

    def _enable_validator(self) -> None:
        if self.state != "buy_cash":
            return
        if not self.is_healthy() or self.journal.unresolved_on(self._validator_name()):
            # a note still on its way belongs to its own transaction: no new note until it settles
            self._call(self.devices.validator.disable)
            return
        accept = self._buy_flow().accepted_notes()
        if accept:
            self._call(self.devices.validator.enable, accept)
        else:
            self._call(self.devices.validator.disable)

    async def _note_parked(self, parked: tuple[str, Fiat] | None) -> None:
        """A stalled note was parked: tell its customer, leave the cash screen."""
        if parked is None:
            return
        if self.flow is not None and self.flow.tx_id == parked[0]:
            self.flow.message = texts.message("message.note_unconfirmed")
        await self._fire("note_resolved")

    async def _settle(self, tx_id: str, notify: bool = False) -> None:
        """Pay out what the transaction's credited cash has not yet paid for (atm.settlement)."""
        try:
            await self.settlement.settle(tx_id)
        except QuoteRefused as exc:
            if tx_id not in self._refused_quotes:
                self._refused_quotes.add(tx_id)
                self.alert("quote_refused", str(exc), "critical")
        except CasError as exc:
            log.warning("send for %s postponed: %s", tx_id, exc)
            if self.flow is not None and self.flow.tx_id == tx_id:
                self.flow.message = texts.message("message.send_postponed")
        if notify:
            # The sending screen stays long enough to be read, however fast the CAS is.
            since = self._sending_since
            if since is not None and self._loop is not None:
                left = self.sending_min_display_s - (self._loop.time() - since)
                if left > 0:
                    await asyncio.sleep(left)
            self._post(_Trigger("sent"))

    async def recover(self) -> None:
        """Finish or park every transaction a previous run left open."""
        await self._recover_cash_out()
        for tx_id in self.settlement.reopen_interrupted():
            await self._settle(tx_id)

    async def _background_loop(self) -> None:
        """Retries postponed sends and refreshes the rate, while the kiosk runs. A failing
        step is logged and alerted; the loop goes on."""
        while True:
            await asyncio.sleep(self.retry_interval)
            await self._guarded("rate refresh", self._refresh_quote())
            await self._guarded("postponed sends", self._settle_unsettled())
            if self.journal.open_dispenses() and not isinstance(self.flow, CashOutFlow):
                await self._guarded("dispense reconciliation", self._recover_cash_out())
            if self.devices.printer is not None:
                await self._guarded("printer status", self._read_printer_status())

    async def _settle_unsettled(self) -> None:
        if self._journal_error is not None:
            return
        for tx_id in self.settlement.unsettled():
            await self._settle(tx_id)

    async def _refresh_quote(self) -> None:
        before = (self.pricing.quote, self.pricing.problem)
        await self.pricing.refresh()
        if (self.pricing.quote, self.pricing.problem) != before:
            self._post(_Trigger("refresh"))     # the idle screen must not keep an old rate or "buy enabled"

    async def _refresh_flow_quote(self) -> None:
        flow = self.flow
        if isinstance(flow, BuyFlow):
            await flow.refresh_quote()
        self._post(_Trigger("refresh"))

    # ---------------------------------------------------------------- printing

    async def _read_printer_status(self) -> None:
        printer = self.devices.printer
        if printer is None:
            return
        try:
            status = await asyncio.to_thread(printer.status)
            self._paper = status.paper
            self._health["printer"] = _Health(status.state, status.detail or f"paper {status.paper.value}")
        except DeviceError as exc:
            self._paper = PaperState.UNKNOWN
            self._health["printer"] = _Health(DeviceState.OFFLINE, str(exc))

    async def _print(self, receipt: Any) -> bool:
        self.receipts.append(receipt)
        printer = self.devices.printer
        if printer is None:
            return False
        try:
            await asyncio.to_thread(printer.print_receipt, receipt)
            return True
        except DeviceError as exc:
            self.alert("printer", f"printer: {exc}", "warning")
            return False

    async def _print_buy_receipt(self, flow: BuyFlow) -> None:
        self._last_receipt_printed = await self._print(flow.receipt(_now()))
        self._publish()

    # ---------------------------------------------------------------- sensors, commands, status

    async def _on_sensor(self, event: SensorChanged) -> None:
        self.journal.record_fact("sensor", self.tx_id, sensor=event.sensor, active=event.active)
        if event.sensor == "door":
            self._door_open = event.active
            self.alert("door_open" if event.active else "door_closed", "door opened" if event.active else "door closed",
                       "warning" if event.active else "info")
            await self._fire("door_opened" if event.active else "recheck")
        elif event.sensor == "service_switch" and event.active:
            await self._fire("service")
        elif event.sensor == "tamper" and event.active:
            self.alert("tamper", "TAMPER sensor tripped", "critical")
            await self._fire("fault")

    async def remote_command(self, name: str, args: Mapping[str, Any] | None = None) -> None:
        """Commands from the CAS, after the CAS link checked what needs a signature."""
        if name == "deactivate":
            self._set_active(False, by="cas")
            self._post(_Trigger("deactivate"))
        elif name == "activate":
            self._set_active(True, by="operator")
            self._post(_Trigger("activate"))
        elif name == "unpair":
            self._set_active(False, by="operator (unpaired)")
            self._post(_Trigger("deactivate"))
        else:
            self.alert("command", f"ignored unknown remote command {name!r}", "warning")

    def settings_changed(self, settings: KioskSettings) -> None:
        """A new signed bundle is in force (called by the CAS link)."""
        # good news, not an alert: the CAS section of the service screen shows the version
        log.info("signed configuration version %s in force", settings.version)
        try:
            self.journal.record_fact("settings_accepted", None, version=settings.version)
        except JournalWriteError as exc:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._post, _JournalFailed(str(exc)))
        self.pricing.recheck()                  # the quote in force must pass the new bounds
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._post, _Trigger("recheck"))
            self._loop.call_soon_threadsafe(self._post, _Trigger("refresh"))

    def _set_active(self, active: bool, by: str) -> None:
        self._active = active
        self.journal.record_fact("activated" if active else "deactivated", None, by=by)
        self.alert("activation", f"kiosk {'activated' if active else 'deactivated'} by {by}", "info")

    def _load_active(self) -> bool:
        last = self.journal.last_fact(("activated", "deactivated"))
        return last is None or last["kind"] != "deactivated"

    def alert(self, kind: str, text: str, severity: str = "warning") -> None:
        """The one way to tell the operator (atm.operator_alerts). A journal write that fails
        here is remembered, so the kiosk starts no new transaction; the alert still goes to the CAS."""
        failed = self._alerts.send(self.cas, kind, text, severity, self.tx_id,
                                   journal_works=self._journal_error is None)
        if failed is not None:
            self._journal_error = self._journal_error or failed

    def device_health(self) -> dict[str, _Health]:
        return dict(self._health)

    def service_status(self) -> dict[str, Any]:
        """Everything the service menu shows (atm.service_menu builds it), with the
        dispenser's cassette books."""
        status = self.service_menu.status()
        if isinstance(status.get("cash"), dict):
            status["cash"]["cassettes"] = self._cassette_status()
        else:
            status["cassettes"] = self._cassette_status()
        return status

    def _cassette_status(self) -> dict[str, Any]:
        """The dispenser's books for the service menu: per cassette count and status."""
        books = self.journal.cassette_books()
        return {"units": [{"cassette": u.id, "denomination": u.denomination, "count": u.count,
                           "status": u.status.value} for u in books.units],
                "reject_bin": self.journal.reject_bin(),
                "mismatches": [m.detail for m in books.mismatches]}

    # ---------------------------------------------------------------- screens

    # Read-only views of the kiosk's state for the screen composer (atm.screens).
    def seconds_left(self) -> int | None:
        """Seconds left on the current screen's timer; None when it has none. Counted from
        the deadline, so a screen sent again mid-countdown shows the right number."""
        if self._deadline is None or self._loop is None:
            return None
        return max(0, round(self._deadline - self._loop.time()))

    @property
    def last_receipt_printed(self) -> bool | None:
        return self._last_receipt_printed

    @property
    def login_error(self) -> dict[str, Any] | None:
        return self._login_error

    @property
    def denominations(self) -> list[Fiat]:
        return list(self._denominations)

    @property
    def paper(self) -> PaperState:
        return self._paper

    def _publish(self) -> None:
        self._seq += 1
        name, data = self.screens.compose(self.state)     # atm.screens: reads, never moves money
        self._screen = {"screen": name, "data": data, "seq": self._seq}
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()      # a slow page gets the latest screens, not a stalled kiosk
            queue.put_nowait(self._screen)

    async def _read_denominations(self) -> None:
        try:
            notes = await asyncio.to_thread(lambda: list(self.devices.validator.denominations))
        except (DeviceError, AttributeError) as exc:
            log.warning("the validator's notes cannot be read: %s", exc)
            return
        if notes != self._denominations:
            self._denominations = notes
            self._publish()

    def out_of_service_reason(self) -> str:
        """Why the kiosk is out of service, in a technician's words (service menu, alerts)."""
        if self.state == "out_door":
            return "the service door is open"
        if self.state == "out_deactivated":
            return "deactivated (remotely by the operator, or by a technician)"
        return self._fault_reason()

    def _fault_reason(self) -> str:
        if self._journal_error is not None:
            return ("The kiosk cannot record transactions (journal write failed); it takes no cash. "
                    "A technician must free disk space and restart it.")
        for kind in _REQUIRED:
            health = self._health.get(kind)
            if health and health.state not in (DeviceState.ONLINE, DeviceState.BUSY):
                return f"{kind}: {health.state.value}" + (f" ({health.detail})" if health.detail else "")
        if self._cashbox != UnitStatus.OK:
            return f"cashbox {self._cashbox.value}"
        if self._paper == PaperState.OUT:
            return "receipt printer out of paper"
        return "a device needs attention"

    # ---------------------------------------------------------------- small things

    def _call(self, fn: Any, *args: Any) -> None:
        """Device commands from callbacks: quick, non-blocking by contract; a failure is an alert."""
        try:
            fn(*args)
        except DeviceError as exc:
            self.alert("device", f"{getattr(fn, '__qualname__', fn)} failed: {exc}", "warning")

    def _light(self, light: Light, mode: str) -> None:
        if self.devices.indicators is not None:
            self._call(self.devices.indicators.set_light, light, mode)



def _now() -> datetime:
    return datetime.now(timezone.utc)


def _refused(why: Mapping[str, Any], detail: str) -> dict[str, Any]:
    """A refused action: `message` is what the page shows (in the customer's language),
    `error` the same for a log line or a test, in English."""
    return {"ok": False, "error": detail, "message": dict(why)}
