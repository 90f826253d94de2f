"""Every receipt kind, on both paper widths, printed through the driver to the virtual printer
and compared exactly with the text a person would read (tests/drivers/escpos/golden/).

After an intended layout change, regenerate with ESCPOS_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from atm import receipts
from drivers.escpos.driver import EscposPrinter
from hal.money import Fiat, Sats
from simulators.printer import VirtualPrinter

GOLDEN = Path(__file__).parent / "golden"
OPERATOR = receipts.OperatorInfo("Satoshi Kiosks GmbH", "+49 30 1234567, help@example.org")
WHEN = datetime(2026, 11, 26, 12, 30, 5, tzinfo=timezone.utc)
BUY_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
SELL_ADDRESS = "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"
TXID = "a1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d"


def buy(language):
    return receipts.buy_receipt(
        operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-7f3a9c", when=WHEN, cash=Fiat(10000, "EUR"),
        fee=Fiat(500, "EUR"), rate=Decimal("83456.789"), currency="EUR", sats=Sats(113831),
        address=BUY_ADDRESS, txid=TXID, language=language)


def sell(language):
    return receipts.sell_receipt(
        operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-51e0", when=WHEN, cash=Fiat(5000, "EUR"),
        fee=Fiat(250, "EUR"), rate=Decimal("82000"), currency="EUR", sats=Sats(64024),
        address=SELL_ADDRESS, txid=None, language=language)


def redeem(language):
    return receipts.redeem_receipt(
        operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-9d21", when=WHEN, cash=Fiat(20000, "EUR"),
        fee=Fiat(1000, "EUR"), rate=Decimal("82000.00"), currency="EUR", sats=Sats(256098),
        redeem_code="RDM-4F7K-9Q2X-ZZ81", expires=WHEN + timedelta(days=2), language=language)


def collection(language):
    return receipts.cash_collection_receipt(
        operator=OPERATOR, kiosk_id="K-0042", collection_id="col-17", when=WHEN, cashbox_id="CB-1",
        technician="Alice Meyer", period_start=WHEN - timedelta(days=7), period_end=WHEN,
        counts={Fiat(5000, "EUR"): 3, Fiat(1000, "EUR"): 12, Fiat(50000, "EUR"): 1, Fiat(2000, "EUR"): 0},
        currency="EUR", language=language)


CASES = [(kind, language, width)
         for kind, language in [("buy", "en"), ("sell", "en"), ("redeem", "en"), ("collection", "en"),
                                ("buy", "de"), ("redeem", "es")]
         for width in (58, 80)]
BUILDERS = {"buy": buy, "sell": sell, "redeem": redeem, "collection": collection}


def printed_text(receipt, width_mm):
    virtual = VirtualPrinter(width_mm)
    url = virtual.start("tcp")
    try:
        printer = EscposPrinter(url, width_mm=width_mm, link="two-way")
        printer.open(lambda event: None)
        try:
            printer.print_receipt(receipt)
        finally:
            printer.close()
        assert virtual.wait_for_receipts(1)
        assert virtual.state()["overflowed_lines"] == 0
        return virtual.receipts()[0]
    finally:
        virtual.stop()


@pytest.mark.parametrize("kind, language, width", CASES)
def test_receipt_prints_exactly_as_the_golden_text(kind, language, width):
    text = printed_text(BUILDERS[kind](language), width)
    golden = GOLDEN / f"{kind}_{language}_{width}mm.txt"
    if os.environ.get("ESCPOS_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("builder, code", [(buy, BUY_ADDRESS), (sell, SELL_ADDRESS),
                                           (redeem, "RDM-4F7K-9Q2X-ZZ81")])
def test_address_or_code_is_printed_as_text_and_as_a_scannable_qr(builder, code):
    text = printed_text(builder("en"), 58)
    assert f"[QR: {code}]" in text
    # The text copy may be cut over lines on narrow paper; joined, it is the whole code.
    assert code in "".join(line.strip() for line in text.splitlines() if not line.startswith("[QR"))


def test_collection_qr_carries_the_totals():
    text = printed_text(collection("en"), 80)
    assert "[QR: collection:col-17?kiosk=K-0042&cashbox=CB-1&notes=16&total=77000&currency=EUR]" in text
