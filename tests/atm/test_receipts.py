"""Receipt builders: what each receipt says, in which language, and how amounts are written."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from atm import receipts
from hal.money import Fiat, Sats
from hal.printer import PairLine, QrBlock, TextLine

OPERATOR = receipts.OperatorInfo("Satoshi Kiosks GmbH", "+49 30 1234567")
WHEN = datetime(2026, 11, 26, 12, 30, 5, tzinfo=timezone.utc)
ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
EN = receipts.CATALOGUES["en"]
DE = receipts.CATALOGUES["de"]


def texts_of(receipt):
    """Every piece of text on the receipt, in order."""
    out = []
    for block in receipt.blocks:
        if isinstance(block, TextLine):
            out.append(block.text)
        elif isinstance(block, PairLine):
            out.extend([block.label, block.value])
        elif isinstance(block, QrBlock):
            out.extend([block.caption])
    return out


def qr_data(receipt):
    return [block.data for block in receipt.blocks if isinstance(block, QrBlock)]


def buy(**overrides):
    args = dict(operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-7f3a9c", when=WHEN, cash=Fiat(10000, "EUR"),
                fee=Fiat(500, "EUR"), rate=Decimal("83456.789"), currency="EUR", sats=Sats(113831),
                address=ADDRESS, txid=None)
    args.update(overrides)
    return receipts.buy_receipt(**args)


def sell(**overrides):
    args = dict(operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-51e0", when=WHEN, cash=Fiat(5000, "EUR"),
                fee=Fiat(250, "EUR"), rate=Decimal("82000"), currency="EUR", sats=Sats(64024),
                address=ADDRESS, txid="ab" * 32)
    args.update(overrides)
    return receipts.sell_receipt(**args)


def redeem(**overrides):
    args = dict(operator=OPERATOR, kiosk_id="K-0042", tx_id="tx-9d21", when=WHEN, cash=Fiat(20000, "EUR"),
                fee=Fiat(1000, "EUR"), rate=Decimal("82000"), currency="EUR", sats=Sats(256098),
                redeem_code="RDM-4F7K-9Q2X-ZZ81")
    args.update(overrides)
    return receipts.redeem_receipt(**args)


def collection(**overrides):
    args = dict(operator=OPERATOR, kiosk_id="K-0042", collection_id="col-17", when=WHEN, cashbox_id="CB-1",
                technician="Alice", period_start=WHEN, period_end=WHEN,
                counts={Fiat(5000, "EUR"): 3, Fiat(1000, "EUR"): 12}, currency="EUR")
    args.update(overrides)
    return receipts.cash_collection_receipt(**args)


@pytest.mark.parametrize("build, tx_id", [(buy, "tx-7f3a9c"), (sell, "tx-51e0"), (redeem, "tx-9d21"),
                                          (collection, "col-17")])
def test_every_receipt_names_operator_contact_date_kiosk_and_transaction(build, tx_id):
    text = texts_of(build())
    for expected in ("Satoshi Kiosks GmbH", "+49 30 1234567", "2026-11-26 12:30:05 UTC", "K-0042", tx_id):
        assert expected in text


@pytest.mark.parametrize("build, cash, code", [
    (buy, "100.00 EUR", ADDRESS), (sell, "50.00 EUR", ADDRESS), (redeem, "200.00 EUR", "RDM-4F7K-9Q2X-ZZ81")])
def test_customer_receipts_carry_amounts_rate_fee_and_the_code_as_text_and_qr(build, cash, code):
    receipt = build()
    text = texts_of(receipt)
    assert cash in text
    assert any(t.endswith(" EUR/BTC") for t in text)
    assert EN["fee"] in text
    assert any(t.endswith(" BTC") and not t.endswith("/BTC") for t in text)
    assert code in text
    assert qr_data(receipt)[0] == code


def test_the_buy_receipt_carries_the_transaction_id_as_a_qr():
    assert qr_data(buy()) == [ADDRESS, "tx-7f3a9c"]


def test_buy_receipt_says_pending_until_the_bitcoin_transaction_is_known():
    assert EN["pending"] in texts_of(buy(txid=None))
    assert "ff" * 32 in texts_of(buy(txid="ff" * 32))


def test_redeem_receipt_shows_expiry_when_given():
    assert "2026-11-28 00:00:00 UTC" in texts_of(redeem(expires=datetime(2026, 11, 28, tzinfo=timezone.utc)))
    assert EN["expires"] not in texts_of(redeem())


def test_collection_counts_each_denomination_and_totals_in_integers():
    text = texts_of(collection())
    assert "3 x 50.00 EUR" in text and "150.00 EUR" in text
    assert "12 x 10.00 EUR" in text and "120.00 EUR" in text
    assert "15 notes" in text
    assert "Total: 270.00 EUR" in text
    assert qr_data(collection()) == ["collection:col-17?kiosk=K-0042&cashbox=CB-1&notes=15&total=27000&currency=EUR"]


def test_collection_lists_the_largest_denomination_first():
    labels = [b.label for b in collection().blocks if isinstance(b, PairLine) and " x " in b.label]
    assert labels == ["3 x 50.00 EUR", "12 x 10.00 EUR"]


@pytest.mark.parametrize("counts", [{Fiat(500, "USD"): 1}, {Fiat(500, "EUR"): -1}, {Fiat(500, "EUR"): True}])
def test_collection_refuses_counts_in_another_currency_or_not_whole_numbers(counts):
    with pytest.raises(ValueError, match="cash collection"):
        collection(counts=counts)


def test_fee_in_another_currency_than_the_receipt_is_refused():
    with pytest.raises(ValueError, match="fee is in USD"):
        buy(fee=Fiat(100, "USD"))


def test_german_receipt_uses_german_words_and_decimal_comma():
    text = texts_of(buy(language="de"))
    assert DE["buy_title"] in text and DE["fee"] in text
    assert "100,00 EUR" in text
    assert "83.456,79 EUR/BTC" in text
    assert "0,00113831 BTC" in text


def test_spanish_receipt_uses_spanish_words():
    text = texts_of(sell(language="es"))
    assert receipts.CATALOGUES["es"]["sell_title"] in text
    assert "50,00 EUR" in text


def test_unknown_language_prints_in_english_and_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="atm.receipts"):
        text = texts_of(buy(language="tlh"))
    assert EN["buy_title"] in text
    assert "tlh" in caplog.text


def test_every_catalogue_has_every_text():
    for language, catalogue in receipts.CATALOGUES.items():
        assert set(catalogue) == set(EN), language


@pytest.mark.parametrize("amount, text", [
    (Fiat(0, "EUR"), "0.00 EUR"), (Fiat(5, "EUR"), "0.05 EUR"), (Fiat(-1234567, "EUR"), "-12,345.67 EUR"),
    (Fiat(5000, "JPY"), "5,000 JPY"), (Fiat(1500, "KWD"), "1.500 KWD"), (Fiat(100000000, "USD"), "1,000,000.00 USD"),
])
def test_fiat_is_written_from_minor_units_with_the_currency_digits(amount, text):
    assert receipts.format_fiat(amount, EN) == text


def test_sats_are_written_as_bitcoin_with_eight_digits():
    assert receipts.format_sats(Sats(1), EN) == "0.00000001 BTC"
    assert receipts.format_sats(Sats(2_100_000_000_000_000), EN) == "21,000,000.00000000 BTC"


def test_rate_rounds_half_to_even_at_the_minor_unit():
    assert receipts.format_rate(Decimal("100.005"), "EUR", EN) == "100.00 EUR/BTC"
    assert receipts.format_rate(Decimal("100.015"), "EUR", EN) == "100.02 EUR/BTC"
    assert receipts.format_rate(Decimal("12345678.4"), "JPY", EN) == "12,345,678 JPY/BTC"


@pytest.mark.parametrize("rate, error", [(83000.5, TypeError), (Decimal("NaN"), ValueError),
                                         (Decimal("-1"), ValueError), (Decimal("Infinity"), ValueError)])
def test_rate_that_is_a_float_or_not_a_finite_price_is_refused(rate, error):
    with pytest.raises(error, match="rate"):
        buy(rate=rate)


@given(st.integers(min_value=-10**15, max_value=10**15), st.sampled_from(["EUR", "JPY", "KWD"]),
       st.sampled_from(["en", "de", "es"]))
def test_written_fiat_reads_back_as_the_same_minor_units(minor, currency, language):
    texts = receipts.CATALOGUES[language]
    number = receipts.format_fiat(Fiat(minor, currency), texts).removesuffix(" " + currency)
    digits = number.replace(texts["thousands"], "").replace(texts["decimal"], "")
    assert int(digits) == minor


def test_time_without_zone_is_printed_without_one():
    assert receipts.format_when(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05"
