"""`atm-operator`: key, pairing code (text and QR), signed bundles and commands, verify."""

from __future__ import annotations

import json
import re
import stat

import pytest

from atm.cas.pairing import parse_pairing_code
from atm.cas.signing import load_operator_key, public_key_text
from atm.operator_cli import main


@pytest.fixture
def key_path(tmp_path, capsys):
    path = tmp_path / "operator.key"
    assert main(["keygen", "--out", str(path)]) == 0
    capsys.readouterr()
    return path


def test_keygen_writes_a_private_key_file_and_the_public_key(key_path):
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    pub = (key_path.parent / "operator.key.pub").read_text().strip()
    assert pub == public_key_text(load_operator_key(key_path))


def test_keygen_refuses_to_overwrite_a_key(key_path, capsys):
    assert main(["keygen", "--out", str(key_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_pairing_code_text_and_qr_carry_the_same_offer(tmp_path, key_path, capsys):
    png = tmp_path / "pair.png"
    assert main(["pairing-code", "--key", str(key_path), "--cas-url", "https://cas.example:8443",
                 "--cas-pin", "ab" * 32, "--kiosk-id", "kiosk-3", "--png", str(png)]) == 0
    captured = capsys.readouterr()
    text = captured.out.strip()
    offer = parse_pairing_code(text)
    assert (offer.cas_url, offer.cas_pin, offer.kiosk_id) == ("https://cas.example:8443", "ab" * 32, "kiosk-3")
    assert offer.operator_key == public_key_text(load_operator_key(key_path))
    assert offer.token in captured.err
    import zxingcpp
    from PIL import Image
    decoded = zxingcpp.read_barcodes(Image.open(png))
    assert [d.text for d in decoded] == [text]


def write_settings(tmp_path, **changes):
    settings = {"currency": "EUR", "min_buy_minor": 500, "max_buy_minor": 50_000, "fee_percent": "3"}
    settings.update(changes)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def test_signed_bundle_verifies_and_a_tampered_one_does_not(tmp_path, key_path, capsys):
    out = tmp_path / "bundle.json"
    assert main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "7",
                 "--settings", str(write_settings(tmp_path)), "--rate-bounds", "20000:200000",
                 "--out", str(out)]) == 0
    pub = str(key_path.parent / "operator.key.pub")
    capsys.readouterr()
    assert main(["verify", str(out), "--pub", pub, "--kiosk-id", "kiosk-3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["signature"], result["version"]) == (True, "valid", 7)
    doc = json.loads(out.read_text())
    doc["payload"]["settings"]["fee_percent"] = "0"
    out.write_text(json.dumps(doc))
    assert main(["verify", str(out), "--pub", pub]) == 1
    assert json.loads(capsys.readouterr().out)["signature"] == "invalid"


def test_bundle_a_kiosk_would_refuse_is_not_signed(tmp_path, key_path, capsys):
    out = tmp_path / "bundle.json"
    code = main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "1",
                 "--settings", str(write_settings(tmp_path, fee_percent=2.5)), "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "decimals must be strings" in capsys.readouterr().err


def test_signed_command_verifies_for_its_kiosk_only(tmp_path, key_path, capsys):
    out = tmp_path / "cmd.json"
    assert main(["sign-command", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--name", "activate",
                 "--sequence", "4", "--out", str(out)]) == 0
    pub = str(key_path.parent / "operator.key.pub")
    capsys.readouterr()
    assert main(["verify", str(out), "--pub", pub, "--kiosk-id", "kiosk-3"]) == 0
    assert json.loads(capsys.readouterr().out)["sequence"] == 4
    assert main(["verify", str(out), "--pub", pub, "--kiosk-id", "kiosk-4"]) == 1


def test_unsigned_document_is_reported_missing(tmp_path, key_path, capsys):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"payload": {"type": "atm-command", "name": "activate"}}))
    assert main(["verify", str(path), "--pub", str(key_path.parent / "operator.key.pub")]) == 1
    assert json.loads(capsys.readouterr().out)["signature"] == "missing"


def test_bundle_without_rate_bounds_is_not_signed_and_the_error_says_how(tmp_path, key_path, capsys):
    out = tmp_path / "bundle.json"
    code = main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "1",
                 "--settings", str(write_settings(tmp_path)), "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "no signed rate range for the kiosk's currency EUR" in capsys.readouterr().err


@pytest.mark.parametrize("option, bounds", [("20000:200000", ["20000", "200000"]),
                                            ("EUR=30000.5:90000", ["30000.5", "90000"])])
def test_rate_bounds_and_quote_age_options_go_into_the_signed_settings(tmp_path, key_path, capsys, option, bounds):
    out = tmp_path / "bundle.json"
    assert main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "2",
                 "--settings", str(write_settings(tmp_path, fixed_fee_minor=100)), "--rate-bounds", option,
                 "--quote-max-age", "45", "--out", str(out)]) == 0
    settings = json.loads(out.read_text())["payload"]["settings"]
    assert settings["rate_bounds"] == {"EUR": bounds} and settings["quote_max_age_s"] == 45


