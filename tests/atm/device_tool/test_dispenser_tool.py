"""`atm device status|dispense --driver {lcdm2000,lcdm4000}` against the LCDM simulator on a
pty: the JSON shape, the text, the exit codes, and one dispense command per run whatever
the line does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from atm.cli import main
from atm.device_tool.dispenser import parse_notes
from hal.errors import ConfigurationError
from simulators.lcdm import LcdmSimulator

DISPENSE_KEYS = {"driver", "requested", "exited", "rejected", "error", "outcome"}


@pytest.fixture(params=["lcdm2000", "lcdm4000"])
def sim(request):
    simulator = LcdmSimulator(request.param, note_s=0.001)
    simulator.start("pty")
    yield simulator
    simulator.stop()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["device", *args])
    out, err = capsys.readouterr()
    return code, out, err


def dispense(capsys, sim, notes: str, *extra: str) -> tuple[int, dict | None, str]:
    code, out, err = run(capsys, "dispense", "--driver", sim.model.name, "--port", sim.url, "--notes", notes,
                         "--json", "--response-timeout", "1.0", *extra)
    return code, (json.loads(out) if out.strip() else None), err


def test_status_json_names_model_rom_and_cassettes(capsys, sim):
    sim.set_count(0, 5)
    code, out, _ = run(capsys, "status", "--driver", sim.model.name, "--port", sim.url, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["driver"] == sim.model.name and result["model"] == sim.model.title
    assert result["state"] == "online"
    cassettes = result["cassettes"]
    assert [c["id"] for c in cassettes] == list(sim.model.cassettes)
    assert cassettes[0] == {"id": sim.model.cassettes[0], "present": True, "near_end": True}
    if sim.model.name == "lcdm2000":
        assert result["rom"] == "T20T5624"
    else:
        assert result["rom"] is None and cassettes[3]["present"] is False


def test_status_text_lists_every_cassette(capsys, sim):
    sim.remove_cassette(1)
    code, out, _ = run(capsys, "status", "--driver", sim.model.name, "--port", sim.url)
    assert code == 0
    assert sim.model.title in out
    assert f"cassette {sim.model.cassettes[1]:<5} missing" in out
    assert ("T20T5624" in out) == (sim.model.name == "lcdm2000")


def test_complete_dispense_prints_the_exact_shape_and_exits_zero(capsys, sim):
    notes = "3,2" if sim.model.name == "lcdm2000" else "3,0,2"
    code, result, _ = dispense(capsys, sim, notes)
    assert code == 0
    assert set(result) == DISPENSE_KEYS
    want = [int(n) for n in notes.split(",")]
    assert result == {"driver": sim.model.name, "requested": want, "exited": want,
                      "rejected": [0] * len(want), "error": None, "outcome": "complete"}
    assert sim.delivered()[:len(want)] == want and sim.dispense_commands == 1


def test_text_dispense_names_each_cassette(capsys, sim):
    code, out, _ = run(capsys, "dispense", "--driver", sim.model.name, "--port", sim.url, "--notes", "1")
    assert code == 0
    assert f"exited     {sim.model.cassettes[0]}:1" in out and "outcome    complete" in out


def test_a_jam_is_a_partial_dispense_with_exit_one(capsys, sim):
    sim.jam_after(2)
    code, result, err = dispense(capsys, sim, "5")
    assert code == 1
    assert result["outcome"] == "partial" and result["error"] == "jam" and result["exited"] == [2]
    assert "stopped short" in err


def test_double_picks_show_as_rejected_and_the_dispense_still_completes(capsys, sim):
    sim.set_double_picks(1)
    code, result, _ = dispense(capsys, sim, "2")
    assert code == 0 and result["exited"] == [2] and result["rejected"] == [1]


def test_a_lost_ack_does_not_make_the_tool_dispense_twice(capsys, sim):
    """Mutation caught (in the driver): resending a dispense when its ACK is late."""
    sim.note_s = 0.5             # as on a real unit, the notes take longer than the ACK wait
    sim.lose_ack_once()
    code, result, _ = dispense(capsys, sim, "2")
    assert sim.dispense_commands == 1 and sim.delivered()[0] == 2
    assert code == 0 and result["outcome"] == "complete"


def test_a_lost_answer_is_never_resent_and_is_reported_for_counting(capsys, sim):
    sim.lose_answer_once()
    code, result, err = dispense(capsys, sim, "2")
    assert sim.dispense_commands == 1 and sim.delivered()[0] == 2
    if sim.model.name == "lcdm4000":
        assert code == 0 and result["outcome"] == "complete" and result["exited"] == [2]
    else:
        assert code == 1 and result["outcome"] == "unknown" and result["error"] == "noAnswer"
        assert "NOT sent again" in err and "count the cassettes" in err


@pytest.mark.parametrize("notes", ["x", "1,,2", "-1", "0", "0,0", "1,1,1,1,1", "1.5"])
def test_bad_notes_are_a_usage_error_and_nothing_is_sent(capsys, sim, notes):
    code, result, err = dispense(capsys, sim, notes)
    assert code == 2 and result is None and "--notes" in err
    assert sim.dispense_commands == 0


def test_a_port_that_does_not_open_is_a_usage_error(capsys):
    for command in (["dispense", "--notes", "1"], ["status"]):
        code, out, err = run(capsys, *command, "--driver", "lcdm4000", "--port", "/dev/nonexistent-lcdm")
        assert code == 2 and out == "" and "/dev/nonexistent-lcdm" in err


def test_a_unit_that_does_not_answer_exits_one_and_dispenses_nothing(capsys):
    silent = LcdmSimulator("lcdm2000", note_s=0.0)       # answers only its own ID
    silent.start("pty")
    try:
        code, out, err = run(capsys, "dispense", "--driver", "lcdm4000", "--port", silent.url, "--notes", "1",
                             "--parity", "none")
        assert code == 1 and out == "" and "nothing was dispensed" in err
        assert silent.dispense_commands == 0
    finally:
        silent.stop()


def test_status_for_a_validator_driver_is_still_answered_by_the_validator_tool(capsys):
    code, _out, err = run(capsys, "status", "--driver", "id003", "--port", "/dev/nonexistent-validator")
    assert code == 2 and "(id003 on /dev/nonexistent-validator)" in err


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=20), cassettes=st.integers(1, 4))
def test_notes_parser_gives_counts_or_a_configuration_error(text, cassettes):
    try:
        notes = parse_notes(text, cassettes)
    except ConfigurationError as exc:
        assert "--notes" in str(exc)
        return
    assert 1 <= len(notes) <= cassettes and sum(notes) > 0 and all(n >= 0 for n in notes)
