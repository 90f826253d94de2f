"""Configuration: anything wrong stops start-up with a message naming the file,
the key and what was expected; random input never escapes as another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pathlib import Path

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
                          st.floats(allow_nan=False, allow_infinity=False),
                          st.lists(st.one_of(st.integers(-10, 10**7), st.text(max_size=8), st.floats()), max_size=3))
_tables = st.sampled_from(["kiosk", "limits", "operator", "timeouts", "ui", "service", "printer", "cas",
                           "nonsense"])
_keys = st.sampled_from(["id", "currency", "network", "min_buy_minor", "max_buy_minor", "fee_percent", "port",
                         "host", "scan", "cash", "mode", "on_paper_out", "pin_hash", "name", "x",
                         "fixed_fee_minor", "rate_bounds", "quote_max_age_s", "state_dir"])


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


@pytest.mark.parametrize("cas_table", ["", "[cas]\nmode = \"standin\"\n", "[cas]\nmode = \"client\"\n"],
                         ids=["no [cas] table", "stand-in CAS", "client never paired"])
def test_a_real_kiosk_without_a_paired_cas_refuses_to_start_before_any_device_is_opened(tmp_path, cas_table):
    """Before the fix a configuration with no [cas] table ran on the in-process stand-in CAS
    and took cash for coins it never sent. Mutation caught: make_cas() accepting the
    stand-in outside simulate mode (the validator's port gets a connection, and the
    kiosk keeps running)."""
    import socket
    import subprocess
    import sys
    with socket.socket() as device:  # where the validator and scanner would be: nothing may connect
        device.bind(("127.0.0.1", 0))
        device.listen(8)
        url = f"socket://127.0.0.1:{device.getsockname()[1]}"
        path = tmp_path / "kiosk.toml"
        path.write_text(f"[kiosk]\nstate_dir = \"{tmp_path / 'var'}\"\n[ui]\nport = 0\n{cas_table}"
                        f"[devices.validator]\ndriver = \"id003\"\nport = \"{url}\"\n"
                        f"[devices.scanner]\ndriver = \"serial\"\nport = \"{url}\"\n")
        proc = subprocess.Popen([sys.executable, "-m", "atm.cli", "run", "--config", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.returncode != 0
        assert "[cas]" in stderr and "kiosk.toml" in stderr and "Traceback" not in stderr, stderr
        device.setblocking(False)
        with pytest.raises(BlockingIOError):
            device.accept()
    assert not (tmp_path / "var" / "journal.sqlite").exists()


def test_relative_paths_resolve_against_the_configuration_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "kiosk.toml").write_text('[kiosk]\nstate_dir = "state"\n[cas]\nmode = "client"\nstate_dir = "../cas"\n')
    monkeypatch.chdir(tmp_path)
    config = config_mod.load("etc/kiosk.toml")
    assert config.state_dir == folder.resolve() / "state"
    assert config.cas_state_dir.resolve() == (tmp_path / "cas").resolve()
    absolute = config_mod.parse({"kiosk": {"state_dir": "/var/lib/atm"}}, "x.toml", base=folder)
    assert absolute.state_dir == Path("/var/lib/atm") and absolute.cas_state_dir == Path("/var/lib/atm/cas")


def test_the_shipped_simulator_keeps_its_state_in_the_repository_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_mod.load(REPO_CONFIG / "simulate.toml").state_dir.resolve() == \
        (REPO_CONFIG.parent / "var" / "sim").resolve()


def test_limits_sign_a_fixed_fee_rate_bounds_and_a_quote_age(tmp_path):
    from decimal import Decimal
    config, _ = _load_text(tmp_path, '[limits]\nmin_buy_minor = 500\nfixed_fee_minor = 100\n'
                                     'rate_bounds = ["20000", 90000]\nquote_max_age_s = 30\n')
    assert config.fixed_fee == Fiat(100, "EUR")
    assert config.rate_bounds == (Decimal("20000"), Decimal("90000"))
    assert config.quote_max_age_s == 30
    defaults = config_mod.parse({}, "x.toml")
    assert defaults.fixed_fee == Fiat(0, "EUR") and defaults.rate_bounds is None and defaults.quote_max_age_s == 60


@pytest.mark.parametrize("text, words", [
    ('[limits]\nmin_buy_minor = 500\nfixed_fee_minor = 500\n', ["fixed_fee_minor", "below min_buy_minor"]),
    ('[limits]\nfixed_fee_minor = -1\n', ["fixed_fee_minor", "0 or more"]),
    ('[limits]\nrate_bounds = ["90000", "20000"]\n', ["rate_bounds", "lowest <= highest"]),
    ('[limits]\nrate_bounds = [20000.5, 90000]\n', ["rate_bounds", "decimal strings"]),
    ('[limits]\nrate_bounds = ["0", "1"]\n', ["rate_bounds", "0 < lowest"]),
    ('[limits]\nrate_bounds = ["lots", "1"]\n', ["rate_bounds"]),
    ('[limits]\nrate_bounds = ["NaN", "1"]\n', ["rate_bounds"]),
    ('[limits]\nrate_bounds = "20000"\n', ["rate_bounds", "list"]),
    ('[limits]\nquote_max_age_s = 0\n', ["quote_max_age_s", "10 to 600"]),
    ('[limits]\nquote_max_age_s = 601\n', ["quote_max_age_s", "10 to 600"]),
])
def test_wrong_fee_or_rate_settings_name_the_key(tmp_path, text, words):
    with pytest.raises(ConfigurationError) as info:
        _load_text(tmp_path, text)
    for word in words:
        assert word in str(info.value)