def test_rate_bounds_in_the_settings_file_need_no_option(tmp_path, key_path):
    out = tmp_path / "bundle.json"
    path = write_settings(tmp_path, rate_bounds={"EUR": ["20000", "200000"]})
    assert main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "3",
                 "--settings", str(path), "--out", str(out)]) == 0


@pytest.mark.parametrize("option, words", [("20000", "expected \\[CUR=\\]LOWEST:HIGHEST"),
                                           ("100:50", "lowest <= highest"),
                                           ("20000:1e99", "lowest <= highest")])
def test_bad_rate_bounds_option_is_refused_with_what_is_expected(tmp_path, key_path, capsys, option, words):
    out = tmp_path / "bundle.json"
    code = main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "1",
                 "--settings", str(write_settings(tmp_path)), "--rate-bounds", option, "--out", str(out)])
    assert code == 2 and not out.exists()
    assert re.search(words, capsys.readouterr().err)


def test_fixed_fee_at_the_minimum_purchase_is_not_signed(tmp_path, key_path, capsys):
    code = main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "1",
                 "--settings", str(write_settings(tmp_path, fixed_fee_minor=500)), "--rate-bounds", "1:2"])
    assert code == 2
    assert "must be below min_buy_minor" in capsys.readouterr().err


SELL_OPTIONS = ["--sell-limits", "2000:50000", "--sell-fee", "6.5", "--sell-fixed-fee", "100",
                "--zero-conf-cap", "40000", "--confirmations", "2", "--invoice-ttl", "900",
                "--checkpoint", "800000:" + "00" * 31 + "ab", "--checkpoint-bits", "1f7fffff"]


def sign_with(tmp_path, key_path, *options, settings_path=None):
    from .test_bundle import XPUB
    out = tmp_path / "bundle.json"
    path = settings_path or write_settings(tmp_path, wallet={"xpub": XPUB, "network": "regtest"})
    code = main(["sign-bundle", "--key", str(key_path), "--kiosk-id", "kiosk-3", "--version", "4",
                 "--settings", str(path), "--rate-bounds", "20000:200000", "--out", str(out), *options])
    return code, out


def test_sell_options_go_into_the_signed_sell_table(tmp_path, key_path):
    from atm.cas.bundle import parse_payload
    code, out = sign_with(tmp_path, key_path, *SELL_OPTIONS)
    assert code == 0
    payload = json.loads(out.read_text())["payload"]
    assert payload["settings"]["sell"] == {
        "min_sell_minor": 2000, "max_sell_minor": 50000, "fee_percent": "6.5", "fixed_fee_minor": 100,
        "zero_conf_cap_sats": 40000, "confirmations_required": 2, "invoice_ttl_s": 900,
        "checkpoint": {"height": 800000, "block_hash": "00" * 31 + "ab", "max_bits": "1f7fffff"}}
    sell = parse_payload(payload).sell
    assert (sell.zero_conf_cap_sats, sell.checkpoint.height) == (40000, 800000)


def test_sell_option_overrides_the_settings_file_and_target_replaces_bits(tmp_path, key_path):
    code, out = sign_with(tmp_path, key_path, *SELL_OPTIONS)
    settings = json.loads(out.read_text())["payload"]["settings"]
    path = tmp_path / "with-sell.json"
    path.write_text(json.dumps(settings))
    code, out = sign_with(tmp_path, key_path, "--confirmations", "6", "--checkpoint-target", "0x7fffff" + "00" * 29,
                          settings_path=path)
    sell = json.loads(out.read_text())["payload"]["settings"]["sell"]
    assert code == 0 and sell["confirmations_required"] == 6
    assert sell["checkpoint"] == {"height": 800000, "block_hash": "00" * 31 + "ab", "max_target": "7fffff" + "00" * 29}


@pytest.mark.parametrize("options, words", [
    (["--sell-limits", "2000"], "--sell-limits '2000': expected MIN:MAX"),
    (["--checkpoint", "800000"], "--checkpoint '800000': expected HEIGHT:BLOCKHASH"),
    (SELL_OPTIONS[:-2], "settings.sell.checkpoint: give exactly one of max_target"),
    (["--zero-conf-cap", "1000"], "settings.sell.min_sell_minor: missing"),
    ([*SELL_OPTIONS, "--confirmations", "0"], "settings.sell.confirmations_required"),
])
def test_sell_settings_a_kiosk_would_refuse_are_not_signed(tmp_path, key_path, capsys, options, words):
    code, out = sign_with(tmp_path, key_path, *options)
    assert code == 2 and not out.exists()
    assert words in capsys.readouterr().err
