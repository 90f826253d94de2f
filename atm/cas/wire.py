"""Parsers for the CAS's answers (protocol version 1, docs/cas-protocol.md).

Every answer is untrusted input: each parser takes decoded JSON and returns a typed
value or raises AnswerMalformed naming the field, never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from atm.cas.errors import AnswerMalformed
from atm.cas.interface import SendResult
from atm.cas.payment_proof import HEADER_SIZE, MAX_BRANCH, PaymentEvidence
from atm.cas.signing import DocumentError, strict_json

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "X-ATM-Protocol"
MAX_ANSWER_BYTES = 256 * 1024
MAX_COMMANDS = 32
MAX_TEXTS = 64
# Any rate of any currency per bitcoin lies in this range (signed bounds are narrower).
RATE_MIN = Decimal("0.01")
RATE_MAX = Decimal(10) ** 12
MAX_RATE_TEXT = 40
# Payment evidence must fit a whole answer (MAX_ANSWER_BYTES): 1,000 headers are 160,000
# hex digits, about a week of blocks past the signed checkpoint (the operator signs a
# newer one long before), and a customer's deposit transaction is far below 40 kB.
MAX_EVIDENCE_HEADERS = 1_000
MAX_EVIDENCE_TX_BYTES = 40_000
MAX_BLOCK_HEIGHT = 100_000_000


def decode_answer(data: bytes, what: str, limit: int = MAX_ANSWER_BYTES) -> Any:
    try:
        return strict_json(data, what, limit)
    except DocumentError as exc:
        raise AnswerMalformed(f"CAS answer to {exc}") from None


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise AnswerMalformed(f"CAS answer to {what}: expected a JSON object, got {type(value).__name__}")
    proto = value.get("protocol")
    if proto != PROTOCOL_VERSION:
        raise AnswerMalformed(f"CAS answer to {what}: protocol {proto!r}, this kiosk speaks {PROTOCOL_VERSION}")
    return value


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if isinstance(value, bool) and kind is not bool:
        raise AnswerMalformed(f"CAS answer to {what}: {key!r} must be {kind}, got a boolean")
    if not isinstance(value, kind):
        raise AnswerMalformed(f"CAS answer to {what}: {key!r} must be {kind}, got {type(value).__name__}")
    return value


def _short_text(value: Any, key: str, what: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        raise AnswerMalformed(f"CAS answer to {what}: {key!r} must be printable text of 1..{max_len} characters")
    return value


def parse_rate(value: Any, where: str) -> Decimal:
    """A rate (fiat major units per bitcoin) inside the range any currency can have.

    The operator's signed bounds are narrower; this range only keeps absurd numbers
    (1E-30, 10^15, huge exponents) from ever reaching arithmetic or the journal."""
    if not isinstance(value, str):
        raise AnswerMalformed(f"CAS answer: rate {where} must be a decimal string, got {type(value).__name__}")
    if len(value) > MAX_RATE_TEXT:
        raise AnswerMalformed(f"CAS answer: rate {where} is a text of {len(value)} characters, "
                              f"more than the {MAX_RATE_TEXT} a price needs")
    try:
        rate = Decimal(value)
    except (InvalidOperation, ValueError):
        raise AnswerMalformed(f"CAS answer: rate {where} {value[:40]!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise AnswerMalformed(f"CAS answer: rate {where} {value[:40]!r} is not a positive price")
    if not RATE_MIN <= rate <= RATE_MAX:
        raise AnswerMalformed(f"CAS answer: rate {where} {value[:40]!r} is outside {RATE_MIN}..{RATE_MAX} per "
                              "bitcoin, which no currency's price can be")
    return rate


@dataclass(frozen=True)
class PollAnswer:
    config_version: int | None
    rates: Mapping[str, Decimal]
    commands: tuple[Any, ...] = ()
    texts: Mapping[str, str] = field(default_factory=dict)
    server_time: int | None = None
    # currency -> why its rate was refused. One bad rate loses that rate only, so a junk
    # price cannot hold back the commands (deactivate) and the bundle check of the poll.
    refused_rates: Mapping[str, str] = field(default_factory=dict)


def parse_poll(value: Any) -> PollAnswer:
    obj = _obj(value, "poll")
    version = obj.get("config_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise AnswerMalformed("CAS answer to poll: 'config_version' must be a non-negative integer or null")
    rates_raw = _field(obj, "rates", dict, "poll")
    rates, refused_rates = {}, {}
    for currency, text in rates_raw.items():
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isupper()):
            raise AnswerMalformed(f"CAS answer to poll: rate currency {currency[:10]!r} is not an ISO 4217 code")
        try:
            rates[currency] = parse_rate(text, currency)
        except AnswerMalformed as exc:
            refused_rates[currency] = str(exc)
    commands = obj.get("commands", [])
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise AnswerMalformed(f"CAS answer to poll: 'commands' must be a list of at most {MAX_COMMANDS}")
    texts_raw = obj.get("texts", {})
    if not isinstance(texts_raw, dict) or len(texts_raw) > MAX_TEXTS:
        raise AnswerMalformed(f"CAS answer to poll: 'texts' must be an object of at most {MAX_TEXTS} entries")
    texts = {}
    for key, text in texts_raw.items():
        texts[_short_text(key, "texts key", "poll", 64)] = _short_text(text, f"texts.{key}", "poll", 500)
    server_time = obj.get("server_time")
    if server_time is not None and (isinstance(server_time, bool) or not isinstance(server_time, int)):
        raise AnswerMalformed("CAS answer to poll: 'server_time' must be an integer")
    return PollAnswer(config_version=version, rates=rates, commands=tuple(commands), texts=texts,
                      server_time=server_time, refused_rates=refused_rates)


def parse_send(value: Any, request_id: str) -> SendResult:
    obj = _obj(value, "send")
    answered_id = _field(obj, "id", str, "send")
    if answered_id != request_id:
        raise AnswerMalformed(f"CAS answer to send {request_id}: it answered for {answered_id[:80]!r}")
    txid = _field(obj, "txid", str, "send")
    if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
        raise AnswerMalformed(f"CAS answer to send {request_id}: txid must be 64 lower-case hex digits")
    return SendResult(request_id=request_id, txid=txid)


def parse_upload_ack(value: Any) -> dict[str, int]:
    """{id: version the server now holds} from a transactions or events upload answer."""
    obj = _obj(value, "upload")
    results = _field(obj, "stored", list, "upload")
    held: dict[str, int] = {}
    for item in results:
        if not isinstance(item, dict):
            raise AnswerMalformed("CAS answer to upload: each 'stored' entry must be an object")
        key = _field(item, "id", str, "upload")
        version = _field(item, "version", int, "upload")
        held[key] = version
    return held


@dataclass(frozen=True)
class SellInvoice:
    id: str
    address: str
    index: int
    sats: int
    expires_at: int


def parse_sell_invoice(value: Any, invoice_id: str) -> SellInvoice:
    obj = _obj(value, "sell invoice")
    answered = _field(obj, "id", str, "sell invoice")
    if answered != invoice_id:
        raise AnswerMalformed(f"CAS answer to sell invoice {invoice_id}: it answered for {answered[:80]!r}")
    address = _short_text(obj.get("address"), "address", "sell invoice", 100)
    index = _field(obj, "index", int, "sell invoice")
    sats = _field(obj, "sats", int, "sell invoice")
    if sats <= 0:
        raise AnswerMalformed(f"CAS answer to sell invoice {invoice_id}: 'sats' must be positive")
    expires_at = _field(obj, "expires_at", int, "sell invoice")
    return SellInvoice(id=invoice_id, address=address, index=index, sats=sats, expires_at=expires_at)


INVOICE_STATES = ("unpaid", "seen", "confirmed", "underpaid", "overpaid", "late", "expired")


@dataclass(frozen=True)
class InvoiceStatus:
    """The CAS's word on a sell invoice. `state`, `received_sats` and `confirmations`
    are unsigned claims, shown to the operator and never used for money; `payment` is
    the evidence the kiosk checks itself (atm.cas.payment_proof)."""

    id: str
    state: str
    received_sats: int
    confirmations: int
    payment: PaymentEvidence | None = None


def _hex_bytes(value: Any, key: str, what: str, *, max_bytes: int, exact: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise AnswerMalformed(f"CAS answer to {what}: {key} must be a hex string, got {type(value).__name__}")
    if len(value) > 2 * max_bytes:
        raise AnswerMalformed(f"CAS answer to {what}: {key} is longer than {max_bytes} bytes")
    if len(value) % 2 or any(c not in "0123456789abcdef" for c in value):
        raise AnswerMalformed(f"CAS answer to {what}: {key} must be lower-case hex of whole bytes")
    raw = bytes.fromhex(value)
    if exact is not None and len(raw) != exact:
        raise AnswerMalformed(f"CAS answer to {what}: {key} must be {exact} bytes, got {len(raw)}")
    return raw


def _hex_list(value: Any, key: str, what: str, *, limit: int, size: int) -> list[bytes]:
    if not isinstance(value, list):
        raise AnswerMalformed(f"CAS answer to {what}: {key} must be a list of hex strings")
    if len(value) > limit:
        raise AnswerMalformed(f"CAS answer to {what}: {key} holds {len(value)} entries, at most {limit} are read")
    return [_hex_bytes(item, f"{key}[{i}]", what, max_bytes=size, exact=size) for i, item in enumerate(value)]


def parse_payment_evidence(value: Any, what: str = "sell invoice status") -> PaymentEvidence | None:
    """`payment` of a sell invoice status: null, or the raw transaction with (once mined)
    its block height, merkle branch, index and the headers from the signed checkpoint
    up to the tip. Only shapes and sizes are checked here; what they prove is judged by
    atm.cas.payment_proof. An empty raw_tx is kept, so the claim is refused by name."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AnswerMalformed(f"CAS answer to {what}: 'payment' must be an object or null")
    unknown = sorted(set(value) - {"raw_tx", "block_height", "merkle_branch", "tx_index", "headers"})
    if unknown:
        raise AnswerMalformed(f"CAS answer to {what}: 'payment' has an unknown field {str(unknown[0])[:40]!r}")
    raw_tx = _hex_bytes(value.get("raw_tx"), "payment.raw_tx", what, max_bytes=MAX_EVIDENCE_TX_BYTES)
    height = value.get("block_height")
    if height is not None and (isinstance(height, bool) or not isinstance(height, int)
                               or not 0 <= height <= MAX_BLOCK_HEIGHT):
        raise AnswerMalformed(f"CAS answer to {what}: payment.block_height must be null or 0..{MAX_BLOCK_HEIGHT}")
    branch = _hex_list(value.get("merkle_branch", []), "payment.merkle_branch", what, limit=MAX_BRANCH, size=32)
    index = value.get("tx_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**32:
        raise AnswerMalformed(f"CAS answer to {what}: payment.tx_index must be an integer 0..2^32-1")
    headers = _hex_list(value.get("headers", []), "payment.headers", what, limit=MAX_EVIDENCE_HEADERS,
                        size=HEADER_SIZE)
    return PaymentEvidence(raw_tx=raw_tx, headers=tuple(headers), block_height=height,
                           merkle_branch=tuple(branch), tx_index=index)


def parse_invoice_status(value: Any, invoice_id: str) -> InvoiceStatus:
    obj = _obj(value, "sell invoice status")
    answered = _field(obj, "id", str, "sell invoice status")
    if answered != invoice_id:
        raise AnswerMalformed(f"CAS answer to sell invoice status {invoice_id}: it answered for {answered[:80]!r}")
    state = _field(obj, "state", str, "sell invoice status")
    if state not in INVOICE_STATES:
        raise AnswerMalformed(f"CAS answer to sell invoice status: state {state[:40]!r} is not one of {INVOICE_STATES}")
    received = _field(obj, "received_sats", int, "sell invoice status")
    confirmations = _field(obj, "confirmations", int, "sell invoice status")
    if received < 0 or confirmations < 0:
        raise AnswerMalformed("CAS answer to sell invoice status: amounts and confirmations must not be negative")
    payment = parse_payment_evidence(obj.get("payment"))
    return InvoiceStatus(id=invoice_id, state=state, received_sats=received, confirmations=confirmations,
                         payment=payment)


def parse_pair_answer(value: Any, kiosk_id: str) -> None:
    obj = _obj(value, "pairing")
    answered = _field(obj, "kiosk_id", str, "pairing")
    if answered != kiosk_id:
        raise AnswerMalformed(f"CAS answer to pairing: registered kiosk {answered[:80]!r}, expected {kiosk_id!r}")


def parse_config_answer(value: Any) -> Any | None:
    """The bundle document the CAS holds (None when it holds none). Judged by atm.cas.bundle."""
    obj = _obj(value, "config")
    return obj.get("bundle")
