"""EscposPrinter against the virtual printer over the wire: status through DLE EOT, printing, failures."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hypothesis import given, strategies as st

from drivers.escpos.frames import encode_receipt
from drivers.escpos.driver import EscposPrinter, PaperOutError, PrinterOfflineError, parse_usb_url
from hal.errors import ConfigurationError, DeviceError, DeviceTimeout, PortError
from hal.events import PrinterStatusChanged
from hal.printer import QrBlock, Receipt, TextLine
from hal.status import DeviceState, PaperState
from simulators.printer import VirtualPrinter

ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def virtual():
    printer = VirtualPrinter(80)
    printer.start("tcp")
    yield printer
    printer.stop()


@pytest.fixture
def events():
    return []


def make_printer(url, events, **kwargs):
    printer = EscposPrinter(url, status_timeout=kwargs.pop("status_timeout", 0.3), **kwargs)
    printer.open(events.append)
    return printer


@pytest.fixture
def silent_peer():
    """A loopback socket that takes bytes and never answers: a one-way network printer."""
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.1)
                while not stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    received.extend(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"socket://127.0.0.1:{server.getsockname()[1]}", received
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.mark.parametrize("switch, state, paper", [
    ("ok", DeviceState.ONLINE, PaperState.OK),
    ("near_end", DeviceState.ONLINE, PaperState.NEAR_END),
    ("out", DeviceState.USER_ERROR, PaperState.OUT),
])
def test_paper_switch_reaches_the_driver_through_dle_eot(virtual, events, switch, state, paper):
    virtual.paper(switch)
    printer = make_printer(virtual.url, events)
    try:
        status = printer.status()
    finally:
        printer.close()
    assert (status.state, status.paper) == (state, paper)
    assert virtual.state()["status_requests"] >= 2


def test_offline_printer_reports_offline_and_refuses_to_print(virtual, events):
    virtual.set_offline(True)
    printer = make_printer(virtual.url, events)
    try:
        assert printer.status().state is DeviceState.OFFLINE
        with pytest.raises(PrinterOfflineError, match="offline"):
            printer.print_receipt(Receipt((TextLine("hello"),)))
    finally:
        printer.close()
    assert virtual.receipts() == []


def test_paper_out_refuses_to_print_with_a_message_naming_the_port(virtual, events):
    virtual.paper("out")
    printer = make_printer(virtual.url, events)
    try:
        with pytest.raises(PaperOutError, match=virtual.url):
            printer.print_receipt(Receipt((TextLine("hello"),)))
    finally:
        printer.close()
    assert virtual.receipts() == []


def test_near_end_still_prints(virtual, events):
    virtual.paper("near_end")
    printer = make_printer(virtual.url, events)
    try:
        printer.print_receipt(Receipt((TextLine("still printing"),)))
    finally:
        printer.close()
    assert virtual.wait_for_receipts(1)
    assert "still printing" in virtual.receipts()[0]


def test_status_change_is_emitted_once_per_change(virtual, events):
    printer = make_printer(virtual.url, events)
    try:
        printer.status()
        virtual.paper("near_end")
        printer.status()
        printer.status()
        virtual.paper("out")
        printer.status()
    finally:
        printer.close()
    seen = [(e.state, e.paper) for e in events if isinstance(e, PrinterStatusChanged)]
    assert seen == [(DeviceState.ONLINE, PaperState.OK), (DeviceState.ONLINE, PaperState.NEAR_END),
                    (DeviceState.USER_ERROR, PaperState.OUT)]
    assert all(e.device == "printer" for e in events)


def test_auto_link_that_never_answers_is_online_with_unknown_paper_and_still_prints(virtual, events):
    virtual.answer_status(False)
    printer = make_printer(virtual.url, events, link="auto")
    try:
        status = printer.status()
        printer.print_receipt(Receipt((TextLine("blind"),)))
    finally:
        printer.close()
    assert (status.state, status.paper) == (DeviceState.ONLINE, PaperState.UNKNOWN)
    assert "one-way" in status.detail
    assert virtual.wait_for_receipts(1)


def test_auto_link_that_answered_before_and_falls_silent_is_offline(virtual, events):
    printer = make_printer(virtual.url, events, link="auto")
    try:
        assert printer.status().paper is PaperState.OK
        virtual.answer_status(False)
        status = printer.status()
        with pytest.raises(DeviceTimeout, match="does not answer"):
            printer.print_receipt(Receipt((TextLine("x"),)))
    finally:
        printer.close()
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.UNKNOWN)


def test_two_way_link_without_answer_is_offline_and_does_not_print(virtual, events):
    virtual.answer_status(False)
    printer = make_printer(virtual.url, events, link="two-way")
    try:
        status = printer.status()
        with pytest.raises(DeviceTimeout):
            printer.print_receipt(Receipt((TextLine("x"),)))
    finally:
        printer.close()
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.UNKNOWN)
    assert virtual.receipts() == []


def test_one_way_link_never_asks_and_reports_unknown_paper(silent_peer, events):
    url, received = silent_peer
    printer = make_printer(url, events, link="one-way")
    try:
        status = printer.status()
        printer.print_receipt(Receipt((TextLine("hello one way"),)))
    finally:
        printer.close()
    assert (status.state, status.paper) == (DeviceState.ONLINE, PaperState.UNKNOWN)
    assert b"\x10\x04" not in bytes(received)


def test_one_way_link_with_paper_out_loses_the_receipt_which_is_why_paper_is_unknown(virtual, events):
    virtual.paper("out")
    virtual.answer_status(False)
    printer = make_printer(virtual.url, events, link="one-way")
    try:
        assert printer.status().paper is PaperState.UNKNOWN
        lost = Receipt((TextLine("lost"),))
        printer.print_receipt(lost)
        sent = len(encode_receipt(lost, 80))
        assert wait_until(lambda: virtual.state()["bytes_received"] >= sent)
        virtual.paper("ok")
        printer.print_receipt(Receipt((TextLine("after the new roll"),)))
    finally:
        printer.close()
    assert virtual.wait_for_receipts(1)
    assert virtual.receipts() == ["after the new roll\n"]


def test_silent_network_peer_on_auto_is_never_ok_paper(silent_peer, events):
    url, _ = silent_peer
    printer = make_printer(url, events, link="auto", status_timeout=0.2)
    try:
        status = printer.status()
    finally:
        printer.close()
    assert status.paper is PaperState.UNKNOWN


def test_image_qr_round_trips_through_the_virtual_printer(virtual, events):
    printer = make_printer(virtual.url, events)
    try:
        printer.print_receipt(Receipt((QrBlock(ADDRESS, caption="address"),)))
    finally:
        printer.close()
    assert virtual.wait_for_receipts(1)
    assert f"[QR: {ADDRESS}]" in virtual.receipts()[0]


def test_native_qr_round_trips_through_the_virtual_printer(virtual, events):
    printer = make_printer(virtual.url, events, native_qr=True)
    try:
        printer.print_receipt(Receipt((QrBlock("bitcoin:" + ADDRESS + "?amount=0.001"),)))
    finally:
        printer.close()
    assert virtual.wait_for_receipts(1)
    assert f"[QR: bitcoin:{ADDRESS}?amount=0.001]" in virtual.receipts()[0]


def test_printer_works_over_a_pty(events):
    virtual = VirtualPrinter(58)
    url = virtual.start("pty")
    try:
        virtual.paper("near_end")
        printer = make_printer(url, events, width_mm=58)
        try:
            status = printer.status()
            printer.print_receipt(Receipt((TextLine("over a pty"),)))
        finally:
            printer.close()
        assert virtual.wait_for_receipts(1)
    finally:
        virtual.stop()
    assert status.paper is PaperState.NEAR_END
    assert virtual.receipts()[0] == "over a pty\n"


def test_port_that_does_not_open_is_a_port_error_naming_it(events):
    printer = EscposPrinter("socket://127.0.0.1:1")
    try:
        with pytest.raises(PortError, match="socket://127.0.0.1:1"):
            printer.open(events.append)
    finally:
        printer.close()


def test_missing_tty_is_a_port_error(events):
    printer = EscposPrinter("/dev/ttyNOPRINTER")
    try:
        with pytest.raises(PortError, match="/dev/ttyNOPRINTER"):
            printer.open(events.append)
    finally:
        printer.close()


def test_printing_before_open_is_a_port_error():
    with pytest.raises(PortError, match="not open"):
        EscposPrinter("socket://127.0.0.1:1").print_receipt(Receipt((TextLine("x"),)))


def test_status_before_open_is_offline_with_unknown_paper():
    status = EscposPrinter("socket://127.0.0.1:1").status()
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.UNKNOWN)


def test_printer_that_goes_away_reports_offline_and_refuses_to_print(events):
    virtual = VirtualPrinter(80)
    url = virtual.start("tcp")
    printer = make_printer(url, events, link="two-way")
    try:
        virtual.stop()
        status = printer.status()
        with pytest.raises(DeviceError):
            printer.print_receipt(Receipt((TextLine("x"),)))
    finally:
        printer.close()
    assert (status.state, status.paper) == (DeviceState.OFFLINE, PaperState.UNKNOWN)


def test_close_is_safe_twice_and_leaves_the_printer_offline(virtual, events):
    printer = make_printer(virtual.url, events)
    printer.close()
    printer.close()
    assert printer.state is DeviceState.OFFLINE


def test_poll_thread_reports_paper_running_out(virtual):
    changed = threading.Event()
    seen = []

    def sink(event):
        if not isinstance(event, PrinterStatusChanged):
            return
        seen.append(event)
        if event.paper is PaperState.OUT:
            changed.set()

    printer = EscposPrinter(virtual.url, status_timeout=0.3, poll_interval=0.05)
    printer.open(sink)
    try:
        virtual.paper("out")
        assert changed.wait(timeout=5)
    finally:
        printer.close()
    assert seen[0].paper is PaperState.OK


@pytest.mark.parametrize("kwargs, word", [
    ({"width_mm": 76}, "width_mm"),
    ({"link": "sometimes"}, "link"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"status_timeout": 0}, "status_timeout"),
])
def test_bad_settings_are_configuration_errors_naming_the_setting(kwargs, word):
    with pytest.raises(ConfigurationError, match=word):
        EscposPrinter("socket://127.0.0.1:1", **kwargs)


def test_usb_url_gives_vendor_and_product_ids():
    assert parse_usb_url("usb://04b8:0202") == (0x04B8, 0x0202)


@pytest.mark.parametrize("url", ["usb://", "usb://04b8", "usb://zz:01", "usb://04b8:0202:1", "usb://12345:1",
                                 "usb://+1:02", "usb:// 1:02"])
def test_malformed_usb_url_is_a_configuration_error_with_an_example(url):
    with pytest.raises(ConfigurationError, match="usb://VID:PID"):
        parse_usb_url(url)


def test_usb_printer_without_pyusb_is_a_port_error_naming_the_package(events):
    try:
        import usb  # noqa: F401
        has_pyusb = True
    except ImportError:
        has_pyusb = False
    printer = EscposPrinter("usb://04b8:0202")
    try:
        with pytest.raises(PortError) as caught:
            printer.open(events.append)
    finally:
        printer.close()
    if not has_pyusb:
        assert "pyusb" in str(caught.value)


def test_printer_that_stops_taking_data_is_a_timeout_not_a_hang(events):
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        # Nobody reads the master side: the pty buffer fills like a printer holding flow control.
        printer = make_printer(os.ttyname(slave), events, link="one-way", write_timeout=0.5)
        try:
            with pytest.raises(DeviceTimeout, match="did not take the data"):
                printer.print_receipt(Receipt(tuple(TextLine("x" * 40) for _ in range(2000))))
        finally:
            printer.close()
    finally:
        os.close(master)
        os.close(slave)


@given(st.text(max_size=30))
def test_any_port_text_parses_as_usb_ids_or_fails_with_a_configuration_error(text):
    try:
        vendor, product = parse_usb_url("usb://" + text)
    except ConfigurationError:
        return
    assert 0 <= vendor <= 0xFFFF and 0 <= product <= 0xFFFF


def test_malformed_usb_port_is_refused_when_the_printer_is_configured():
    with pytest.raises(ConfigurationError, match="usb://VID:PID"):
        EscposPrinter("usb://epson")


# --- reconnects ----------------------------------------------------------------------


def _device_states(events):
    from hal.events import DeviceStatusChanged
    return [e.state for e in list(events) if isinstance(e, DeviceStatusChanged)]


def test_pulled_cable_is_reported_offline_then_the_port_is_reopened_and_prints(virtual, events):
    printer = make_printer(virtual.url, events, link="two-way", poll_interval=0.05,
                           retry_initial_s=0.02, retry_max_s=0.1)
    try:
        assert _device_states(events) == [DeviceState.ONLINE]
        virtual.unplug()
        assert wait_until(lambda: DeviceState.OFFLINE in _device_states(events))
        offline = [e for e in events if isinstance(e, PrinterStatusChanged) and e.state is DeviceState.OFFLINE]
        assert offline and offline[0].paper is PaperState.UNKNOWN
        with pytest.raises(PortError, match=r"not open \(.*(reopening|retrying)"):
            printer.print_receipt(Receipt((TextLine("while unplugged"),)))
        virtual.replug()
        assert wait_until(lambda: _device_states(events)[-1:] == [DeviceState.ONLINE])
        printer.print_receipt(Receipt((TextLine("after replug"),)))
        assert virtual.wait_for_receipts(1)
    finally:
        printer.close()
    assert printer.reconnects >= 1
    assert virtual.receipts() == ["after replug\n"]


def test_printer_that_was_off_at_open_comes_online_by_itself(events):
    """open() raises, as before, and the driver keeps reopening the port until it answers."""
    virtual = VirtualPrinter(80)
    url = virtual.start("tcp")
    virtual.unplug()
    printer = EscposPrinter(url, status_timeout=0.3, retry_initial_s=0.02, retry_max_s=0.1)
    try:
        with pytest.raises(PortError, match=url):
            printer.open(events.append)
        assert _device_states(events) == [DeviceState.OFFLINE]
        virtual.replug()
        assert wait_until(lambda: _device_states(events)[-1:] == [DeviceState.ONLINE])
        assert printer.status().state is DeviceState.ONLINE
    finally:
        printer.close()
        virtual.stop()


def test_close_ends_the_reconnect_retries(events):
    # A name of its own: other tests' printers (all called "printer") may still be winding down.
    printer = EscposPrinter("socket://127.0.0.1:1", name="closing-printer", retry_initial_s=0.01, retry_max_s=0.02)
    with pytest.raises(PortError):
        printer.open(events.append)
    retrying = [t for t in threading.enumerate() if t.name == "closing-printer-reconnect"]
    assert retrying and retrying[0].is_alive()
    printer.close()
    assert not retrying[0].is_alive()


@pytest.mark.parametrize("initial, most", [(0, 1), (-1, 1), (2, 1)])
def test_bad_retry_times_are_configuration_errors(initial, most):
    with pytest.raises(ConfigurationError, match="retry_initial_s"):
        EscposPrinter("socket://127.0.0.1:1", retry_initial_s=initial, retry_max_s=most)


def test_usb_serial_adapter_unplugged_and_replugged_is_reopened_under_its_name(events, tmp_path):
    """A pty behind a stable link, as /dev/serial/by-id/...: the tty vanishes and a new one appears."""
    virtual = VirtualPrinter(80)
    url = virtual.start("pty", link=str(tmp_path / "ttyUSB-printer"))
    printer = make_printer(url, events, link="two-way", poll_interval=0.05, retry_initial_s=0.02, retry_max_s=0.1)
    try:
        virtual.unplug()
        assert wait_until(lambda: DeviceState.OFFLINE in _device_states(events))
        virtual.replug()
        assert wait_until(lambda: _device_states(events)[-1:] == [DeviceState.ONLINE])
        printer.print_receipt(Receipt((TextLine("after replug"),)))
        assert virtual.wait_for_receipts(1)
    finally:
        printer.close()
        virtual.stop()
    assert virtual.receipts() == ["after replug\n"]


def test_a_tty_that_vanishes_under_tcflush_is_a_lost_port_not_a_crash(virtual, events):
    """pyserial's reset_input_buffer raises termios.error (not OSError) on a tty that is gone.
    Seen failing (termios.error raised out of status()) before the driver caught it."""
    import termios

    printer = make_printer(virtual.url, events, link="two-way", retry_initial_s=0.02, retry_max_s=0.1)
    try:
        def gone() -> None:
            raise termios.error(5, "Input/output error")

        printer._transport._serial.reset_input_buffer = gone
        status = printer.status()
        assert status.state is DeviceState.OFFLINE and "Input/output error" in status.detail
        assert wait_until(lambda: _device_states(events)[-1:] == [DeviceState.ONLINE])
    finally:
        printer.close()
