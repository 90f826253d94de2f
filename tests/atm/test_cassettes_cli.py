"""`atm cassettes`: the technician books refills and reject-bin counts in the journal, and
reads the cassette books; and the simulated world's dispenser choices and panel controls."""

from __future__ import annotations

import asyncio
import json

from atm.cli import main
from atm.journal import Journal
from simulators.world import SimulatedWorld


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_refill_is_journaled_and_the_books_start_from_it(tmp_path, capsys):
    state = ["--state-dir", str(tmp_path)]
    code, _, err = run(capsys, "cassettes", *state, "refill", "--cassette", "1", "--count", "50")
    assert code == 2 and "give --denomination" in err, "a new cassette needs its note value"
    code, out, _ = run(capsys, "cassettes", *state, "refill", "--cassette", "1", "--count", "50",
                       "--denomination", "2000", "--json")
    assert code == 0
    [cassette] = json.loads(out)["cassettes"]
    assert (cassette["cassette"], cassette["count"], cassette["denomination_minor"], cassette["status"]) == (
        "1", 50, 2000, "ok")
    code, out, _ = run(capsys, "cassettes", *state, "refill", "--cassette", "1", "--count", "5", "--json")
    assert json.loads(out)["cassettes"][0]["count"] == 5 and json.loads(out)["cassettes"][0]["status"] == "low"
    journal = Journal(tmp_path / "journal.sqlite")
    assert [json.loads(f["data"])["count"] for f in journal.facts("cassette_loaded")] == [50, 5]
    journal.close()


def test_a_reject_bin_count_off_the_books_is_reported_and_journaled(tmp_path, capsys):
    state = ["--state-dir", str(tmp_path)]
    run(capsys, "cassettes", *state, "refill", "--cassette", "1", "--count", "50", "--denomination", "2000")
    code, out, err = run(capsys, "cassettes", *state, "reject-bin", "--count", "3", "--json")
    assert code == 0 and "the books expected 0" in err
    assert json.loads(out)["reject_bin"] == 0
    journal = Journal(tmp_path / "journal.sqlite")
    assert any("reject bin counted 3" in r["summary"] for r in journal.reconciliation_items())
    journal.close()


def test_books_of_a_folder_without_a_journal_are_refused_with_the_path(tmp_path, capsys):
    code, _, err = run(capsys, "cassettes", "--state-dir", str(tmp_path / "none"))
    assert code == 2 and "no journal at" in err


def test_the_world_runs_the_chosen_lcdm_simulator_and_its_faults_on_the_panel():
    world = SimulatedWorld(validator="standin", printer="standin", scanner="standin", dispenser="lcdm2000",
                           cassettes=[(2000, 7), (5000, 3)])
    try:
        tables = world.start()
        assert tables["dispenser"]["driver"] == "lcdm2000"
        assert tables["dispenser"]["port"].startswith("socket://127.0.0.1:")
        assert tables["dispenser"]["denominations"] == [2000, 5000]
        assert world.initial_loads() == [("upper", 2000, 7), ("lower", 5000, 3)]
        names = {c["command"] for c in world.commands()}
        assert {"double_picks", "jam_dispenser", "cassette_count", "lose_dispense_answer", "pay_invoice"} <= names
        assert asyncio.run(world.run("cassette_count", {"cassette": 2, "count": 1}))["ok"]
        assert world.sims["dispenser"].cassettes[1].count == 1
        refused = asyncio.run(world.run("cassette_count", {"cassette": 9, "count": 1}))
        assert not refused["ok"] and "cassette is 1..2" in refused["error"]
        no_chain = asyncio.run(world.run("pay_invoice", {"invoice": "x", "sats": 1}))
        assert not no_chain["ok"] and "no simulated chain" in no_chain["error"]
    finally:
        world.stop()


def test_the_stand_in_dispenser_has_no_wire_faults_and_says_which_to_choose():
    world = SimulatedWorld(validator="standin", printer="standin", scanner="standin", dispenser="standin")
    try:
        tables = world.start()
        assert tables["dispenser"]["driver"] == "standin"
        from types import SimpleNamespace
        from simulators.standin import StandinDispenser
        world.attach(SimpleNamespace(dispenser=StandinDispenser(cassettes=tables["dispenser"]["cassettes"])))
        answer = asyncio.run(world.run("jam_dispenser", {"after": 1}))
        assert not answer["ok"] and "--dispenser lcdm4000" in answer["error"]
    finally:
        world.stop()


def test_resolve_books_the_count_once_through_the_journal_call_the_service_menu_uses(tmp_path, capsys):
    """`atm cassettes resolve` and the Cassettes page share Journal.resolve_dispense: a test
    dispense of unknown outcome (no sale) is booked, and a second count is refused."""
    from hal import Fiat
    state = ["--state-dir", str(tmp_path)]
    run(capsys, "cassettes", *state, "refill", "--cassette", "1", "--count", "50", "--denomination", "2000")
    journal = Journal(tmp_path / "journal.sqlite")
    journal.dispense_intended("service-svc-test-1", "svc-test-1", "dispenser", {"1": 1}, Fiat(0, "EUR"))
    journal.dispense_outcome("svc-test-1", "hardwareError", {}, {}, Fiat(0, "EUR"), outcome="unknown",
                             uncertain={"1": 1}, uncertain_value=Fiat(2000, "EUR"))
    journal.close()
    code, out, err = run(capsys, "cassettes", *state, "resolve", "--request", "svc-test-1", "--exited", "1=0",
                         "--rejected", "1=1", "--json")
    assert code == 0 and "no sale to settle" in err, err
    assert json.loads(out)["reject_bin"] == 1 and json.loads(out)["cassettes"][0]["count"] == 49
    code, _, err = run(capsys, "cassettes", *state, "resolve", "--request", "svc-test-1", "--exited", "1=1")
    assert code == 2 and "no unknown outcome" in err
