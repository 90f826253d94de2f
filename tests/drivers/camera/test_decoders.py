"""The decoder chain: reads rendered camera frames in every distortion, stops at
the first success, survives a failing decoder and a missing zbar library."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from drivers.camera import decoders as decoders_module
from drivers.camera.decoders import (
    DEFAULT_ORDER,
    Decoded,
    DecoderChain,
    FallbackBudget,
    build_chain,
    to_gray,
)
from hal.errors import ConfigurationError
from simulators.camera import DISTORTIONS, Scene, render_empty, render_frame, scene_for

BIP21 = "bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4?amount=0.0025&label=Kiosk%201"
INVOICE = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn"
    "3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
)


class ScriptedDecoder:
    """A decoder that answers from a script and records that it was asked."""

    def __init__(self, name: str, answer: str | None = None, error: Exception | None = None) -> None:
        self.name = name
        self.answer = answer
        self.error = error
        self.calls = 0

    def decode(self, gray: np.ndarray) -> str | None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture(scope="module")
def default_chain() -> DecoderChain:
    return build_chain(DEFAULT_ORDER)


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
def test_default_chain_reads_a_payment_request_in_each_distortion(default_chain, distortion):
    frame = render_frame(BIP21, scene_for(distortion, seed=7))
    result = default_chain.decode(frame)
    assert result is not None, f"no decoder read the {distortion} frame"
    assert result.text == BIP21
    assert result.decoder in DEFAULT_ORDER


@pytest.mark.parametrize("distortion", ["none", "noise", "rotation", "glare", "dark"])
def test_default_chain_reads_a_long_lightning_invoice(default_chain, distortion):
    frame = render_frame(INVOICE, scene_for(distortion, seed=11))
    result = default_chain.decode(frame)
    assert result is not None and result.text == INVOICE


@pytest.mark.parametrize("name", ["zxing", "pyzbar", "opencv", "opencv_aruco"])
def test_each_decoder_alone_reads_a_clean_frame(name):
    chain = build_chain([name])
    result = chain.decode(render_frame(BIP21, Scene(code_fraction=0.7)))
    assert result == Decoded(text=BIP21, decoder=name, ms=result.ms)
    assert result.ms >= 0


def test_chain_finds_nothing_in_an_empty_frame(default_chain):
    assert default_chain.decode(render_empty(seed=3)) is None


def test_chain_stops_at_the_first_decoder_that_reads_the_code():
    first, second, third = ScriptedDecoder("a"), ScriptedDecoder("b", "hello"), ScriptedDecoder("c", "other")
    result = DecoderChain([first, second, third]).decode(np.zeros((8, 8), np.uint8))
    assert (result.text, result.decoder) == ("hello", "b")
    assert (first.calls, second.calls, third.calls) == (1, 1, 0)


def test_a_decoder_that_raises_is_skipped_and_the_next_one_reads(caplog):
    broken = ScriptedDecoder("broken", error=RuntimeError("library bug"))
    working = ScriptedDecoder("working", "text")
    with caplog.at_level(logging.ERROR):
        result = DecoderChain([broken, working]).decode(np.zeros((8, 8, 3), np.uint8))
    assert result.decoder == "working"
    assert "broken" in caplog.text


def test_primary_and_fallbacks_split_the_chain_after_the_first_decoder():
    first, second = ScriptedDecoder("a"), ScriptedDecoder("b", "x")
    chain = DecoderChain([first, second])
    assert chain.decode_primary(np.zeros((4, 4), np.uint8)) is None
    assert chain.decode_fallbacks(np.zeros((4, 4), np.uint8)).decoder == "b"
    assert (first.calls, second.calls) == (1, 1)


def test_missing_zbar_library_names_the_debian_package_and_the_chain_goes_on(monkeypatch, caplog):
    # A None entry in sys.modules makes the import fail the way a missing libzbar does.
    monkeypatch.setitem(sys.modules, "pyzbar.pyzbar", None)
    with caplog.at_level(logging.ERROR):
        chain = build_chain(["zxing", "pyzbar", "opencv"])
    assert chain.names == ["zxing", "opencv"]
    assert "libzbar0" in caplog.text
    assert chain.decode(render_frame(BIP21)).text == BIP21


def test_chain_with_no_loadable_decoder_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyzbar.pyzbar", None)
    with pytest.raises(ConfigurationError, match="empty"):
        build_chain(["pyzbar"])


@pytest.mark.parametrize("names,words", [(["zxing", "qrmagic"], "unknown decoder 'qrmagic'"),
                                         (["zxing", "zxing"], "listed twice")])
def test_bad_decoder_configuration_names_the_problem(names, words):
    with pytest.raises(ConfigurationError, match=words):
        build_chain(names)


def test_configured_order_is_kept():
    assert build_chain(["opencv", "zxing"]).names == ["opencv", "zxing"]


def test_frames_of_any_channel_layout_become_gray():
    assert to_gray(np.zeros((4, 5), np.uint8)).shape == (4, 5)
    assert to_gray(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5)
    assert to_gray(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5)
    assert to_gray(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5)
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((4, 5, 2), np.uint8))


def test_fallback_budget_lets_slow_decoders_run_only_on_spare_time():
    budget = FallbackBudget(interval_s=0.030)
    pattern = []
    for _ in range(12):
        allowed = budget.allow()
        pattern.append(allowed)
        # The primary decoder costs 3 ms; fallbacks add 80 ms when they run.
        budget.spend(0.003 + (0.080 if allowed else 0.0))
    # Fallbacks run on roughly one frame in three, and the time spent stays near one interval per frame.
    assert 3 <= sum(pattern) <= 5
    assert pattern[0] is True


def test_fallback_budget_allows_every_frame_when_decoding_is_fast():
    budget = FallbackBudget(interval_s=0.030)
    for _ in range(20):
        assert budget.allow()
        budget.spend(0.010)


@settings(max_examples=60, deadline=None)
@given(frame=arrays(np.uint8, st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3]))))
def test_any_frame_gives_a_decoded_code_or_none_never_an_exception(default_chain, frame):
    result = default_chain.decode(frame)
    assert result is None or isinstance(result.text, str)


def test_decoder_registry_names_match_the_decoders_they_build():
    for name, factory in decoders_module.DECODERS.items():
        assert factory().name == name
