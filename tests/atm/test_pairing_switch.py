"""Pairing from the service menu while the kiosk runs (atm.cas.link.CasLink): a kiosk
selling through CAS simulator A is paired by a technician, through the scanner, with
simulator B's pairing code, and from then on B (never A) gets its sends and uploads;
a pairing that fails leaves A in use; nothing switches while a transaction is open;
and B's kiosk sells only on settings signed by B's operator key."""

from __future__ import annotations

import json
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

from kiosk_harness import Harness, open_service_menu

from atm.cas.link import STAGING_DIR, CasLink, finish_interrupted_switch
from atm.cas.pairing import PairingOffer, encode_pairing_code
from atm.cas.signing import public_key_text
from atm.cas.state import load_pairing
from simulators.cas.harness import SimulatedOperator

FAST = {"poll_interval_s": 0.05, "timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}
RATE = {"EUR": "50000"}


@asynccontextmanager
async def kiosk_on_a(tmp_path: Path, *, b_pairs: bool = True, same_operator: bool = False, build=None):
    """A kiosk whose CAS link is a CasLink on simulator A (started, hooks wired as
    atm.app.RunningKiosk wires them), and operator B with a pairing code for the kiosk."""
    op_a = SimulatedOperator(tmp_path / "a", kiosk_id="kiosk-1", rates=RATE)
    op_b = SimulatedOperator(tmp_path / "b", kiosk_id="kiosk-1", rates=RATE, pair_kiosk=False)
    await op_a.start()
    if same_operator:                  # the operator moved its CAS: same signing key, versions go on
        op_b.operator_key = op_a.operator_key
        op_b.version = op_a.version
    if b_pairs:
        await op_b.start()
    link = CasLink(op_a.client(**FAST), build=build)
    h = Harness(tmp_path / "kiosk", cas=link)
    h.kiosk.retry_interval = 0.05
    link.on_command = h.kiosk.remote_command
    link.on_settings = h.kiosk.settings_changed
    await link.start()
    try:
        async with h:
            yield h, link, op_a, op_b
    finally:
        await link.stop()
        await op_b.stop()
        await op_a.stop()



async def log_out(h: Harness) -> None:
    h.sensors.pin("service_switch").drive_low()
    assert (await h.act("service_action", do="exit"))["ok"]
    await h.wait_for(lambda: h.screen == "idle")


async def scan_pairing_code(h: Harness, code: str) -> dict:
    """As a technician does it: Pairing page, "Scan a pairing code", the code to the camera."""
    assert (await h.act("service_action", do="pair_scan"))["ok"]
    assert h.data["pairing"]["waiting_for_code"] is True
    assert h.scanner.present(code)
    # the scan ends the waiting and starts the pairing; its end clears busy
    await h.wait_for(lambda: not h.data["pairing"]["waiting_for_code"] and not h.data["pairing"]["busy"], timeout=60)
    assert h.data["last_result"]["do"] == "pair_scan"
    return h.data["last_result"]


async def buy(h: Harness, minor: int) -> str:
    await h.wait_for(lambda: h.kiosk.can_start_buy(), timeout=30)
    await h.start_buy()
    tx_id = h.kiosk.tx_id
    await h.insert(minor)
    await h.act("finish_cash")
    await h.wait_for(lambda: h.screen == "confirm")
    await h.act("confirm")
    await h.wait_for(lambda: h.screen == "receipt", timeout=30)
    await h.act("done")
    await h.wait_for(lambda: h.screen == "idle")
    return tx_id


def alerts(h: Harness, kind: str) -> list[str]:
    return [json.loads(f["data"])["text"] for f in h.journal.facts("alert") if f'"alert": "{kind}"' in f["data"]]


async def test_after_pairing_with_b_in_the_menu_the_next_buy_goes_to_b_and_a_hears_nothing(tmp_path):
    """Mutations seen failing: CasLink._switch not putting the new client in use (the
    stopped A client stayed behind the link: no buy after the pairing); the operator
    check in _switch forced to "same operator" (reported as the same operator, A's
    queue carried over); CasLink._wire not handing the hooks to the new client (B's
    signed deactivate never reached the kiosk)."""
    async with kiosk_on_a(tmp_path) as (h, link, op_a, op_b):
        first = await buy(h, 2000)
        await h.wait_for(lambda: first in op_a.cas.transactions, timeout=30)
        await op_a.cas.go_down()                     # what the kiosk queues from now stays for A
        await open_service_menu(h)
        assert (await scan_pairing_code(h, op_b.pairing_code))["ok"] is True
        seen_by_a = len(op_a.cas.request_log)
        pairing = h.data["pairing"]
        assert pairing["in_use"]["cas_url"] == op_b.cas.url and pairing["in_use"]["cas_pins"] == [op_b.cas.pin]
        assert pairing["paired_with"]["cas_url"] == op_b.cas.url and pairing["paired_with"]["same_operator"] is False
        # A's queued alert (the technician's login) is kept for A, not handed to B
        assert [p["cas_url"] for p in pairing["previous"]] == [op_a.cas.url]
        assert pairing["previous"][0]["queued_uploads"] >= 1
        assert any("now uses it" in text and op_b.cas.url in text for text in alerts(h, "pairing"))
        assert load_pairing(link.pairing_dir).cas_url == op_b.cas.url      # a restart keeps B
        await op_a.cas.come_back()
        await log_out(h)

        second = await buy(h, 1000)
        assert [s["kiosk"] for s in op_b.cas.sends.values()] == ["kiosk-1"]
        await h.wait_for(lambda: second in op_b.cas.transactions, timeout=30)
        assert first not in op_b.cas.transactions
        assert not [a for a in op_b.cas.alerts() if "logged in" in json.dumps(a)], "A's alert went to B"
        assert len(op_a.cas.sends) == 1 and second not in op_a.cas.transactions
        assert len(op_a.cas.request_log) == seen_by_a, "A heard from the kiosk after the switch"
        # the kiosk's hooks went with the link: B's operator-signed command reaches the kiosk
        op_b.cas.queue_command("kiosk-1", op_b.sign_command("deactivate"))
        await h.wait_for(lambda: not h.kiosk.is_active(), timeout=30)


async def test_the_new_operator_must_sign_the_settings_before_the_kiosk_sells(tmp_path):
    """B serves a bundle signed by A's operator key: refused, the kiosk stays paused
    until B's own signed bundle arrives. Mutations seen failing: CasLink.settings()
    answering the previous client's settings while the new one has none (A's version 3
    in force after the switch); bundle.json left in the state folder at the switch
    together with CasClient._load_bundle's signer check removed (the same); the operator
    check forced to "same operator" (A's version floor 3 carried over, so B's own
    version 2 was refused and the kiosk never sold)."""
    async with kiosk_on_a(tmp_path) as (h, link, op_a, op_b):
        op_a.publish(fee_percent="4")
        op_a.publish(fee_percent="3")                # A's kiosk holds version 3
        await h.wait_for(lambda: getattr(h.kiosk.settings(), "version", None) == 3, timeout=30)
        op_b.cas.bundles[:] = [op_b.sign_bundle(version=1, key=op_a.operator_key)]
        await open_service_menu(h)
        assert (await scan_pairing_code(h, op_b.pairing_code))["ok"] is True
        await h.wait_for(lambda: any(r["what"] == "bundle" for r in link.status()["refusals"]), timeout=30)
        assert h.kiosk.settings() is None
        assert h.data["pairing"]["settings_in_force"] is False
        assert h.kiosk.buy_paused_reason() == "waiting for the operator's signed configuration"
        assert any("paused until the new operator's signed configuration" in t for t in alerts(h, "pairing"))
        await log_out(h)
        assert not h.kiosk.can_start_buy()
        assert (await h.act("start_buy"))["ok"] is False

        op_b.publish()                                # B's own operator signs version 2
        await h.wait_for(lambda: h.kiosk.settings() is not None, timeout=30)
        assert h.kiosk.settings().version == 2
        await buy(h, 2000)
        assert len(op_b.cas.sends) == 1 and len(op_a.cas.sends) == 0


async def test_pairing_is_refused_while_a_send_is_still_open_and_the_send_stays_with_a(tmp_path):
    """A buy whose send A could not take (A down) is still open: pairing is refused with
    the reason, B's one-time token is not spent, and the send later goes to A, once.
    Mutation seen failing: the guards (_pair_scan, _pair, CasLink busy check) dropped:
    the open send was asked of B (B sent coins for A's customer)."""
    async with kiosk_on_a(tmp_path) as (h, link, op_a, op_b):
        await h.wait_for(lambda: h.kiosk.can_start_buy(), timeout=30)
        await h.start_buy()
        tx_id = h.kiosk.tx_id
        await h.insert(2000)
        await h.act("finish_cash")
        await h.wait_for(lambda: h.screen == "confirm")
        await op_a.cas.go_down()
        await h.act("confirm")
        await h.wait_for(lambda: h.screen == "receipt", timeout=30)
        await h.act("done")
        assert h.journal.transaction(tx_id)["status"] == "sending"
        await open_service_menu(h)
        reply = await h.act("service_action", do="pair_scan")
        assert reply["ok"] is False and "transaction or a dispense is still open" in reply["error"]
        assert h.data["pairing"]["waiting_for_code"] is False
        assert not h.scanner.present(op_b.pairing_code)       # the camera is not even reading
        # the switch itself refuses too, before the token leaves
        try:
            await link.pair_and_switch(op_b.pairing_code, busy=h.kiosk.service_menu._open_work)
        except Exception as exc:
            assert "still open" in str(exc)
        else:
            raise AssertionError("switched with a send open")
        assert op_b.cas.kiosks == {} and op_b.cas.requests_to("/v1/pair") == []
        assert link.in_use()["cas_url"] == op_a.cas.url
        await op_a.cas.come_back()
        await h.wait_for(lambda: h.journal.transaction(tx_id)["status"] == "completed", timeout=30)
        assert len(op_a.cas.sends) == 1 and op_b.cas.sends == {}
        assert (await scan_pairing_code(h, op_b.pairing_code))["ok"] is True      # now nothing is open


async def test_a_failed_pairing_leaves_the_kiosk_selling_through_a(tmp_path):
    """A code whose pin is not B's key, then B down: each is refused, shown and alerted;
    A stays in use and takes the next buy."""
    async with kiosk_on_a(tmp_path) as (h, link, op_a, op_b):
        wrong_pin = encode_pairing_code(PairingOffer(cas_url=op_b.cas.url, cas_pin="0" * 64, token="t" * 32,
                                                     operator_key=public_key_text(op_b.operator_key),
                                                     kiosk_id="kiosk-1"))
        await open_service_menu(h)
        result = await scan_pairing_code(h, wrong_pin)
        assert result["ok"] is False and "pin" in result["text"] and "token was not sent" in result["text"]
        await op_b.cas.go_down()
        result = await scan_pairing_code(h, op_b.pairing_code)
        assert result["ok"] is False and op_b.cas.url in result["text"]
        assert h.data["pairing"]["in_use"]["cas_url"] == op_a.cas.url
        assert h.data["pairing"]["paired_with"] is None
        assert len([t for t in alerts(h, "pairing") if "pairing failed" in t and op_a.cas.url in t]) == 2
        assert load_pairing(link.pairing_dir).cas_url == op_a.cas.url
        assert not (link.pairing_dir / STAGING_DIR).exists()
        await log_out(h)
        tx_id = await buy(h, 2000)
        await h.wait_for(lambda: tx_id in op_a.cas.transactions, timeout=30)
        assert len(op_a.cas.sends) == 1


async def test_a_new_link_that_will_not_start_gives_the_old_one_back(tmp_path):
    """Paired with B, but the new client cannot be built (a disk fault, say): the files
    go back, A's link is rebuilt and started, the page says so, and A takes the next buy.
    Mutation seen failing: _restore not moving the archived files back (the kiosk was
    left with no pairing: the rebuild of A failed, no send reached A)."""
    from atm.cas.client import CasClient
    calls = []

    def build(state_dir, **options):
        calls.append(state_dir)
        if len(calls) == 1:
            raise OSError("no space left on device")
        return CasClient.from_state(state_dir, **options)

    async with kiosk_on_a(tmp_path, build=build) as (h, link, op_a, op_b):
        await open_service_menu(h)
        result = await scan_pairing_code(h, op_b.pairing_code)
        assert result["ok"] is False and "could not be started" in result["text"] and op_a.cas.url in result["text"]
        assert link.in_use()["cas_url"] == op_a.cas.url and load_pairing(link.pairing_dir).cas_url == op_a.cas.url
        await log_out(h)
        tx_id = await buy(h, 2000)
        await h.wait_for(lambda: tx_id in op_a.cas.transactions, timeout=30)
        assert op_b.cas.sends == {}


async def test_when_neither_link_will_start_the_kiosk_sells_nothing_and_can_be_paired_again(tmp_path):
    """Neither B's client nor A's rebuild will start: the kiosk stays standing with no
    server link (nothing sells, the page says to pair again), and a new code pairs it."""
    from atm.cas.client import CasClient
    broken = {"on": True}

    def build(state_dir, **options):
        if broken["on"]:
            raise OSError("no space left on device")
        return CasClient.from_state(state_dir, **options)

    async with kiosk_on_a(tmp_path, build=build) as (h, link, op_a, op_b):
        await open_service_menu(h)
        result = await scan_pairing_code(h, op_b.pairing_code)
        assert result["ok"] is False and "pair" in result["text"] and "could not be restored" in result["text"]
        assert h.kiosk.settings() is None and link.in_use() is None
        assert h.kiosk.buy_paused_reason() == "waiting for the operator's signed configuration"
        broken["on"] = False
        # a new code, from operator C: B's simulator resets the TLS handshake with a second
        # certificate for a kiosk it already registered (a simulator limit, not the kiosk's)
        async with SimulatedOperator(tmp_path / "c", kiosk_id="kiosk-1", rates=RATE, pair_kiosk=False) as op_c:
            assert (await scan_pairing_code(h, op_c.pairing_code))["ok"] is True
            assert link.in_use()["cas_url"] == op_c.cas.url
            await log_out(h)
            await buy(h, 2000)
            assert len(op_c.cas.sends) == 1 and op_a.cas.sends == {} and op_b.cas.sends == {}


async def test_the_same_operator_on_a_new_cas_keeps_its_settings_and_queued_uploads(tmp_path):
    """The operator moved its CAS (same signing key): the signed bundle, its version floor
    and what was queued for the old address go with the pairing, so the kiosk sells at
    once and the new CAS gets the queued alert. Mutation seen failing: the operator check
    forced to "another operator" (the kiosk paused, the alert stayed behind)."""
    async with kiosk_on_a(tmp_path, same_operator=True) as (h, link, op_a, op_b):
        await h.wait_for(lambda: h.kiosk.settings() is not None, timeout=30)
        await op_a.cas.go_down()
        await open_service_menu(h)                               # its alert is queued, A is away
        assert (await scan_pairing_code(h, op_b.pairing_code))["ok"] is True
        assert h.data["pairing"]["paired_with"]["same_operator"] is True
        assert h.kiosk.settings() is not None and h.kiosk.settings().version == 1
        assert h.data["pairing"]["previous"] == []
        await h.wait_for(lambda: any("logged in" in json.dumps(a) for a in op_b.cas.alerts()), timeout=30)
        await log_out(h)
        await buy(h, 2000)
        assert len(op_b.cas.sends) == 1 and op_a.cas.sends == {}


def test_a_switch_cut_after_the_old_pairing_moved_out_is_finished_at_the_next_start(tmp_path):
    """Cut after the old pairing.json was archived, before its bundle was: the leftover
    is archived too (never used by the new pairing), the staged pairing installed.
    Mutation seen failing: finish_interrupted_switch without its _archive step (the
    previous operator's bundle stayed beside the new pairing)."""
    staging = tmp_path / STAGING_DIR
    staging.mkdir()
    for name in ("pairing.json", "kiosk.key", "kiosk.crt"):
        (staging / name).write_text(name)
    (tmp_path / "bundle.json").write_text("the previous operator's bundle")
    assert finish_interrupted_switch(tmp_path) is True
    assert (tmp_path / "pairing.json").read_text() == "pairing.json" and not (staging / "kiosk.key").exists()
    assert not (tmp_path / "bundle.json").exists()
    assert [p.read_text() for p in (tmp_path / "previous").glob("*/bundle.json")] == ["the previous operator's bundle"]
    # with a pairing in place, a staged one (an attempt cut before its switch) is never used
    shutil.copytree(tmp_path, tmp_path / "again", ignore=shutil.ignore_patterns("again", "previous"))
    (tmp_path / "again" / STAGING_DIR).mkdir(exist_ok=True)
    for name in ("pairing.json", "kiosk.key", "kiosk.crt"):
        (tmp_path / "again" / STAGING_DIR / name).write_text("new " + name)
    assert finish_interrupted_switch(tmp_path / "again") is False
    assert (tmp_path / "again" / "pairing.json").read_text() == "pairing.json"


async def test_simulate_mode_pairs_with_a_second_simulated_operator_from_the_menu_and_buys_through_it(tmp_path):
    """`atm run --simulate` as the CLI assembles it (start_simulated_cas, RunningKiosk wraps
    the link): the technician scans operator B's code; the next buy is sent by B.
    Mutation seen failing: start_simulated_cas pairing straight into the state folder
    again (B's bundle refused as not signed by the trusted key at the next start)."""
    import asyncio
    import dataclasses
    from atm.app import REPO_CONFIG, SIMULATED_RATE, RunningKiosk, simulated_settings, start_simulated_cas, \
        with_devices
    from atm.config import load
    from simulators.world import SAMPLE_ADDRESSES, SimulatedWorld

    config = dataclasses.replace(load(REPO_CONFIG / "simulate.toml"), state_dir=tmp_path / "kiosk", ui_port=0)
    world = SimulatedWorld(currency=config.currency, network=config.network, validator="standin",
                           printer="standin", scanner="standin")
    config = with_devices(config, world.start())
    op_a, client = await start_simulated_cas(config)
    config = dataclasses.replace(config, cas_mode="client")
    op_b = SimulatedOperator(tmp_path / "b", kiosk_id=config.kiosk_id, settings=simulated_settings(config),
                             rates={config.currency: str(SIMULATED_RATE)}, pair_kiosk=False)
    await op_b.start()
    running = RunningKiosk(config, simulate=True, world=world, cas=client, ui=False)
    kiosk = running.kiosk
    kiosk.retry_interval = 0.1

    async def until(predicate, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"kiosk shows {kiosk.snapshot()}"
            await asyncio.sleep(0.02)

    async def act(action: str, **fields) -> dict:
        return await kiosk.handle_action({"action": action, **fields})

    await running.start()
    try:
        await until(lambda: kiosk.snapshot()["screen"] == "idle")
        assert (await world.run("service_switch", {"on": True}))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "maintenance_login")
        assert (await act("service_login", pin="135790"))["ok"]
        assert (await act("service_action", do="pair_scan"))["ok"]
        assert (await world.run("present_qr", {"text": op_b.pairing_code}))["ok"]
        await until(lambda: (kiosk.service_status()["pairing"]["paired_with"] or {}).get("cas_url") == op_b.cas.url)
        assert kiosk.service_status()["pairing"]["in_use"]["cas_url"] == op_b.cas.url
        await world.run("take_away_qr", {})
        assert (await world.run("service_switch", {"on": False}))["ok"]
        assert (await act("service_action", do="exit"))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "idle" and kiosk.can_start_buy())

        assert (await act("start_buy"))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "scan_address")
        assert (await world.run("present_qr", {"text": SAMPLE_ADDRESSES["regtest"]}))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "insert_cash")
        tx_id = kiosk.tx_id
        assert (await world.run("insert_note", {"minor": 2000}))["ok"]
        await until(lambda: kiosk.snapshot()["data"].get("inserted_minor") == 2000)
        assert (await act("finish_cash"))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "confirm")
        assert (await act("confirm"))["ok"]
        await until(lambda: kiosk.snapshot()["screen"] == "receipt")
        assert [s["kiosk"] for s in op_b.cas.sends.values()] == [config.kiosk_id] and op_a.cas.sends == {}
        await until(lambda: tx_id in op_b.cas.transactions)
        assert tx_id not in op_a.cas.transactions
    finally:
        await running.stop()
        await op_b.stop()
        await op_a.stop()
        world.stop()
    # The next `atm run --simulate` pairs with the simulated operator again: B's bundle and
    # queue are archived, not refused at every start or taken over.
    op_again, client = await start_simulated_cas(config)
    try:
        assert client.record.operator_key == public_key_text(op_a.operator_key)
        await client.poll_once()
        assert client.settings() is not None and client.status()["refusals"] == []
    finally:
        await client.stop()
        await op_again.stop()


