"""`atm run --simulate --validator {id003,ssp} --validator-port URL` (and --printer-port,
--scanner-port): a device at a pyserial URL takes the built-in simulator's place and
the rest stays simulated. Here the outside devices are wire simulators this test
starts itself on loopback TCP ports, as a bench technician's real device or an
outside check's emulator would be; the kiosk is a separate process."""

from __future__ import annotations

import pytest

from kiosk_process import REGTEST_ADDRESS, KioskProcess, journal

pytestmark = pytest.mark.slow


def _start(kind: str):
    if kind == "id003":
        from simulators.id003 import Id003Simulator
        sim = Id003Simulator(currency="EUR")
    else:
        from simulators.ssp import SspSimulator
        sim = SspSimulator(currency="EUR")
    return sim, sim.start("tcp")


@pytest.mark.parametrize("protocol", ["id003", "ssp"])
async def test_a_kiosk_buys_with_the_validator_at_the_given_port(tmp_path, protocol):
    validator, url = _start(protocol)
    try:
        with KioskProcess(tmp_path, "--validator", protocol, "--validator-port", url) as kiosk:
            refused = kiosk.sim("insert_note", minor=1000)  # the panel leaves an outside device alone
            assert refused["ok"] is False and url in refused["error"]
            await kiosk.buy([1000, 2000], insert=validator.insert_note)
    finally:
        validator.stop()
    (tx,) = journal(tmp_path)["transactions"]
    assert tx["status"] == "completed" and tx["fiat_minor"] == 3000 and tx["notes"] == [1000, 2000]


async def test_printer_and_scanner_at_given_ports_print_and_read_for_the_kiosk(tmp_path):
    from simulators.printer import VirtualPrinter
    from simulators.serial_scanner import SerialScannerSimulator
    printer, scanner = VirtualPrinter(width_mm=58), SerialScannerSimulator()
    printer_url, scanner_url = printer.start("tcp"), scanner.start("tcp")
    try:
        with KioskProcess(tmp_path, "--printer", "escpos", "--printer-port", printer_url,
                          "--scanner", "serial", "--scanner-port", scanner_url) as kiosk:
            assert kiosk.sim("present_qr", text=REGTEST_ADDRESS)["ok"] is False
            await kiosk.buy([2000], present=lambda: scanner.scan(REGTEST_ADDRESS))
            kiosk.wait_for(lambda s: printer.receipts(), "a receipt on the outside printer")
            (receipt,) = printer.receipts()
            assert "20.00 EUR" in receipt and REGTEST_ADDRESS[:20] in receipt.replace("\n", "")
    finally:
        printer.stop()
        scanner.stop()
