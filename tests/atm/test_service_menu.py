"""The technician's service menu (atm.service_menu) on a kiosk: cash collection with the
counted amount, the signed-command rules of activation, alerts that no flood can push
out, logs to a USB stick, a scan test that buys nothing."""

from __future__ import annotations

import json

from hal import Fiat
from kiosk_harness import Harness, open_service_menu



async def _buy(h: Harness, *notes: int) -> None:
    await h.start_buy()
    for minor in notes:
        await h.insert(minor)
    await h.act("finish_cash")
    await h.wait_for(lambda: h.screen == "confirm")
    await h.act("confirm")
    await h.wait_for(lambda: h.screen == "receipt")
    await h.act("done")
    await h.wait_for(lambda: h.screen == "idle")


async def test_a_collection_journals_the_counted_amount_and_the_difference_and_prints_them(tmp_path):
    async with Harness(tmp_path) as h:
        await _buy(h, 2000, 1000)
        await open_service_menu(h)
        assert h.data["cash"]["total"] == "30.00 EUR"
        reply = await h.act("service_action", do="collect_cash", counted_minor="2500")
        assert reply["ok"], reply
        counted = [json.loads(f["data"]) for f in h.journal.facts("cash_counted")]
        assert counted == [{"collection_at": counted[0]["collection_at"], "counted_minor": 2500,
                            "expected_minor": 3000, "difference_minor": -500}]
        await h.wait_for(lambda: len(h.printer.printed) == 2)
        assert "25.00 EUR" in h.printer.printed[-1] and "-5.00 EUR" in h.printer.printed[-1]
        history = h.data["cash"]["collections"]
        assert history[0]["counted"] == "25.00 EUR" and history[0]["difference"] == "-5.00 EUR"
        assert h.data["cash"]["total"] == "0.00 EUR"


async def test_a_german_kiosk_shows_and_prints_the_service_menus_amounts_in_german(tmp_path):
    """The menu's page and the collection slip write amounts as the kiosk's language does
    (atm.amounts), as the customer's screens and receipts do. Mutation caught: the menu
    turning amounts into text itself (str(Fiat)) showed "1,234.50 EUR" on a German kiosk."""
    async with Harness(tmp_path, language="de", max_buy=Fiat(200_000, "EUR")) as h:
        await _buy(h, *[20_000] * 6, 5_000)
        await open_service_menu(h)
        assert h.data["cash"]["total"] == "1.250,00 EUR"
        assert [n["value"] for n in h.data["cash"]["notes"]] == ["50,00 EUR", "200,00 EUR"]
        reply = await h.act("service_action", do="collect_cash", counted_minor="123450")
        assert reply["ok"], reply
        history = h.data["cash"]["collections"][0]
        assert (history["expected"], history["counted"], history["difference"]) == (
            "1.250,00 EUR", "1.234,50 EUR", "-15,50 EUR")
        await h.wait_for(lambda: len(h.printer.printed) == 2)
        slip = h.printer.printed[-1]
        assert "Gezählt" in slip and "1.234,50 EUR" in slip and "Differenz" in slip and "-15,50 EUR" in slip
        assert "1,234.50" not in slip


async def test_a_collection_without_a_counted_amount_is_refused_and_changes_nothing(tmp_path):
    async with Harness(tmp_path) as h:
        await _buy(h, 2000)
        await open_service_menu(h)
        for bad in (None, "", "12a", -5, 1.5, True, "9" * 40):
            reply = await h.act("service_action", do="collect_cash", counted_minor=bad)
            assert reply["ok"] is False and "counted" in reply["error"], bad
        assert h.journal.cashbox_counts() == {2000: 1}
        assert list(h.journal.facts("cash_collected")) == []


async def test_a_technician_may_deactivate_and_reactivate_but_not_undo_the_operators_deactivation(tmp_path):
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="deactivate"))["ok"]
        assert h.data["activation"] == {**h.data["activation"], "active": False, "deactivated_by": "technician",
                                        "needs_signature": False}
        assert h.data["activation"]["review"]["max_buy"] == "100.00 EUR"
        assert (await h.act("service_action", do="activate"))["ok"]
        assert h.kiosk.is_active()
        await h.kiosk.remote_command("deactivate")                  # the operator, through the CAS
        await h.settle_events()
        assert h.data["activation"]["needs_signature"] is True
        reply = await h.act("service_action", do="activate")
        assert reply["ok"] is False and "signed" in reply["error"]
        assert not h.kiosk.is_active()
        await h.kiosk.remote_command("activate")                    # the operator's signed command
        await h.settle_events()
        assert h.kiosk.is_active()


async def test_a_flood_of_wrong_pins_does_not_push_a_fraud_alert_out_of_the_menu(tmp_path):
    async with Harness(tmp_path) as h:
        h.kiosk.alert("fraud", "validator: fraud attempt: string on the note", "critical")
        for _ in range(120):
            h.kiosk.alert("wrong_pin", "service menu: wrong PIN", "warning")
        await open_service_menu(h)
        groups = h.data["alert_groups"]
        assert groups[0]["kind"] == "fraud" and groups[0]["severity"] == "critical" and groups[0]["count"] == 1
        wrong = next(g for g in groups if g["kind"] == "wrong_pin")
        assert wrong["count"] == 120
        assert h.data["alerts_total"] >= 122