async def test_atm_cas_pair_over_another_operators_pairing_keeps_that_operators_state_apart(tmp_path, capsys):
    """`atm cas pair` with the kiosk stopped follows the switch's rules: A's bundle,
    version floor and queued alert are archived, B's first bundle is taken.
    Mutation seen failing: pairing_cli pairing straight into the state folder as before
    (nothing of A's archived; with those two checks taken out, A's version floor 3 then
    refused B's version 1, so the kiosk had no settings)."""
    import asyncio
    from atm import cli
    from atm.cas.client import CasClient
    from atm.cas.link import previous_pairings
    async with SimulatedOperator(tmp_path / "a", kiosk_id="kiosk-1", rates=RATE) as op_a:
        state = op_a.state_dir
        client = op_a.client(**FAST)
        op_a.publish()
        op_a.publish()
        await client.poll_once()
        assert client.settings().version == 3
        await op_a.cas.go_down()
        await client.report_alert("door_open", {"text": "door opened"})
        await client.stop()
        async with SimulatedOperator(tmp_path / "b", kiosk_id="kiosk-1", rates=RATE, pair_kiosk=False) as op_b:
            code = await asyncio.to_thread(cli.main, ["cas", "pair", "--code", op_b.pairing_code, "--state-dir",
                                                      str(state), "--json"])
            assert code == 0 and json.loads(capsys.readouterr().out)["cas_url"] == op_b.cas.url
            assert [(p["cas_url"], p["queued_uploads"]) for p in previous_pairings(state)] == [(op_a.cas.url, 1)]
            client = CasClient.from_state(state, **FAST)
            try:
                assert client.settings() is None and client.queue_length() == 0
                await client.poll_once()
                assert client.settings().version == 1
                await client.flush_once()
                assert op_b.cas.alerts() == []
            finally:
                await client.stop()
