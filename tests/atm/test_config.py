"""Configuration: anything wrong stops start-up with a message naming the file,
the key and what was expected; random input never escapes as another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from atm import config as config_mod
from atm.app import REPO_CONFIG
from hal import Fiat
from hal.errors import ConfigurationError


def _load_text(tmp_path, text: str):
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return config_mod.load(path), path


def test_the_shipped_configurations_load():
    sim = config_mod.load(REPO_CONFIG / "simulate.toml")
    assert sim.network == "regtest" and sim.max_buy == Fiat(100_000, "EUR")
    example = config_mod.load(REPO_CONFIG / "kiosk.example.toml")
    assert example.devices["validator"].driver == "id003"
    assert example.devices["validator"].options["port"].startswith("/dev/")


def test_a_missing_file_names_the_file_and_the_example(tmp_path):
    with pytest.raises(ConfigurationError, match=r"nope\.toml.*not found.*kiosk\.example\.toml"):
        config_mod.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text, words", [
    ("[kiosk]\ncurrencyy = \"EUR\"\n", ["kiosk.toml", "[kiosk]", "currencyy", "known keys"]),
    ("[limits]\nmax_buy_minor = \"1000\"\n", ["[limits] max_buy_minor", "int"]),
    ("[limits]\nmax_buy_minor = 10.5\n", ["max_buy_minor", "int"]),
    ("[kiosk]\nnetwork = \"mainnet\"\n", ["network", "main, test, regtest, signet"]),
    ("[ui]\nhost = \"0.0.0.0\"\n", ["host", "loopback"]),
    ("[limits]\nmin_buy_minor = 900\nmax_buy_minor = 100\n", ["min_buy_minor", "above"]),
    ("[limits]\nfee_percent = \"lots\"\n", ["fee_percent", "decimal"]),
    ("[bogus]\nx = 1\n", ["unknown table [bogus]"]),
    ("[devices.toaster]\ndriver = \"x\"\n", ["devices.toaster"]),
    ("[devices.validator]\nport = \"/dev/ttyUSB0\"\n", ["[devices.validator]", "driver"]),
    ("[kiosk\n", ["not valid TOML"]),
    ("[limits]\nmax_buy_minor = true\n", ["max_buy_minor", "int"]),
])
def test_a_wrong_key_or_value_names_the_file_the_key_and_what_was_expected(tmp_path, text, words):
    with pytest.raises(ConfigurationError) as info:
        _load_text(tmp_path, text)
    for word in words:
        assert word in str(info.value)


def test_a_driver_option_the_driver_does_not_know_is_refused_by_name(tmp_path):
    from atm.composition import build_devices
    config, _ = _load_text(tmp_path, "[devices.validator]\ndriver = \"id003\"\nport = \"socket://127.0.0.1:1\"\n"
                                     "baud = 9600\n[devices.scanner]\ndriver = \"camera\"\nsource = \"0\"\n")
    with pytest.raises(ConfigurationError, match=r"\[devices.validator\] unknown key 'baud'"):
        build_devices(config, simulate=False)


def test_a_stand_in_device_is_refused_outside_simulate_mode(tmp_path):
    from atm.composition import build_devices
    config, _ = _load_text(tmp_path, "[devices.validator]\ndriver = \"standin\"\n"
                                     "[devices.scanner]\ndriver = \"standin\"\n")
    with pytest.raises(ConfigurationError, match="simulator"):
        build_devices(config, simulate=False)


def test_the_mock_gpio_backend_is_never_accepted_on_a_real_kiosk(tmp_path):
    from atm.composition import build_devices
    config, _ = _load_text(tmp_path, "[devices.validator]\ndriver = \"id003\"\nport = \"socket://127.0.0.1:1\"\n"
                                     "[devices.scanner]\ndriver = \"camera\"\nsource = \"0\"\n"
                                     "[devices.sensors]\ndriver = \"gpio\"\npin_factory = \"mock\"\n")
    with pytest.raises(ConfigurationError, match="simulate mode only"):
        build_devices(config, simulate=False)


async def test_a_port_that_does_not_open_stops_start_up_naming_the_key(tmp_path):
    import subprocess
    import sys
    from paired_cas import paired_cas_state
    cas_dir = await paired_cas_state(tmp_path)
    path = tmp_path / "kiosk.toml"
    path.write_text(f"[kiosk]\nid = \"kiosk-1\"\nstate_dir = \"{tmp_path / 'var'}\"\n[ui]\nport = 0\n"
                    f"[cas]\nmode = \"client\"\nstate_dir = \"{cas_dir}\"\n"
                    "[devices.validator]\ndriver = \"id003\"\nport = \"/dev/does-not-exist-ttyUSB9\"\n"
                    "[devices.scanner]\ndriver = \"serial\"\nport = \"/dev/does-not-exist-scan\"\n")
    result = subprocess.run([sys.executable, "-m", "atm.cli", "run", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "kiosk.toml" in result.stderr and "[devices." in result.stderr and "does-not-exist" in result.stderr


_toml_scalars = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=12), st.booleans(),
                          st.floats(allow_nan=False, allow_infinity=False))
_tables = st.sampled_from(["kiosk", "limits", "operator", "timeouts", "ui", "service", "printer", "cas",
                           "nonsense"])
_keys = st.sampled_from(["id", "currency", "network", "min_buy_minor", "max_buy_minor", "fee_percent", "port",
                         "host", "scan", "cash", "mode", "on_paper_out", "pin_hash", "name", "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_tables, st.dictionaries(_keys, _toml_scalars, max_size=4), max_size=4))
def test_any_parsed_toml_gives_a_config_or_a_configuration_error(data):
    try:
        result = config_mod.parse(data, "fuzz.toml")
    except ConfigurationError as exc:
        assert "fuzz.toml" in str(exc)
    else:
        assert result.min_buy <= result.max_buy
        assert result.ui_host in ("127.0.0.1", "::1", "localhost")


def test_an_unpaired_kiosk_in_client_mode_says_how_to_pair(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "kiosk.toml"
    path.write_text(f"[kiosk]\nstate_dir = \"{tmp_path / 'var'}\"\n[cas]\nmode = \"client\"\n"
                    f"state_dir = \"{tmp_path / 'cas'}\"\n"
                    "[devices.validator]\ndriver = \"id003\"\nport = \"socket://127.0.0.1:9\"\n"
                    "[devices.scanner]\ndriver = \"serial\"\nport = \"socket://127.0.0.1:9\"\n")
    result = subprocess.run([sys.executable, "-m", "atm.cli", "run", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "not paired" in result.stderr and "atm cas pair" in result.stderr
    assert "Traceback" not in result.stderr
