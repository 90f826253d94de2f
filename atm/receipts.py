"""Receipts the kiosk prints: buy, sell, redeem code, and the technician's cash-collection report.

Each builder returns a hal.printer.Receipt (blocks only; the printer driver fits
them to its paper). Texts come from the kiosk's language files (atm.texts); amounts are
written by atm.amounts from integers (Fiat minor units, satoshis), never through floats,
in the receipt language's [format].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from hal.money import Fiat, Sats
from hal.printer import Block, PairLine, QrBlock, Receipt, Rule, TextLine
from atm import texts
from atm.amounts import format_fiat, format_rate, format_sats

log = logging.getLogger(__name__)

# Receipt texts per language, from the kiosk's language files (atm/locale/*.toml).
CATALOGUES: dict[str, dict[str, str]] = {
    language: {**texts.section(language, "format"), **texts.section(language, "receipt")}
    for language in texts.available_languages()
}


@dataclass(frozen=True)
class OperatorInfo:
    """Who runs the kiosk, as printed at the top of every receipt."""

    name: str
    contact: str


def catalogue(language: str) -> dict[str, str]:
    """The texts for `language`; an unknown language prints in English (and says so in the log)."""
    if language not in CATALOGUES:
        log.warning("receipt language %r has no catalogue (have %s); printing in English",
                    language, ", ".join(sorted(CATALOGUES)))
        return CATALOGUES["en"]
    return CATALOGUES[language]


# --- formatting: amounts are atm.amounts' (the same as on the screens); dates here ---

def format_when(when: datetime) -> str:
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    zone = when.tzname()
    return f"{text} {zone}" if zone else text


# --- shared parts ------------------------------------------------------------

def _header(operator: OperatorInfo, title: str, texts: Mapping[str, str],
            when: datetime, kiosk_id: str, tx_id: str, id_label: str = "transaction") -> list[Block]:
    return [
        TextLine(operator.name, align="center", bold=True, large=True),
        TextLine(operator.contact, align="center"),
        Rule("="),
        TextLine(title, align="center", bold=True),
        Rule(),
        PairLine(texts["date"], format_when(when)),
        PairLine(texts["kiosk"], kiosk_id),
        PairLine(texts[id_label], tx_id),
        Rule(),
    ]


def _footer(texts: Mapping[str, str]) -> list[Block]:
    return [Rule(), TextLine(texts["keep"], align="center"), TextLine(texts["thanks"], align="center", bold=True)]


def _amounts(texts: Mapping[str, str], cash_label: str, cash: Fiat, fee: Fiat, rate: Decimal,
             currency: str, sats_label: str, sats: Sats) -> list[Block]:
    for name, amount in (("cash", cash), ("fee", fee)):
        if amount.currency != currency:
            raise ValueError(f"receipt {name} is in {amount.currency}, but the receipt currency is {currency}")
    return [
        PairLine(texts[cash_label], format_fiat(cash, texts)),
        PairLine(texts["fee"], format_fiat(fee, texts)),
        PairLine(texts["rate"], format_rate(rate, currency, texts)),
        PairLine(texts[sats_label], format_sats(sats, texts)),
        Rule(),
    ]


def _code_with_qr(label: str, code: str) -> list[Block]:
    return [TextLine(label, bold=True), TextLine(code), QrBlock(code)]


def _txid(texts: Mapping[str, str], txid: str | None) -> list[Block]:
    return [TextLine(texts["txid"], bold=True), TextLine(txid or texts["pending"])]


# --- the receipts ----------------------------------------------------------

def buy_receipt(*, operator: OperatorInfo, kiosk_id: str, tx_id: str, when: datetime, cash: Fiat, fee: Fiat,
                rate: Decimal, currency: str, sats: Sats, address: str, txid: str | None,
                language: str = "en") -> Receipt:
    """Cash in, bitcoin out to the customer's address."""
    texts = catalogue(language)
    return Receipt(tuple(
        _header(operator, texts["buy_title"], texts, when, kiosk_id, tx_id)
        + _amounts(texts, "cash_in", cash, fee, rate, currency, "bitcoin_sent", sats)
        + _code_with_qr(texts["address"], address)
        + _txid(texts, txid)
        # the kiosk's own transaction id as a QR: what the operator's support asks for
        + [TextLine(texts["transaction_qr"], bold=True), QrBlock(tx_id)]
        + _footer(texts)))


