"""A kiosk whose devices lose their link and get it back: the real drivers against
their wire simulators, the cable pulled and put back while the kiosk runs. The
kiosk must go out of service for a required device (scanner, camera) and come
back to idle by itself, and print again once the printer is back, with no restart.

The kiosk is the harness's kiosk with one stand-in device replaced by a real
driver (a local fixture: kiosk_harness.py belongs to the core tests).

Mutations seen failing here: the printer's reconnect thread never started; the
camera's watcher not started when a scan stops on an offline camera; the serial
scanner driver as it was (no retries after a failed open).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest

from atm.kiosk import Kiosk
from drivers.camera.driver import CameraScanner
from drivers.escpos.driver import EscposPrinter
from drivers.serial_scanner.driver import SerialScanner
from hal.status import DeviceState
from kiosk_harness import REGTEST_ADDRESS, Harness
from simulators.camera import CameraSimulator
from simulators.printer import VirtualPrinter
from simulators.serial_scanner import SerialScannerSimulator

# Generous: a shared 2-core machine; these are deadlines, never expected durations.
WAIT_S = 15.0
_camera_names = itertools.count()


class RealDeviceHarness(Harness):
    """The core harness with some devices swapped for real drivers before the kiosk starts."""

    def __init__(self, tmp: Path, **devices: Any) -> None:
        super().__init__(tmp)
        for kind, device in devices.items():
            setattr(self, kind, device)
        self.kiosk = Kiosk(self.config, self.journal, self.cas, dataclasses.replace(self.kiosk.devices, **devices))

    def device_state(self, kind: str) -> str:
        return next(d["state"] for d in self.kiosk.service_status()["devices"] if d["kind"] == kind)


async def buy_one_note(h: RealDeviceHarness, show_code) -> None:
    """Start a buy, show the address with `show_code`, insert 20 EUR, confirm: up to the receipt screen."""
    assert (await h.act("start_buy"))["ok"]
    await h.wait_for(lambda: h.screen == "scan_address", WAIT_S)
    show_code(REGTEST_ADDRESS)
    await h.wait_for(lambda: h.screen == "insert_cash", WAIT_S)
    await h.insert(2000)
    assert (await h.act("finish_cash"))["ok"]
    await h.wait_for(lambda: h.screen == "confirm", WAIT_S)
    assert (await h.act("confirm"))["ok"]
    await h.wait_for(lambda: h.screen == "receipt", WAIT_S)


# Over TCP the cable is a serial-over-IP adapter or a network printer's; over a pty it is a
# USB serial adapter, reached by a stable symlink as udev's /dev/serial/by-id/... names it.
@pytest.fixture(params=["tcp", "pty"])
def serial_scanner_sim(request, tmp_path):
    sim = SerialScannerSimulator()
    sim.start(request.param, link=str(tmp_path / "ttyACM-scanner") if request.param == "pty" else None)
    yield sim
    sim.stop()


@pytest.fixture(params=["tcp", "pty"])
def virtual_printer(request, tmp_path):
    printer = VirtualPrinter(80)
    printer.start(request.param, link=str(tmp_path / "ttyUSB-printer") if request.param == "pty" else None)
    yield printer
    printer.stop()


@pytest.fixture
def camera_sim():
    sim = CameraSimulator(name=f"reconnect-camera-{next(_camera_names)}")
    yield sim
    sim.close()


async def test_unplugged_serial_scanner_takes_the_kiosk_out_of_service_until_it_is_plugged_back(
        tmp_path, serial_scanner_sim):
    scanner = SerialScanner(serial_scanner_sim.url, retry_initial_s=0.05, retry_max_s=0.2)
    async with RealDeviceHarness(tmp_path, scanner=scanner) as h:
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)

        serial_scanner_sim.unplug()
        await h.wait_for(lambda: h.screen == "out_of_service", WAIT_S)
        assert h.device_state("scanner") == DeviceState.OFFLINE.value
        assert "scanner" in h.kiosk.out_of_service_reason()
        assert not (await h.act("start_buy"))["ok"]

        serial_scanner_sim.replug()
        # The kiosk's recheck timer is 30 s: only the driver's ONLINE report brings it back this soon.
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)
        assert h.device_state("scanner") == DeviceState.ONLINE.value

        await buy_one_note(h, serial_scanner_sim.scan)
        assert h.kiosk.snapshot()["data"]["address"] == REGTEST_ADDRESS
    assert scanner.stats()["port_drops"] >= 1


async def test_camera_lost_during_a_scan_comes_back_and_the_kiosk_returns_to_service(tmp_path, camera_sim):
    camera = CameraScanner(camera_sim.source_url, retry_initial_s=0.05, retry_max_s=0.2, failed_reads_offline=3)
    async with RealDeviceHarness(tmp_path, scanner=camera) as h:
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)
        assert (await h.act("start_buy"))["ok"]
        await h.wait_for(lambda: h.screen == "scan_address" and camera.scanning, WAIT_S)

        camera_sim.set_connected(False)          # the USB camera drops off the bus mid-scan
        await h.wait_for(lambda: h.screen == "out_of_service", WAIT_S)
        assert h.device_state("scanner") == DeviceState.OFFLINE.value
        assert not camera.scanning, "out of service, the kiosk no longer scans"

        camera_sim.set_connected(True)
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)
        assert h.device_state("scanner") == DeviceState.ONLINE.value

        await buy_one_note(h, camera_sim.present)
        assert h.kiosk.snapshot()["data"]["address"] == REGTEST_ADDRESS
        # The phone was lowered after the read, as a customer does.
        assert camera_sim.state()["mode"] == "empty"


async def test_printer_unplugged_is_offline_then_reopened_and_the_next_receipt_prints(tmp_path, virtual_printer):
    printer = EscposPrinter(virtual_printer.url, status_timeout=0.3, link="two-way", poll_interval=0.05,
                            retry_initial_s=0.05, retry_max_s=0.2)
    async with RealDeviceHarness(tmp_path, printer=printer) as h:
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)
        assert h.device_state("printer") == DeviceState.ONLINE.value

        virtual_printer.unplug()
        await h.wait_for(lambda: h.device_state("printer") == DeviceState.OFFLINE.value, WAIT_S)
        assert printer.status().state is DeviceState.OFFLINE
        assert h.screen == "idle", "a receipt printer is not required to sell"

        virtual_printer.replug()
        await h.wait_for(lambda: h.device_state("printer") == DeviceState.ONLINE.value, WAIT_S)
        assert printer.reconnects >= 1

        await buy_one_note(h, h.scanner.present)
        await h.wait_for(lambda: h.kiosk.snapshot()["data"].get("printed"), WAIT_S)
        assert await asyncio.to_thread(virtual_printer.wait_for_receipts, 1, WAIT_S)
    receipt = virtual_printer.receipts()[0]
    assert REGTEST_ADDRESS[:20] in receipt.replace("\n", "")


async def test_kiosk_booted_with_its_scanner_unplugged_goes_into_service_when_it_is_plugged_in(
        tmp_path, serial_scanner_sim):
    serial_scanner_sim.unplug()
    scanner = SerialScanner(serial_scanner_sim.url, retry_initial_s=0.05, retry_max_s=0.2)
    async with RealDeviceHarness(tmp_path, scanner=scanner) as h:
        await h.wait_for(lambda: h.screen == "out_of_service", WAIT_S)
        assert h.device_state("scanner") == DeviceState.OFFLINE.value
        serial_scanner_sim.replug()
        await h.wait_for(lambda: h.screen == "idle", WAIT_S)
        assert (await h.act("start_buy"))["ok"]
        await h.wait_for(lambda: h.screen == "scan_address", WAIT_S)
        serial_scanner_sim.scan(REGTEST_ADDRESS)
        await h.wait_for(lambda: h.screen == "insert_cash", WAIT_S)