async def test_the_log_goes_to_a_usb_stick_folder_and_a_bad_path_is_refused(tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="export_logs", path=str(stick)))["ok"]
        exported = list(stick.glob("atm-*.log"))
        assert len(exported) == 1 and "service menu" in exported[0].read_text()
        assert exported[0].stat().st_mode & 0o777 == 0o600
        for bad in ("relative/path", str(tmp_path / "missing"), "/tmp/../etc"):
            reply = await h.act("service_action", do="export_logs", path=bad)
            assert reply["ok"] is False, bad


async def test_a_code_scanned_in_the_service_menu_is_shown_and_buys_nothing(tmp_path):
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="scan_test"))["ok"]
        assert h.scanner.present("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        await h.wait_for(lambda: h.data["tests"]["last_scan"] == "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        assert h.screen == "maintenance" and h.journal.transactions() == []


async def test_the_status_page_names_each_device_and_the_server_link(tmp_path):
    async with Harness(tmp_path) as h:
        await open_service_menu(h)
        rows = {d["kind"]: d for d in h.data["devices"]}
        assert set(rows) >= {"validator", "scanner", "printer"}
        assert all({"model", "firmware", "serial", "state", "last_error"} <= set(r) for r in rows.values())
        assert h.data["cas"]["bundle_version"] == 0 and "queued_uploads" in h.data["cas"]


def _linked_standin(tmp_path):
    """The stand-in CAS behind the CasLink the running kiosk holds (atm.app wraps it so),
    pairing into the configuration's [cas] state_dir."""
    from atm.cas.link import CasLink
    from atm.cas.standin import StandinCas, standin_settings
    from hal import Fiat
    from kiosk_harness import _PIN_HASH
    standin = StandinCas(tmp_path / "cas-ledger.sqlite",
                         settings=standin_settings(Fiat(500, "EUR"), Fiat(10_000, "EUR"), "5", _PIN_HASH))
    return CasLink(standin, pairing_dir=tmp_path / "cas")


async def test_a_technician_pairs_the_running_kiosk_by_scanning_the_operators_code(tmp_path):
    from atm.cas.state import load_pairing
    from simulators.cas.harness import SimulatedOperator
    link = _linked_standin(tmp_path)
    async with SimulatedOperator(tmp_path / "operator", pair_kiosk=False, kiosk_id="kiosk-1") as op:
        async with Harness(tmp_path, cas_state_dir=tmp_path / "cas", cas=link) as h:
            await open_service_menu(h)
            assert (await h.act("service_action", do="pair_scan"))["ok"]
            assert h.data["pairing"]["waiting_for_code"] is True
            assert h.scanner.present(op.pairing_code)
            await h.wait_for(lambda: h.data["pairing"]["paired_with"] is not None, timeout=30)
            assert h.data["pairing"]["paired_with"]["cas_pin"] == op.cas.pin
            assert h.data["pairing"]["in_use"]["cas_url"] == op.cas.url          # in use now, no restart
            assert op.pairing_code not in repr(h.data)                 # the one-time token stays off the screen
            record = load_pairing(tmp_path / "cas")
            assert record.cas_pins == (op.cas.pin,) and record.kiosk_id == "kiosk-1"
        await link.stop()


async def test_a_broken_pairing_code_is_reported_on_the_menu_and_pairs_nothing(tmp_path):
    from atm.cas.state import NotPaired, load_pairing
    async with Harness(tmp_path, cas_state_dir=tmp_path / "cas", cas=_linked_standin(tmp_path)) as h:
        await open_service_menu(h)
        assert (await h.act("service_action", do="pair_scan"))["ok"]
        assert h.scanner.present("atmpair:1:not-base64!")
        await h.wait_for(lambda: h.data["last_result"]["ok"] is False)
        assert "pairing" in h.data["last_result"]["text"].lower() and h.data["pairing"]["paired_with"] is None
        try:
            load_pairing(tmp_path / "cas")
        except NotPaired:
            pass
        else:
            raise AssertionError("a broken code left a pairing behind")


async def test_the_cassettes_page_shows_what_the_dispenser_reports_read_off_the_event_loop(tmp_path):
    import threading
    from simulators.standin import StandinDispenser
    h = Harness(tmp_path)
    dispenser = StandinDispenser()
    asked_from: list[str] = []
    real_status = dispenser.status

    def status():
        asked_from.append(threading.current_thread().name)
        return real_status()

    dispenser.status = status
    h.kiosk.devices.dispenser = dispenser
    h.kiosk._health["dispenser"] = h.kiosk._health["validator"].__class__()
    async with h:
        await open_service_menu(h)
        await h.wait_for(lambda: (h.data.get("cassettes") or {}).get("cassettes"))
        shown = h.data["cassettes"]
        assert [c["id"] for c in shown["cassettes"]] == ["upper", "lower"]
        assert "status" in shown or "status_error" in shown      # the stand-in says it cannot report one
        assert asked_from and threading.main_thread().name not in asked_from