def sell_receipt(*, operator: OperatorInfo, kiosk_id: str, tx_id: str, when: datetime, cash: Fiat, fee: Fiat,
                 rate: Decimal, currency: str, sats: Sats, address: str, txid: str | None,
                 language: str = "en") -> Receipt:
    """Bitcoin in to the kiosk's deposit address, cash out."""
    texts = catalogue(language)
    return Receipt(tuple(
        _header(operator, texts["sell_title"], texts, when, kiosk_id, tx_id)
        + _amounts(texts, "cash_out", cash, fee, rate, currency, "bitcoin_received", sats)
        + _code_with_qr(texts["deposit_address"], address)
        + _txid(texts, txid)
        + _footer(texts)))


def redeem_receipt(*, operator: OperatorInfo, kiosk_id: str, tx_id: str, when: datetime, cash: Fiat, fee: Fiat,
                   rate: Decimal, currency: str, sats: Sats, redeem_code: str, expires: datetime | None = None,
                   language: str = "en") -> Receipt:
    """A sale whose cash waits for the customer: the code collects it later."""
    texts = catalogue(language)
    validity = [PairLine(texts["expires"], format_when(expires))] if expires is not None else []
    return Receipt(tuple(
        _header(operator, texts["redeem_title"], texts, when, kiosk_id, tx_id)
        + _amounts(texts, "cash_to_collect", cash, fee, rate, currency, "bitcoin_received", sats)
        + _code_with_qr(texts["redeem_code"], redeem_code)
        + validity
        + [TextLine(texts["redeem_hint"])]
        + _footer(texts)))


def cash_collection_receipt(*, operator: OperatorInfo, kiosk_id: str, collection_id: str, when: datetime,
                            cashbox_id: str, technician: str, period_start: datetime, period_end: datetime,
                            counts: Mapping[Fiat, int], currency: str, language: str = "en",
                            counted: Fiat | None = None) -> Receipt:
    """What the technician took out of the cashbox: notes per denomination and the totals,
    and, when the technician entered what they counted, that amount and its difference."""
    texts = catalogue(language)
    total = Fiat.zero(currency)
    notes = 0
    lines: list[Block] = []
    for denomination in sorted(counts, key=lambda d: d.minor, reverse=True):
        count = counts[denomination]
        if denomination.currency != currency:
            raise ValueError(f"cash collection: denomination {denomination} is not in {currency}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"cash collection: count for {denomination} must be a whole number >= 0, got {count!r}")
        subtotal = denomination * count
        total, notes = total + subtotal, notes + count
        lines.append(PairLine(f"{count} x {format_fiat(denomination, texts)}", format_fiat(subtotal, texts)))
    summary = (f"collection:{collection_id}?kiosk={kiosk_id}&cashbox={cashbox_id}"
               f"&notes={notes}&total={total.minor}&currency={currency}")
    return Receipt(tuple(
        _header(operator, texts["collection_title"], texts, when, kiosk_id, collection_id, "collection")
        + [PairLine(texts["cashbox"], cashbox_id),
           PairLine(texts["technician"], technician),
           PairLine(texts["period_start"], format_when(period_start)),
           PairLine(texts["period_end"], format_when(period_end)),
           Rule()]
        + lines
        + [Rule(),
           PairLine(texts["total_notes"], f"{notes} {texts['notes']}"),
           TextLine(f"{texts['total']}: {format_fiat(total, texts)}", align="right", bold=True)]
        + ([PairLine(texts["counted"], format_fiat(counted, texts)),
            PairLine(texts["difference"], format_fiat(counted - total, texts))] if counted is not None else [])
        + [QrBlock(summary, caption=texts["collection_qr"])]
        + _footer(texts)))
