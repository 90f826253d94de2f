"""The scanned-payload parser against published vectors (BIP173/BIP350, BOLT11,
well-known base58 addresses) and against arbitrary text (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from hal.errors import ConfigurationError
from atm.payloads import (
    MAX_PAYLOAD_CHARS,
    BitcoinAddress,
    LightningInvoice,
    PairingCode,
    PayloadError,
    PaymentRequest,
    RedeemCode,
    parse_payload,
    payload_kind,
)

# BIP350 valid segwit addresses (they include the BIP173 v0 ones), with the
# network they belong to and the kind the parser must report.
VALID_SEGWIT = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "main", "p2wpkh"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "test", "p2wsh"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y", "main", "witness"),
    ("BC1SW50QGDZ25J", "main", "witness"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "main", "witness"),
    ("tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy", "test", "p2wsh"),
    ("tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c", "test", "p2tr"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "main", "p2tr"),
]

# BIP350 invalid segwit addresses, with the reason code the parser must give.
INVALID_SEGWIT = [
    ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", "not_a_payload"),  # unknown HRP
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", "bad_checksum"),  # bech32 for v1
    ("tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", "bad_checksum"),  # bech32 for v2
    ("BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", "bad_checksum"),  # bech32 for v16
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "bad_checksum"),  # bech32m for v0
    ("tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", "bad_checksum"),  # bech32m for v0
    ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", "bad_checksum"),  # 'o' in checksum
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "bad_address"),  # version 17
    ("bc1pw5dgrnzv", "bad_address"),  # 1-byte program
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", "bad_address"),  # 41 bytes
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "bad_address"),  # v0 with 16 bytes
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", "bad_address"),  # mixed case
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", "bad_address"),  # >4 bits padding
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", "bad_address"),  # non-zero padding
    ("bc1gmk9yu", "bad_address"),  # empty data section
]

# Well-known base58 addresses: the genesis coinbase (P2PKH), the BIP13 example
# (P2SH), and the BOLT11 examples' testnet fallback address.
VALID_BASE58 = [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "main", "p2pkh"),
    ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "main", "p2sh"),
    ("1RustyRX2oai4EYYDpQGWvEL62BBGqN9T", "main", "p2pkh"),
    ("mk2QpYatsKicvFVuTAQLBryyccRXMUaGHP", "test", "p2pkh"),
    ("2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc", "test", "p2sh"),
]

# BOLT11 examples (signed with the spec's test key): invoice, network, amount in msat.
BOLT11_DONATION = (
    "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8"
    "g6twvus8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx87sjle52x86fux2ypatgddc6k63n7e"
    "rqz25le42c4u4ecky03ylcqca784w"
)
BOLT11_COFFEE = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn"
    "3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
)
BOLT11_TESTNET = (
    "lntb20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqs"
    "yqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un98kmzzhznpurw9sgl2v0nklu2g4d0keph5t7tj9tcqd8rexnd07ux4uv2cjvc"
    "qwaxgj7v4uwn5wmypjd5n69z2xm3xgksg28nwht7f6zspwp3f9t"
)
BOLT11_PICO = (
    "lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5g"
    "pc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhy"
    "grcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq"
    "0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv"
    "8xzscs7007v9gh9j569lencxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j"
)
BOLT11_UPPER = (
    "LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZY"
    "G3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQPQSQ67GYE39HFG3ZD8RGC80K32TVY9XK2XUNWM5LZEXNVPX6FD77E"
    "N8QAQ424DXGT56CAG2DPT359K3SSYHETKTKPQH24JQNJYW6UQD08SGPTQ44QU"
)
# BOLT11 invalid examples: bad checksum, mixed case, too short, bad multiplier, sub-millisatoshi.
BOLT11_BAD_CHECKSUM = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqz"
    "puyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt"
)
BOLT11_MIXED_CASE = (
    "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqz"
    "puyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny"
)
BOLT11_TOO_SHORT = (
    "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na"
    "6hlh"
)
BOLT11_BAD_MULTIPLIER = (
    "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpujr6jxr9gq9p"
    "v6g46y7d20jfkegkg4gljz2ea2a3m9lmvvr95tq2s0kvu70u3axgelz3kyvtp2ywwt0y8hkx2869zq5dll9nelr83zzqqpgl2zg"
)
BOLT11_SUB_MSAT = (
    "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu7hqtk9"
    "3pkf7sw55rdv4k9z2vj050rxdr6za9ekfs3nlt5lr89jqpdmxsmlj9urqumg0h9wzpqecw7th56tdms40p2ny9q4ddvjsedzcplva53s"
)

P2WPKH = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"


def flip_char(text: str, index: int) -> str:
    """Replace one character by a different one of the same alphabet family."""
    original = text[index]
    replacement = "2" if original != "2" else "3"
    return text[:index] + replacement + text[index + 1:]


def reason_of(text: str, **kwargs) -> str:
    with pytest.raises(PayloadError) as caught:
        parse_payload(text, **kwargs)
    assert str(caught.value), "every refusal carries a message for the person at the machine"
    return caught.value.reason


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("address,network,kind", VALID_SEGWIT)
def test_bip350_valid_segwit_addresses_are_accepted_on_their_network(address, network, kind):
    result = parse_payload(address, network=network)
    assert result == BitcoinAddress(address=address.lower(), network=network, kind=kind)


@pytest.mark.parametrize("address,reason", INVALID_SEGWIT)
def test_bip350_invalid_segwit_addresses_are_refused_with_their_reason(address, reason):
    network = "test" if address.lower().startswith("tb1") else "main"
    assert reason_of(address, network=network) == reason


@pytest.mark.parametrize("address,network,kind", VALID_BASE58)
def test_known_base58_addresses_are_accepted_with_their_kind(address, network, kind):
    assert parse_payload(address, network=network) == BitcoinAddress(address, network, kind)


@pytest.mark.parametrize("address,network,_kind", VALID_BASE58)
def test_base58_address_with_one_flipped_character_fails_its_checksum(address, network, _kind):
    assert reason_of(flip_char(address, 10), network=network) == "bad_checksum"


@pytest.mark.parametrize("address,network,_kind", VALID_SEGWIT)
def test_segwit_address_with_one_flipped_character_fails_its_checksum(address, network, _kind):
    lowered = address.lower()
    # Flip inside the data part, well after the separator.
    flipped = lowered[:-3] + ("q" if lowered[-3] != "q" else "p") + lowered[-2:]
    assert reason_of(flipped, network=network) == "bad_checksum"


def test_mainnet_address_is_refused_on_a_testnet_kiosk():
    assert reason_of(P2WPKH, network="test") == "wrong_network"
    assert reason_of("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", network="regtest") == "wrong_network"


def test_testnet_address_is_refused_on_a_mainnet_kiosk():
    assert reason_of("mk2QpYatsKicvFVuTAQLBryyccRXMUaGHP", network="main") == "wrong_network"
    assert reason_of(VALID_SEGWIT[1][0], network="main") == "wrong_network"


def test_testnet_bech32_addresses_are_valid_on_signet_which_shares_the_tb_prefix():
    result = parse_payload(VALID_SEGWIT[6][0], network="signet")
    assert result.network == "signet" and result.kind == "p2tr"


def test_surrounding_whitespace_from_a_scanner_is_ignored():
    assert parse_payload(f"  {P2WPKH}\r\n") == BitcoinAddress(P2WPKH, "main", "p2wpkh")


def test_unknown_configured_network_is_a_configuration_error_not_a_payload_error():
    with pytest.raises(ConfigurationError, match="'mainnet'.*main, test, regtest, signet"):
        parse_payload(P2WPKH, network="mainnet")


# --------------------------------------------------------------------------- BIP21


def test_bip21_with_amount_label_and_message_is_parsed_exactly():
    uri = f"bitcoin:{P2WPKH}?amount=20.3&label=Luke-Jr&message=Donation%20for%20project%20xyz"
    assert parse_payload(uri) == PaymentRequest(
        address=BitcoinAddress(P2WPKH, "main", "p2wpkh"),
        amount_sats=2_030_000_000,
        label="Luke-Jr",
        message="Donation for project xyz",
    )


def test_bip21_scheme_and_parameter_names_are_case_insensitive():
    result = parse_payload(f"BITCOIN:{P2WPKH.upper()}?AMOUNT=0.00000001")
    assert isinstance(result, PaymentRequest)
    assert result.amount_sats == 1
    assert result.address.address == P2WPKH


@pytest.mark.parametrize(
    "amount,sats",
    [("50", 5_000_000_000), ("0.1", 10_000_000), (".5", 50_000_000), ("1.", 100_000_000),
     ("0.12345678", 12_345_678), ("21000000", 2_100_000_000_000_000)],
)
def test_bip21_amount_becomes_exact_integer_satoshis(amount, sats):
    result = parse_payload(f"bitcoin:{P2WPKH}?amount={amount}")
    assert result.amount_sats == sats and isinstance(result.amount_sats, int)


@pytest.mark.parametrize(
    "amount",
    ["0.123456789", "-1", "1e3", "1E-3", "", ".", "1,5", "+1", "0x10", "0", "0.00000000", "21000000.00000001",
     "1 000", "%31", "\u0661", "\uff11"],
)
def test_bip21_amount_that_is_not_a_plain_positive_decimal_is_refused(amount):
    assert reason_of(f"bitcoin:{P2WPKH}?amount={amount}") == "bad_amount"


def test_bip21_amount_followed_by_a_line_break_inside_the_uri_is_refused():
    assert reason_of(f"bitcoin:{P2WPKH}?amount=1\n&label=x") == "bad_amount"


def test_bip21_unknown_required_parameter_makes_the_uri_invalid():
    assert reason_of(f"bitcoin:{P2WPKH}?amount=1&req-somethingyoudontunderstand=50") == "unsupported_req_param"


def test_bip21_unknown_optional_parameter_is_ignored():
    result = parse_payload(f"bitcoin:{P2WPKH}?somethingyoudontunderstand=50&somethingelse=x")
    assert result == PaymentRequest(BitcoinAddress(P2WPKH, "main", "p2wpkh"), None, None, None)


def test_bip21_duplicate_parameter_is_refused_as_ambiguous():
    assert reason_of(f"bitcoin:{P2WPKH}?amount=1&amount=2") == "duplicate_param"
    assert reason_of(f"bitcoin:{P2WPKH}?label=a&LABEL=b") == "duplicate_param"


def test_bip21_label_with_invalid_utf8_percent_escape_is_refused():
    assert reason_of(f"bitcoin:{P2WPKH}?label=%ff%fe") == "bad_encoding"


def test_bip21_plus_in_label_stays_a_plus_per_rfc3986():
    assert parse_payload(f"bitcoin:{P2WPKH}?label=a+b%26c").label == "a+b&c"


def test_bip21_with_a_bad_address_reports_the_address_problem():
    assert reason_of(f"bitcoin:{flip_char('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa', 12)}") == "bad_checksum"
    assert reason_of(f"bitcoin:{VALID_SEGWIT[1][0]}", network="main") == "wrong_network"
    assert reason_of("bitcoin:?amount=1") == "bad_address"


def test_bip21_with_only_a_lightning_invoice_yields_the_invoice_when_lightning_is_on():
    result = parse_payload(f"bitcoin:?lightning={BOLT11_COFFEE}", lightning=True)
    assert isinstance(result, LightningInvoice) and result.amount_msat == 250_000_000


def test_bip21_with_address_and_lightning_fallback_stays_an_onchain_request():
    result = parse_payload(f"bitcoin:{P2WPKH}?amount=0.0025&lightning={BOLT11_COFFEE}")
    assert isinstance(result, PaymentRequest) and result.amount_sats == 250_000


# --------------------------------------------------------------------------- Lightning


@pytest.mark.parametrize(
    "invoice,network,msat",
    [
        (BOLT11_DONATION, "main", None),
        (BOLT11_COFFEE, "main", 250_000_000),
        (BOLT11_TESTNET, "test", 2_000_000_000),
        (BOLT11_PICO, "main", 967_878_534),
        (BOLT11_UPPER, "main", 2_500_000_000),
    ],
)
def test_bolt11_example_invoices_are_accepted_with_the_amount_from_their_prefix(invoice, network, msat):
    result = parse_payload(invoice, network=network, lightning=True)
    assert result == LightningInvoice(invoice=invoice.lower(), network=network, amount_msat=msat)


def test_lightning_uri_prefix_is_accepted_in_any_case():
    result = parse_payload(f"LIGHTNING:{BOLT11_UPPER}", lightning=True)
    assert isinstance(result, LightningInvoice) and result.amount_msat == 2_500_000_000


@pytest.mark.parametrize(
    "invoice,reason",
    [
        (BOLT11_BAD_CHECKSUM, "bad_checksum"),
        (BOLT11_MIXED_CASE, "bad_invoice"),
        (BOLT11_TOO_SHORT, "bad_invoice"),
        (BOLT11_BAD_MULTIPLIER, "bad_amount"),
        (BOLT11_SUB_MSAT, "bad_amount"),
    ],
)
def test_bolt11_invalid_examples_are_refused_with_their_reason(invoice, reason):
    assert reason_of(invoice, lightning=True) == reason


def test_lightning_invoice_is_refused_when_the_kiosk_has_lightning_off():
    assert reason_of(BOLT11_COFFEE, lightning=False) == "lightning_disabled"
    assert reason_of(f"lightning:{BOLT11_COFFEE}") == "lightning_disabled"


def test_lightning_invoice_for_another_network_is_refused():
    assert reason_of(BOLT11_TESTNET, network="main", lightning=True) == "wrong_network"
    assert reason_of(BOLT11_COFFEE, network="test", lightning=True) == "wrong_network"


def test_lightning_invoice_with_a_bech32m_checksum_is_refused():
    # Re-encode the coffee invoice's data with the bech32m constant: BOLT11 only allows bech32.
    from embit.bech32 import CHARSET, Encoding, bech32_create_checksum

    hrp, data_part = BOLT11_COFFEE.rsplit("1", 1)
    values = [CHARSET.find(ch) for ch in data_part[:-6]]
    checksum = bech32_create_checksum(Encoding.BECH32M, hrp, values)
    rewritten = hrp + "1" + "".join(CHARSET[v] for v in values + checksum)
    assert reason_of(rewritten, lightning=True) == "bad_checksum"


# --------------------------------------------------------------------------- kiosk codes and refusals


def test_pairing_code_prefix_is_case_insensitive_and_payload_is_kept_verbatim():
    assert parse_payload("ATMPair:AbC-123_x/=") == PairingCode(payload="AbC-123_x/=")


def test_redeem_code_is_returned_verbatim():
    assert parse_payload("atmredeem:R-7F3K-92QX") == RedeemCode(code="R-7F3K-92QX")


@pytest.mark.parametrize("text,reason", [
    ("atmpair:", "bad_pairing_code"),
    ("atmpair:abc\x00def", "bad_pairing_code"),
    ("atmredeem:", "bad_redeem_code"),
    ("atmredeem:has space", "bad_redeem_code"),
    ("atmredeem:" + "x" * 129, "bad_redeem_code"),
])
def test_malformed_kiosk_codes_are_refused(text, reason):
    assert reason_of(text) == reason


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("   \r\n", "empty"),
    ("x" * (MAX_PAYLOAD_CHARS + 1), "too_long"),
    ("ethereum:0x52908400098527886E0F7030069857D2E4169EE7", "unknown_scheme"),
    ("https://example.com/pay", "unknown_scheme"),
    ("hello world", "not_a_payload"),
    ("12345", "not_a_payload"),
])
def test_text_that_is_no_payload_is_refused_with_a_reason(text, reason):
    assert reason_of(text) == reason


@pytest.mark.parametrize("payload,kind", [
    (BitcoinAddress(P2WPKH, "main", "p2wpkh"), "address"),
    (PaymentRequest(BitcoinAddress(P2WPKH, "main", "p2wpkh")), "bip21"),
    (LightningInvoice("lnbc1x", "main", None), "lightning"),
    (PairingCode("x"), "pairing"),
    (RedeemCode("x"), "redeem"),
])
def test_payload_kind_names_each_result_type(payload, kind):
    assert payload_kind(payload) == kind


# --------------------------------------------------------------------------- properties


_PAYLOAD_TYPES = (BitcoinAddress, PaymentRequest, LightningInvoice, PairingCode, RedeemCode)

_interesting_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l1bcQPZ", max_size=120).map(lambda s: "bc1" + s),
    st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l1", max_size=400).map(lambda s: "lnbc" + s),
    st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", min_size=20, max_size=40),
    st.text(max_size=120).map(lambda s: "bitcoin:" + P2WPKH + "?" + s),
    st.text(max_size=60).map(lambda s: "bitcoin:" + s),
    st.text(max_size=60).map(lambda s: "lightning:" + s),
)


@settings(max_examples=400, deadline=None)
@given(text=_interesting_text, network=st.sampled_from(["main", "test", "regtest", "signet"]),
       lightning=st.booleans())
def test_any_text_gives_a_payload_or_a_payload_error_never_another_exception(text, network, lightning):
    try:
        result = parse_payload(text, network=network, lightning=lightning)
    except PayloadError as exc:
        assert exc.reason and str(exc)
    else:
        assert isinstance(result, _PAYLOAD_TYPES)


@settings(max_examples=200, deadline=None)
@given(sats=st.integers(min_value=1, max_value=21_000_000 * 100_000_000))
def test_any_satoshi_amount_written_as_btc_decimal_round_trips_exactly(sats):
    whole, frac = divmod(sats, 100_000_000)
    result = parse_payload(f"bitcoin:{P2WPKH}?amount={whole}.{frac:08d}")
    assert result.amount_sats == sats
