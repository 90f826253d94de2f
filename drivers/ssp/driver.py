"""Host side of an ITL SSP / eSSP note validator over any pyserial URL.

One thread owns the port: it initialises the unit (SYNC, then the eSSP key exchange when
`encrypted`, then everything else), polls it, holds notes in escrow until the application
decides, records credits through the CreditRecorder before acknowledging them, and turns
poll events into hal events. The application's calls (enable, stack, resolve_note...) only
set intent. The line is 8N2, as ITL's manual and host libraries set it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import serial

from drivers.ssp import crypto
from drivers.ssp.frames import (
    ENCRYPTED_PACKET,
    UNIT_TYPES,
    Command,
    CommandRefused,
    Event,
    FrameDecoder,
    PollEvent,
    PollReplyWarning,
    Reply,
    SetupInfo,
    SspError,
    decode_poll_reply,
    encode_frame,
    encode_inhibits,
    parse_serial_number,
    parse_setup_reply,
    reject_reason,
    split_reply,
)
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError, ProtocolError
from hal.events import (
    emit_safely,
    CashboxChanged,
    DeviceStatusChanged,
    Event as HalEvent,
    EventSink,
    FraudDetected,
    NoteCredited,
    NoteEscrowed,
    NoteOutcomeUnknown,
    NoteRejected,
    NoteReturned,
    NoteStacked,
)
from hal.device import DeviceInfo
from hal.money import Fiat
from hal.status import DeviceState, UnitStatus
from hal.validator import BillValidator, CreditRecorder

log = logging.getLogger(__name__)

HOST_PROTOCOL_VERSION = 6
# Events a unit reports once per happening. A poll reply carrying one of them cannot come back
# byte for byte two polls later (a new note needs several polls and a host decision), so such a
# copy is a late duplicate of the earlier reply, not an answer: taking it would credit twice.
_ONE_SHOT = {Event.CREDIT, Event.STACKED, Event.REJECTED, Event.FRAUD_ATTEMPT, Event.CASHBOX_REPLACED,
             Event.SLAVE_RESET, Event.NOTE_CLEARED_FROM_FRONT, Event.NOTE_CLEARED_INTO_CASHBOX}
_CONDITION_CODES = {"0xEA": "safe jam", "0xE9": "unsafe jam", "0xE7": "stacker full", "0xE3": "cashbox removed",
                    "0xE0": "note path open"}
# Conditions a unit repeats in every poll while they last: they are state, not news.
_PERSISTENT = {Event.SAFE_JAM, Event.UNSAFE_JAM, Event.STACKER_FULL, Event.CASHBOX_REMOVED, Event.NOTE_PATH_OPEN}
# Poll events that say nothing about a note moving (the watchdog's "no progress").
_IDLE_ONLY = {Event.DISABLED, Event.NOTE_PATH_OPEN}
# Events of the ticket printer an NV200 may carry: known sizes, nothing for a note validator to do.
_TICKET_PRINTER = {Event.TICKET_PRINTING, Event.TICKET_PRINTED, Event.TICKET_PRINTING_ERROR,
                   Event.TICKET_IN_BEZEL, Event.PRINT_HALTED, Event.PRINTED_TO_CASHBOX,
                   Event.BARCODE_TICKET_ACK, Event.CHANNEL_DISABLE, Event.INITIALISING}
_PLAIN_COMMANDS = {Command.SYNC, Command.SET_GENERATOR, Command.SET_MODULUS, Command.REQUEST_KEY_EXCHANGE}


class _NoReply(Exception):
    def __init__(self, garbage: bool) -> None:
        self.garbage = garbage


@dataclass
class _Escrow:
    channel: int
    value: Fiat
    since: float
    decision: str | None = None       # None (hold), "stack", "return"
    reason: str = ""
    sent: bool = False                 # the decision has reached the device
    reset_seen: bool = False           # told to stack, then the unit reset before settling it


@dataclass
class _Exchange:
    """The last frame sent, kept so it can be sent again byte for byte."""

    raw: bytes
    seq: int
    data: bytes
    counter: int | None


class SspValidator(BillValidator):
    def __init__(self, port: str, *, name: str = "validator", currency: str | None = None,
                 denominations: Mapping[str, int] | None = None, address: int = 0, baudrate: int = 9600,
                 encrypted: bool = False, fixed_key: int = crypto.DEFAULT_FIXED_KEY,
                 poll_interval: float = 0.2, reply_timeout: float = 0.5, retries: int = 3,
                 escrow_timeout: float = 20.0, stuck_timeout: float = 10.0,
                 resolve_timeout: float = 3.0) -> None:
        self.port = port
        self.name = name
        self._currency_wanted = currency
        self._overrides = self._check_overrides(denominations)
        self.address = address
        self.baudrate = baudrate
        if not isinstance(encrypted, bool):
            raise ConfigurationError(
                f"validator encrypted = {encrypted!r}: expected true or false (true: eSSP key exchange first, "
                "then every command encrypted)")
        for key, value in (("poll_interval", poll_interval), ("reply_timeout", reply_timeout),
                           ("escrow_timeout", escrow_timeout), ("stuck_timeout", stuck_timeout),
                           ("resolve_timeout", resolve_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"validator {key} = {value!r}: expected a number of seconds above 0")
        self.encrypted = encrypted
        self.fixed_key = fixed_key
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.escrow_timeout = escrow_timeout
        self.stuck_timeout = stuck_timeout
        # resolve_note(): how long the unit gets to settle the note on its own, and again after
        # the reset the driver sends to make it say where the note went.
        self.resolve_timeout = resolve_timeout

        self._serial: serial.SerialBase | None = None
        self._decoder = FrameDecoder()
        self._sink: EventSink | None = None
        self._recorder: CreditRecorder | None = None
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

        self._seq = 1
        self._last: _Exchange | None = None
        self._accepted: dict[int, tuple[_Exchange, bytes]] = {}     # per sequence bit: last answer taken
        self._session: crypto.EsspSession | None = None
        self._setup: SetupInfo | None = None
        self._serial_number = ""
        self._firmware_id = ""
        self._channels: dict[int, int] = {}
        self._currency = currency or ""

        self._state = DeviceState.STARTING
        self._status_key: tuple[DeviceState, str | None] | None = None
        self._want_enabled = False
        self._accept: set[int] | None = None
        self._applied: tuple[bool, frozenset[int]] | None = None
        self._applied_event = threading.Condition(self._lock)
        self._escrow: _Escrow | None = None
        # The note told to stack whose credit (or power-up clearing) has not come yet.
        self._in_stack: _Escrow | None = None
        self._resolve_asked = False
        self._resolve_until: float | None = None
        self._resolve_reset_sent = False
        self._warned_codes: set[int] = set()
        self._returning: tuple[Fiat | None, str] | None = None
        self._last_credit: Fiat | None = None
        self._need_init = False
        self._replay = False
        self._skip_events = 0
        self._offline_since: float | None = None
        self._transient: tuple[str, float] | None = None
        self._conditions: set[int] = set()
        # Commands an event calls for (reject an unknown note, ask the reject reason) wait
        # until the whole poll reply is handled: sending them earlier would move the
        # sequence bit and spoil a resend of that poll if a credit could not be recorded.
        self._deferred: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ hal surface

    def set_credit_recorder(self, recorder: CreditRecorder) -> None:
        self._recorder = recorder

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def denominations(self) -> list[Fiat]:
        with self._lock:
            return [Fiat(v, self._currency) for _, v in sorted(self._channels.items())] if self._currency else []

    @property
    def currency(self) -> str | None:
        """The unit's currency (from setup request), or the configured one before open."""
        return self._currency or None

    @property
    def escrow_table(self) -> dict[str, Fiat]:
        """Channel number (as the NoteEscrowed code) -> note value, as used for decisions."""
        with self._lock:
            if not self._currency:
                return {}
            return {str(ch): Fiat(v, self._currency) for ch, v in sorted(self._channels.items())}

    def info(self) -> DeviceInfo:
        setup = self._setup
        unit = UNIT_TYPES.get(setup.unit_type, f"unit type 0x{setup.unit_type:02X}") if setup else ""
        firmware = ""
        if setup:
            fw = setup.firmware
            firmware = f"{int(fw[:2])}.{fw[2:]}" if fw.isdigit() and len(fw) == 4 else fw
        extra = {"protocol": "ITL SSP" + (" (eSSP)" if self.encrypted else ""), "port": self.port}
        if setup:
            extra.update(unit_type=unit, protocol_version=str(setup.protocol_version), currency=setup.currency)
        if self._firmware_id:
            extra["firmware_id"] = self._firmware_id
        model = self._firmware_id.split(" ")[0] if self._firmware_id else unit
        return DeviceInfo(model=model, firmware=firmware, serial=self._serial_number, extra=extra)

    def open(self, sink: EventSink) -> None:
        if self._thread:
            return
        self._sink = sink
        self._in_stack = None
        self._resolve_until = None
        self._open_port()
        self._set_status(DeviceState.STARTING, f"initialising SSP validator on {self.port}")
        try:
            self._initialise()
        except (DeviceError, ConfigurationError):
            self._close_port()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"ssp-{self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread:
            self._stop.set()
            self._wake.set()
            thread.join(timeout=5 + self.reply_timeout * (self.retries + 1))
            if self._serial and not self._need_init and self._offline_since is None:
                try:
                    self._command(bytes([Command.DISABLE]))
                except DeviceError as exc:
                    log.info("disable at close failed on %s: %s", self.port, exc)
        self._close_port()

    def enable(self, accept: Iterable[Fiat] | None = None) -> None:
        """Ask for notes (only `accept` values); the poll thread tells the unit at its next
        cycle. Does not wait: the kiosk calls this from its event loop."""
        with self._lock:
            if accept is None:
                self._accept = None
            else:
                wanted = {(f.minor, f.currency) for f in accept}
                self._accept = {ch for ch, v in self._channels.items() if (v, self._currency) in wanted}
            self._want_enabled = True
        self._wake.set()

    def disable(self) -> None:
        with self._lock:
            self._want_enabled = False
        self._wake.set()

    def wait_applied(self, timeout: float = 5.0) -> bool:
        """Block until the unit carries the enable state and inhibit mask last asked for
        (True), or `timeout` passes (False). For bench tools and tests, not the kiosk loop."""
        deadline = time.monotonic() + timeout
        with self._applied_event:
            while self._applied != self._target():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread:
                    return self._applied == self._target()
                self._applied_event.wait(min(remaining, 0.1))
        return True

    def stack(self) -> None:
        self._decide("stack", "")

    def return_note(self) -> None:
        self._decide("return", "returned by host")

    def resolve_note(self) -> None:
        """Ask the unit what became of the note told to stack whose credit never came. SSP has
        no "where is the note" command: the answer is in the polls. A unit that resets (by
        itself, or because the driver resets it once `resolve_timeout` passes with no word)
        clears its note path at power-up and says where the note went: 0xE2 into the cashbox
        (credited, through the recorder), 0xE1 back at the front (returned). Exactly one of
        NoteCredited, NoteReturned, NoteOutcomeUnknown answers."""
        with self._lock:
            self._resolve_asked = True
        self._wake.set()

    # ------------------------------------------------------------------ intent plumbing

    def _decide(self, decision: str, reason: str) -> None:
        with self._lock:
            escrow = self._escrow
            if escrow is None or escrow.decision is not None:
                log.warning("%s: %s asked but no note waits for a decision", self.name, decision)
                return
            escrow.decision, escrow.reason = decision, reason
        self._wake.set()

    def _target(self) -> tuple[bool, frozenset[int]]:
        channels = set(self._channels) if self._accept is None else self._accept
        return self._want_enabled, frozenset(channels)

    # ------------------------------------------------------------------ wire

    def _open_port(self) -> None:
        try:
            # 8N2: ITL's manual and host libraries use two stop bits; with one, a real unit
            # sees framing errors at the end of long frames.
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_TWO, timeout=min(0.05, self.reply_timeout), write_timeout=2)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise PortError(f"cannot open SSP validator port {self.port}: {exc}") from exc

    def _close_port(self) -> None:
        if self._serial:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None

    def _command(self, data: bytes, *, replay: bool = False) -> bytes:
        """Send one command and return the reply payload after OK (CommandRefused otherwise).
        Resends the very same frame on a timeout or a bad reply; DeviceTimeout/ProtocolError
        once the retries are used up. `replay` sends the previous frame again instead."""
        if replay:
            if self._last is None:
                raise DeviceError("nothing to send again")
            exchange = self._last
        else:
            exchange = self._build(data)
            self._last = exchange
        garbage = False
        for attempt in range(self.retries + 1):
            try:
                reply = self._exchange(exchange)
            except _NoReply as no:
                garbage = garbage or no.garbage
                log.debug("%s: no good reply to %s (try %d)", self.port, exchange.raw.hex(" "), attempt + 1)
                continue
            self._seq = exchange.seq ^ 1
            return split_reply(reply, exchange.data[0])
        tries = self.retries + 1
        if garbage:
            raise ProtocolError(
                f"SSP validator on {self.port} answered {describe(exchange.data)} only with garbage "
                f"(bad CRC or broken frames) in {tries} tries: check baud rate, cable and address")
        raise DeviceTimeout(
            f"SSP validator on {self.port} did not answer {describe(exchange.data)} in {tries} tries "
            f"({self.reply_timeout:g} s each): check power, cable and port")

    def _build(self, data: bytes) -> _Exchange:
        counter = None
        payload = data
        if self._session is not None and data[0] not in _PLAIN_COMMANDS:
            payload, counter = self._session.seal_command(data)
        return _Exchange(encode_frame(self._seq, self.address, payload), self._seq, bytes(data), counter)

    def _exchange(self, exchange: _Exchange) -> bytes:
        port = self._serial
        if port is None:
            raise PortError(f"SSP validator port {self.port} is not open")
        try:
            port.reset_input_buffer()
            self._decoder.reset()
            self._decoder.take_errors()
            port.write(exchange.raw)
            port.flush()
            deadline = time.monotonic() + self.reply_timeout
            garbage = False
            while time.monotonic() < deadline:
                chunk = port.read(max(1, port.in_waiting))
                if not chunk:
                    continue
                for frame in self._decoder.feed(chunk):
                    if frame.address != self.address or frame.seq != exchange.seq:
                        continue        # a stale or doubled reply to an earlier frame
                    if self._late_copy(frame.data, exchange):
                        log.warning("%s: ignored a late copy of an earlier reply: %s", self.port, frame.data.hex(" "))
                        continue
                    reply = self._unwrap(frame.data, exchange)
                    self._accepted[exchange.seq] = (exchange, frame.data)
                    return reply
                if self._decoder.take_errors():
                    garbage = True
            raise _NoReply(garbage or self._decoder.in_frame)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"SSP validator port {self.port} failed: {exc}") from exc

    def _late_copy(self, data: bytes, exchange: _Exchange) -> bool:
        previous = self._accepted.get(exchange.seq)
        if previous is None or previous[0] is exchange or previous[1] != data:
            return False                # a resend of the same frame rightly gets the same answer
        if data[:1] == bytes([ENCRYPTED_PACKET]):
            return True                 # random padding and the counter make real answers differ
        if exchange.data[:1] != bytes([Command.POLL]) or previous[0].data[:1] != bytes([Command.POLL]):
            return False
        events = decode_poll_reply(data[1:]).events if data[:1] == bytes([Reply.OK]) else ()
        return any(e.code in _ONE_SHOT or (e.code == Event.READ and e.channel) for e in events)

    def _unwrap(self, data: bytes, exchange: _Exchange) -> bytes:
        if exchange.counter is None or data[:1] != bytes([ENCRYPTED_PACKET]):
            if exchange.counter is not None and data[:1] == bytes([Reply.KEY_NOT_SET]):
                self._need_init = True
            return data
        assert self._session is not None
        try:
            return self._session.open_reply(data, exchange.counter)
        except crypto.EncryptionError as exc:
            log.warning("%s: %s", self.port, exc)
            raise _NoReply(True) from exc

    # ------------------------------------------------------------------ initialisation

    def _initialise(self) -> None:
        # SYNC makes the unit forget its last reply, so nothing from before can be asked again.
        self._replay = False
        self._skip_events = 0
        self._deferred = []
        self._accepted = {}
        self._session = None
        self._seq = 1
        self._command(bytes([Command.SYNC]))
        self._seq = 0
        # GA973's order: SYNC, key exchange, then the rest, all encrypted. A unit with
        # encryption enforced answers KEY NOT SET to any plain command before the key exists.
        if self.encrypted:
            self._key_exchange()
        try:
            self._command(bytes([Command.HOST_PROTOCOL_VERSION, HOST_PROTOCOL_VERSION]))
        except CommandRefused as exc:
            if exc.reply == Reply.KEY_NOT_SET and not self.encrypted:
                raise ConfigurationError(
                    f"SSP validator on {self.port} has encryption enforced (it answered KEY NOT SET to a plain "
                    "command): set encrypted = true for this validator") from exc
            raise
        setup = parse_setup_reply(self._command(bytes([Command.SETUP_REQUEST])))
        if self._currency_wanted and setup.currency != self._currency_wanted:
            raise ConfigurationError(
                f"SSP validator on {self.port} is set up for {setup.currency}, configuration says "
                f"currency = {self._currency_wanted}: fit the right dataset or fix the configuration")
        serial_number = parse_serial_number(self._command(bytes([Command.SERIAL_NUMBER])))
        try:
            firmware_id = self._command(bytes([Command.GET_FIRMWARE_VERSION])).decode("ascii", "replace").strip()
        except CommandRefused:
            firmware_id = ""
        with self._lock:
            self._setup = setup
            self._currency = setup.currency
            self._serial_number = str(serial_number)
            self._firmware_id = firmware_id
            self._channels = dict(self._overrides) if self._overrides is not None else setup.channel_table()
            self._applied = None
            self._need_init = False
            self._conditions = set()
        self._apply_intent()
        self._offline_since = None
        self._set_status(DeviceState.ONLINE, "validator ready")

    def _key_exchange(self) -> None:
        host = crypto.KeyExchange.new_host()
        try:
            self._command(bytes([Command.SET_GENERATOR]) + crypto.u64(host.generator))
            self._command(bytes([Command.SET_MODULUS]) + crypto.u64(host.modulus))
            reply = self._command(bytes([Command.REQUEST_KEY_EXCHANGE]) + crypto.u64(host.intermediate))
            negotiated = host.shared_key(crypto.read_u64(reply, "slave intermediate key"))
        except CommandRefused as exc:
            if exc.reply == Reply.UNKNOWN_COMMAND:
                raise ConfigurationError(
                    f"SSP validator on {self.port} does not know the eSSP key exchange ({exc}): "
                    "set encrypted = false for this validator") from exc
            raise
        except crypto.KeyExchangeError as exc:
            raise ProtocolError(f"SSP validator on {self.port}: key exchange failed: {exc}") from exc
        self._session = crypto.EsspSession(crypto.aes_key(negotiated, self.fixed_key))

    def _apply_intent(self) -> None:
        with self._lock:
            target = self._target()
        if target == self._applied:
            return
        enabled, channels = target
        self._command(encode_inhibits(set(channels), max(16, max(self._channels, default=0))))
        self._command(bytes([Command.ENABLE if enabled else Command.DISABLE]))
        with self._applied_event:
            self._applied = target
            self._applied_event.notify_all()

    # ------------------------------------------------------------------ poll loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step_resolve()
                self._cycle()
            except CommandRefused as exc:
                self._after_refusal(exc)
            except PortError as exc:
                # The port itself went away (USB adapter unplugged, simulator gone): drop it
                # and open it afresh, then initialise, once it is back.
                self._close_port()
                self._need_init = True
                self._went_offline(exc)
            except (DeviceTimeout, ProtocolError) as exc:
                self._went_offline(exc)
            except ConfigurationError as exc:
                self._set_status(DeviceState.HARDWARE_ERROR, str(exc))
            except DeviceError as exc:
                log.warning("%s: %s", self.name, exc)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _step_resolve(self) -> None:
        """resolve_note() in the poll thread. The polls themselves carry the answer (credit,
        0xE2, 0xE1, rejected); this only starts the clock, resets a unit that stays silent
        about the note once, and answers "unknown" when nothing settles it in time."""
        now = time.monotonic()
        with self._lock:
            asked, self._resolve_asked = self._resolve_asked, False
            escrow = self._escrow
        # A stack decision the unit has not been given yet (it was offline) counts too.
        pending = self._in_stack or (escrow if escrow is not None and escrow.decision == "stack" else None)
        if asked:
            if pending is None:
                self._resolve_until = None
                self._emit(NoteOutcomeUnknown(
                    device=self.name, detail="no note told to stack is outstanding at the validator driver "
                    "(it was settled already, or the driver restarted since): reconcile against the journal"))
                return
            if self._resolve_until is None:
                self._resolve_until = now + self.resolve_timeout
                self._resolve_reset_sent = False
            return
        if self._resolve_until is None:
            return
        if pending is None:
            self._resolve_until = None          # settled by a poll event: that event was the answer
            return
        if now < self._resolve_until:
            return
        if not self._resolve_reset_sent and not pending.reset_seen and self._offline_since is None:
            # The unit has not said where the note is. A reset makes it clear its note path at
            # power-up and report where the note went (0xE2 cashbox / 0xE1 front).
            self._resolve_reset_sent = True
            self._resolve_until = now + self.resolve_timeout
            self._transient = None
            with self._lock:
                self._escrow = None
            log.warning("%s: note of %s told to stack never settled; resetting the validator to learn where "
                        "it went", self.name, pending.value)
            self._command(bytes([Command.RESET]))
            return
        self._in_stack = None
        self._resolve_until = None
        why = ("the validator reset and did not say where the note went" if pending.reset_seen or
               self._resolve_reset_sent else "the validator does not answer")
        self._emit(NoteOutcomeUnknown(device=self.name, value=pending.value, code=str(pending.channel),
                                      detail=f"{why}: count the cashbox and reconcile"))

    def _went_offline(self, exc: Exception) -> None:
        if self._offline_since is None:
            self._offline_since = time.monotonic()
        self._replay = True
        self._set_status(DeviceState.OFFLINE, str(exc))

    def _cycle(self) -> None:
        if self._serial is None:
            self._open_port()
        if self._need_init:
            self._initialise()
            return
        if self._replay:
            # Offline or a credit not yet recorded: the same frame, same sequence bit, so a
            # unit that already answered repeats that answer instead of acting twice.
            self._replay = False
            command = self._last.data if self._last else bytes([Command.POLL])
            try:
                payload = self._command(command, replay=True)
            except CommandRefused as exc:
                self._after_refusal(exc)
                return
            if self._offline_since is not None:
                self._offline_since = None
                self._set_status(DeviceState.ONLINE, "validator answering again")
            if command[0] == Command.POLL:
                self._handle_poll(payload)
            return
        with self._lock:
            escrow = self._escrow
        if escrow is None:
            # Enable/disable and inhibits wait while a note is in escrow or on its way: the
            # application's stack()/return_note() settles that note first (hal contract).
            self._apply_intent()
        self._watchdog()
        if escrow is not None and not escrow.sent:
            self._drive_escrow(escrow)
            return
        try:
            payload = self._command(bytes([Command.POLL]))
        except CommandRefused as exc:
            self._after_refusal(exc)
            return
        self._handle_poll(payload)

    def _after_refusal(self, exc: CommandRefused) -> None:
        if exc.reply == Reply.KEY_NOT_SET or self._need_init:
            self._need_init = True
            return
        log.warning("%s: %s", self.name, exc)

    def _drive_escrow(self, escrow: _Escrow) -> None:
        now = time.monotonic()
        if escrow.decision is None and now - escrow.since > self.escrow_timeout:
            with self._lock:
                escrow.decision, escrow.reason = "return", f"no decision within {self.escrow_timeout:g} s"
        if escrow.decision is None:
            try:
                self._command(bytes([Command.HOLD]))
            except CommandRefused:
                # The unit no longer holds it (its own timeout, a reset): polls will say where it
                # went, and the watchdog acts if they never do.
                escrow.sent = True
                self._transient = ("holding", now)
            return
        if escrow.decision == "stack":
            escrow.sent = True
            self._in_stack = escrow
            self._transient = ("stacking", now)
            payload = self._command(bytes([Command.POLL]))
            self._handle_poll(payload)
            return
        try:
            self._command(bytes([Command.REJECT]))
        except CommandRefused as exc:
            log.warning("%s: reject refused (%s); polling to see where the note went", self.name, exc)
        escrow.sent = True
        self._returning = (escrow.value, escrow.reason)
        self._transient = ("rejecting", now)

    # ------------------------------------------------------------------ events

    def _handle_poll(self, payload: bytes) -> None:
        reply = decode_poll_reply(payload)
        events = reply.events
        skip, self._skip_events = self._skip_events, 0
        persistent: set[int] = set()
        for index, event in enumerate(events):
            if index < skip:
                continue
            if event.code in _PERSISTENT:
                persistent.add(event.code)
            if not self._handle_event(event):
                # The credit is not durable: ask for the same reply again, resume after what we did.
                self._skip_events = index
                self._replay = True
                return
        self._settle_conditions(persistent)
        deferred, self._deferred = self._deferred, []
        for action in deferred:
            action()
        if reply.warning is not None:
            self._warn_unread(reply.warning)
        if all(e.code in _IDLE_ONLY for e in events):
            # An idle unit says nothing (or only "disabled"); keep watching only while a
            # decision we sent has not shown up yet.
            escrow = self._escrow
            if escrow is None or not escrow.sent:
                self._transient = None
        if any(e.code == Event.SLAVE_RESET for e in events):
            self._need_init = True

    def _warn_unread(self, warning: PollReplyWarning) -> None:
        # Every event before it was handled. A unit repeats a condition in every poll, so the
        # technician hears of each code once, not once per poll; the unit itself may be fine,
        # so the state stays.
        if warning.code in self._warned_codes:
            log.debug("%s: %s", self.name, warning)
            return
        self._warned_codes.add(warning.code)
        log.warning("%s: %s", self.name, warning)
        self._emit(DeviceStatusChanged(
            device=self.name, state=self._state, code="unreadable",
            detail=(f"validator sent event 0x{warning.code:02X}, which this driver cannot size (firmware newer "
                    f"than the driver, or a protocol above {HOST_PROTOCOL_VERSION}?); the events after it in "
                    f"such a reply are not read: {warning}")))

    def _value(self, channel: int) -> Fiat | None:
        value = self._channels.get(channel)
        return Fiat(value, self._currency) if value and self._currency else None

    def _handle_event(self, event: PollEvent) -> bool:
        code, now = event.code, time.monotonic()
        if code == Event.READ:
            if event.channel == 0:
                if self._transient is None or self._transient[0] != "reading":
                    self._transient = ("reading", now)
                return True
            self._transient = None
            if self._state == DeviceState.FRAUD_ATTEMPT:
                self._set_status(DeviceState.ONLINE, "validator reading notes again")
            self._on_escrow(event.channel)
        elif code == Event.CREDIT:
            return self._on_credit(event.channel)
        elif code == Event.STACKING:
            if self._transient is None or self._transient[0] != "stacking":
                self._transient = ("stacking", now)
        elif code == Event.STACKED:
            self._transient = None
            value, self._last_credit = self._last_credit, None
            self._emit(NoteStacked(device=self.name, value=value))
        elif code == Event.REJECTING:
            if self._transient is None or self._transient[0] != "rejecting":
                self._transient = ("rejecting", now)
        elif code == Event.REJECTED:
            self._on_rejected()
        elif code in (Event.SAFE_JAM, Event.UNSAFE_JAM):
            self._transient = None
            detail = ("safe jam: a note is stuck inside the validator, out of the customer's reach; "
                      "open the validator and clear the note path" if code == Event.SAFE_JAM else
                      "unsafe jam: a note is stuck at the bezel where it can be pulled out; "
                      "clear the bezel and the note path")
            self._set_status(DeviceState.HARDWARE_ERROR, detail, f"0x{code:02X}")
        elif code == Event.STACKER_FULL:
            if Event.STACKER_FULL not in self._conditions:
                self._emit(CashboxChanged(device=self.name, status=UnitStatus.FULL))
            self._set_status(DeviceState.USER_ERROR, "stacker full: empty the cashbox", "0xE7")
        elif code == Event.CASHBOX_REMOVED:
            if Event.CASHBOX_REMOVED not in self._conditions:
                self._emit(CashboxChanged(device=self.name, status=UnitStatus.MISSING))
            self._set_status(DeviceState.USER_ERROR, "cashbox removed: put the cashbox back", "0xE3")
        elif code == Event.CASHBOX_REPLACED:
            self._conditions.discard(Event.CASHBOX_REMOVED)     # reported here, not again as "cleared"
            self._emit(CashboxChanged(device=self.name, status=UnitStatus.OK))
        elif code == Event.DISABLED:
            applied = self._applied
            if applied is not None and applied[0] and self._escrow is None:
                # The unit turned itself off although the kiosk wants notes: say so and
                # switch it back on at the next cycle.
                log.warning("%s: validator reports disabled while it should accept; enabling again", self.name)
                self._emit(DeviceStatusChanged(device=self.name, state=self._state, code="0xE8",
                                               detail="validator disabled itself; enabling it again"))
                with self._applied_event:
                    self._applied = None
        elif code == Event.FRAUD_ATTEMPT:
            detail = f"fraud attempt on channel {event.channel} (note pulled back on a string or similar)"
            self._emit(FraudDetected(device=self.name, detail=detail))
            self._set_status(DeviceState.FRAUD_ATTEMPT, detail, "0xE6")
        elif code == Event.NOTE_PATH_OPEN:
            # Repeated in every poll while the lid is open: a condition, reported once.
            self._set_status(DeviceState.USER_ERROR,
                             "note path open: the validator takes no note until its lid is closed", "0xE0")
        elif code == Event.BARCODE_TICKET_VALIDATED:
            # A barcode ticket waits in escrow; a poll would accept it. This kiosk takes cash only.
            log.warning("%s: a barcode ticket was inserted; giving it back", self.name)
            self._deferred.append(self._return_ticket)
        elif code in _TICKET_PRINTER:
            log.debug("%s: %s", self.name, event.name)
        elif code == Event.SLAVE_RESET:
            with self._lock:
                self._escrow = None
            if self._in_stack is not None:
                self._in_stack.reset_seen = True
            self._transient = None
            self._set_status(DeviceState.STARTING, "validator reset itself (power cut or watchdog); re-initialising",
                             "0xF1")
        elif code == Event.NOTE_CLEARED_FROM_FRONT:
            pending, self._in_stack = self._in_stack, None
            value = self._value(event.channel) or (pending.value if pending else None)
            self._emit(NoteReturned(device=self.name, value=value,
                                    reason="note given back at power-up (cleared from the front)"))
        elif code == Event.NOTE_CLEARED_INTO_CASHBOX:
            return self._on_cleared_into_cashbox(event.channel)
        return True

    def _on_cleared_into_cashbox(self, channel: int) -> bool:
        """0xE2: at power-up the unit moved a note from its stack path into the cashbox. For a
        note told to stack whose credit never came this is its settled event; for one already
        credited it only finishes the stacking."""
        pending = self._in_stack
        if pending is None and self._last_credit is not None:
            value, self._last_credit = self._last_credit, None
            self._emit(NoteStacked(device=self.name, value=value))
            return True
        value = self._value(channel) or (pending.value if pending else None)
        if value is None:
            self._in_stack = None
            detail = (f"a note (channel {channel}) went into the cashbox at power-up; its value is unknown: "
                      "count the cashbox and reconcile against the journal")
            if pending is not None:
                self._emit(NoteOutcomeUnknown(device=self.name, value=None, code=str(channel), detail=detail))
            else:
                self._emit(DeviceStatusChanged(device=self.name, state=self._state, code="0xE2", detail=detail))
            return True
        code = str(channel) if channel else (str(pending.channel) if pending else "0")
        event = NoteCredited(device=self.name, value=value, code=code)
        if not self._record(event):
            return False
        self._in_stack = None
        self._emit(event)
        self._emit(NoteStacked(device=self.name, value=value))
        return True

    def _record(self, event: NoteCredited) -> bool:
        """Pass a settled note to the CreditRecorder; False if it is not durable (then the
        reply is asked for again and nothing is acknowledged)."""
        if self._recorder is None:
            return True
        try:
            self._recorder(event)
        except Exception as exc:  # the recorder is the application's; any failure means "not durable"
            log.error("%s: credit of %s not recorded (%s); asking the validator again", self.name, event.value, exc)
            return False
        return True

    def _return_ticket(self) -> None:
        try:
            self._command(bytes([Command.REJECT]))
        except CommandRefused as exc:
            log.warning("%s: reject of a barcode ticket refused: %s", self.name, exc)

    def _on_escrow(self, channel: int) -> None:
        self._last_credit = None            # a new note: the one before has finished moving
        stale, self._in_stack = self._in_stack, None
        if stale is not None:
            # The unit reads a new note, so the path is clear: the earlier note told to stack
            # went somewhere the unit never said. Answer for it now rather than never.
            self._emit(NoteOutcomeUnknown(
                device=self.name, value=stale.value, code=str(stale.channel),
                detail="validator took a new note before it settled the one told to stack: "
                       "count the cashbox and reconcile"))
        value = self._value(channel)
        if value is None:
            # Never stack a note we cannot name: it goes back before anyone could decide, and
            # no poll (which would let the unit stack it) is sent before the reject.
            self._returning = (None, "")
            self._deferred.append(lambda: self._return_unknown(channel))
            return
        with self._lock:
            self._escrow = _Escrow(channel=channel, value=value, since=time.monotonic())
        self._emit(NoteEscrowed(device=self.name, value=value, code=str(channel)))

    def _return_unknown(self, channel: int) -> None:
        try:
            self._command(bytes([Command.REJECT]))
        except CommandRefused as exc:
            log.warning("%s: reject of unknown channel %d refused: %s", self.name, channel, exc)
        self._emit(NoteEscrowed(device=self.name, value=None, code=str(channel)))
        self._emit(NoteReturned(device=self.name, value=None, reason="unknown denomination"))

    def _on_credit(self, channel: int) -> bool:
        with self._lock:
            self._escrow = None
        value = self._value(channel)
        if value is None:
            pending, self._in_stack = self._in_stack, None
            detail = f"validator credited channel {channel}, which has no known value: reconcile"
            if pending is not None:
                self._emit(NoteOutcomeUnknown(device=self.name, value=None, code=str(channel), detail=detail))
            self._set_status(DeviceState.HARDWARE_ERROR, detail, "0xEE")
            return True
        event = NoteCredited(device=self.name, value=value, code=str(channel))
        if not self._record(event):
            return False
        self._in_stack = None
        self._last_credit = value
        self._emit(event)
        return True

    def _on_rejected(self) -> None:
        self._transient = None
        returning, self._returning = self._returning, None
        with self._lock:
            self._escrow = None
        if returning is not None:
            value, reason = returning
            if value is not None:
                self._emit(NoteReturned(device=self.name, value=value, reason=reason))
            return
        pending, self._in_stack = self._in_stack, None
        if pending is not None:
            # A note told to stack came back out of the bezel: it is the customer's again.
            self._deferred.append(lambda: self._report_returned(pending))
            return
        self._deferred.append(self._report_reject)

    def _last_reject_reason(self) -> tuple[str, int | None]:
        try:
            payload = self._command(bytes([Command.LAST_REJECT_CODE]))
            code = payload[0] if payload else None
        except DeviceError:
            code = None
        return (reject_reason(code) if code is not None else "rejected by the validator"), code

    def _report_returned(self, pending: _Escrow) -> None:
        reason, _ = self._last_reject_reason()
        self._emit(NoteReturned(device=self.name, value=pending.value,
                                reason=f"validator gave the note back instead of stacking it: {reason}"))

    def _report_reject(self) -> None:
        reason, code = self._last_reject_reason()
        self._emit(NoteRejected(device=self.name, reason=reason, code=None if code is None else f"0x{code:02X}"))

    def _settle_conditions(self, persistent: set[int]) -> None:
        cleared = self._conditions - persistent
        self._conditions = persistent
        if Event.CASHBOX_REMOVED in cleared:
            self._emit(CashboxChanged(device=self.name, status=UnitStatus.OK))
        if Event.STACKER_FULL in cleared:
            self._emit(CashboxChanged(device=self.name, status=UnitStatus.OK))
        code = self._status_key[1] if self._status_key else None
        if code in _CONDITION_CODES and int(code, 16) not in persistent:
            self._set_status(DeviceState.ONLINE, f"validator working again ({_CONDITION_CODES[code]} cleared)")

    # ------------------------------------------------------------------ watchdog

    def _watchdog(self) -> None:
        transient = self._transient
        if transient is None:
            return
        kind, since = transient
        if time.monotonic() - since <= self.stuck_timeout:
            return
        self._transient = None
        with self._lock:
            self._escrow = None
        self._returning = None
        action = "sent reset"
        try:
            self._command(bytes([Command.RESET]))
        except CommandRefused as exc:
            action = f"reset refused ({exc})"
        self._set_status(
            DeviceState.HARDWARE_ERROR,
            f"validator stuck {kind} for more than {self.stuck_timeout:g} s; {action}. "
            "If it repeats, check the note path for a jammed note or a dirty sensor", "watchdog")

    # ------------------------------------------------------------------ outputs

    def _set_status(self, state: DeviceState, detail: str, code: str | None = None) -> None:
        key = (state, code)
        self._state = state
        if key == self._status_key:
            return
        self._status_key = key
        self._emit(DeviceStatusChanged(device=self.name, state=state, detail=detail, code=code))

    def _emit(self, event: HalEvent) -> None:
        emit_safely(self._sink, event, self.name)

    @staticmethod
    def _check_overrides(denominations: Mapping[str, int] | None) -> dict[int, int] | None:
        if denominations is None:
            return None
        table: dict[int, int] = {}
        for key, value in denominations.items():
            if not (isinstance(key, str) and key.isdigit() and 1 <= int(key) <= 64):
                raise ConfigurationError(
                    f"validator denominations: key {key!r} must be an SSP channel number as a string, '1'..'64'")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(
                    f"validator denominations: channel {key} value {value!r} must be a positive int in minor units")
            table[int(key)] = value
        return table


def describe(data: bytes) -> str:
    try:
        return Command(data[0]).name.lower().replace("_", " ")
    except (ValueError, IndexError):
        return f"command 0x{data[:1].hex()}"


__all__ = ["SspValidator", "SspError"]
