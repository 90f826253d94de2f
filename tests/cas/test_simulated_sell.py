"""Simulate mode sells: the [sell] table of the kiosk configuration (config/simulate.toml)
is what the simulated operator signs, with the simulator chain's checkpoint, and what
the stand-in CAS sells by; a malformed [sell] stops start-up naming the key."""

from __future__ import annotations

import dataclasses

import pytest

from atm import config as config_mod
from atm.app import REPO_CONFIG, make_cas, simulated_settings, start_simulated_cas
from hal.errors import ConfigurationError
from hal.money import Fiat, Sats

SELL = "[sell]\nmin_sell_minor = 2000\nmax_sell_minor = 50000\nzero_conf_cap_sats = 50000\n" \
       "confirmations_required = 2\ninvoice_ttl_s = 900\n"


def parse(text):
    import tomllib
    return config_mod.parse(tomllib.loads(text), "kiosk.toml")


def test_simulate_configuration_sells():
    config = config_mod.load(REPO_CONFIG / "simulate.toml")
    assert config.sell == {"min_sell_minor": 2000, "max_sell_minor": 50000, "fee_percent": "5",
                           "fixed_fee_minor": 0, "zero_conf_cap_sats": 50000, "confirmations_required": 2,
                           "invoice_ttl_s": 900}


def test_no_sell_table_means_no_selling():
    assert parse("[kiosk]\nid = \"k\"\n").sell is None
    assert simulated_settings(parse("[kiosk]\nid = \"k\"\n"))["sell"] is None


@pytest.mark.parametrize("text, words", [
    ("[sell]\nmin_sell_minor = 2000\n", "[sell] needs max_sell_minor"),
    (SELL.replace("confirmations_required = 2", "confirmations_required = 0"), "[sell] confirmations_required = 0"),
    (SELL.replace("invoice_ttl_s = 900", "invoice_ttl_s = 30"), "[sell] invoice_ttl_s = 30"),
    (SELL.replace("max_sell_minor = 50000", "max_sell_minor = 1000"), "min_sell_minor (2000) is above"),
    (SELL + "fee_percent = \"lots\"\n", "[sell] fee_percent = 'lots'"),
    (SELL + "fixed_fee_minor = 2000\n", "[sell] fixed_fee_minor (2000) must be below"),
    (SELL + "zero_conf_cap = 5\n", "unknown key [sell] 'zero_conf_cap'"),
    (SELL.replace("zero_conf_cap_sats = 50000", "zero_conf_cap_sats = \"50000\""), "should be of type int"),
])
def test_bad_sell_table_stops_start_up_naming_the_key(text, words):
    with pytest.raises(ConfigurationError, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse(text)


async def test_simulated_operator_signs_the_sell_table_with_the_chains_checkpoint(tmp_path):
    config = dataclasses.replace(config_mod.load(REPO_CONFIG / "simulate.toml"), state_dir=tmp_path)
    operator, client = await start_simulated_cas(config)
    try:
        await client.poll_once()
        sell = client.settings().sell
        assert sell.checkpoint == operator.cas.chain.checkpoint
        assert (sell.min_sell, sell.zero_conf_cap_sats, sell.confirmations_required) == (
            Fiat(2000, "EUR"), 50000, 2)
        await client.sell_invoice("sim-1", Fiat(5_000, "EUR"), Sats(9_000))
        operator.cas.pay_invoice("sim-1", 9_000)
        assert (await client.sell_payment("sim-1")).state == "proven"
    finally:
        await client.stop()
        await operator.stop()


async def test_standin_of_simulate_mode_sells_by_the_sell_table(tmp_path):
    config = dataclasses.replace(config_mod.load(REPO_CONFIG / "simulate.toml"), state_dir=tmp_path)
    standin = make_cas(config, simulate=True)
    sell = standin.settings().sell
    assert (sell.max_sell, sell.invoice_ttl_s, sell.checkpoint) == (Fiat(50000, "EUR"), 900, standin.chain.checkpoint)
