"""The LCDM drivers as configuration names them: the composition root builds them with
the kiosk's currency and the cassettes' denominations, and refuses what they do not take."""

from __future__ import annotations

from pathlib import Path

import pytest

from atm.composition import build_device
from atm.config import Config, DeviceConfig
from drivers.lcdm.driver import LcdmDispenser
from hal.errors import ConfigurationError
from hal.money import Fiat


def build(driver: str, **options):
    config = Config(source="test.toml", currency="CHF", state_dir=Path("unused"))
    return build_device(config, DeviceConfig("dispenser", driver, options), simulate=False)


def test_configuration_names_the_model_and_the_cassette_denominations():
    four = build("lcdm4000", port="socket://127.0.0.1:1", denominations=[1000, 2000, 5000])
    assert isinstance(four, LcdmDispenser) and four.model.name == "lcdm4000"
    assert [(c.id, c.denomination) for c in four.cassettes] == [("1", Fiat(1000, "CHF")), ("2", Fiat(2000, "CHF")),
                                                                ("3", Fiat(5000, "CHF"))]
    assert four.parity == "auto" and four.name == "dispenser"
    two = build("lcdm2000", port="/dev/ttyUSB1", denominations={"lower": 5000}, parity="even")
    assert two.model.name == "lcdm2000" and two.parity == "even"
    assert [(c.id, c.denomination.minor) for c in two.cassettes] == [("lower", 5000)]


@pytest.mark.parametrize("options,words", [
    ({"port": "socket://127.0.0.1:1", "baud": 9600}, "unknown key 'baud'"),
    ({"port": "socket://127.0.0.1:1", "denominations": [1000, 2000, 5000]}, "2 cassettes"),
    ({"port": "socket://127.0.0.1:1", "denominations": {"middle": 1000}}, "'middle'"),
    ({"port": "socket://127.0.0.1:1", "denominations": [0]}, "positive"),
    ({"port": "socket://127.0.0.1:1", "parity": "odd"}, "parity"),
    ({}, "needs port"),
])
def test_bad_dispenser_configuration_is_refused_by_name(options, words):
    with pytest.raises(ConfigurationError) as info:
        build("lcdm2000", **options)
    assert words in str(info.value)
