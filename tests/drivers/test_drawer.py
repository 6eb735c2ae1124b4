"""Cash drawers: kicking through the printer or a serial line, sensor state, waiting for the close."""

from __future__ import annotations

import threading

import pytest

from drivers import DeviceStatus, DrawerOutcome, PaperOutError, open_drawer, open_printer
from drivers.sim.drawer import VirtualDrawer, VirtualSerialDrawer
from drivers.sim.printer import VirtualPrinter
from drivers.sim.printer_core import Paper

FAST = {"settle_time": 0.05, "poll_interval": 0.02}
# The sensor is read through the printer's status query; a loaded test machine may take longer than the
# driver's default half second to answer, which would read as "no sensor". The simulator answers at once.
SENSING = {"status_timeout": 5.0}


def close_later(drawer: VirtualDrawer, after: float) -> threading.Timer:
    timer = threading.Timer(after, drawer.close)
    timer.start()
    return timer


def test_printer_drawer_kick_opens_and_sensor_reports_it(virtual_printer):
    printer = open_printer(virtual_printer.url, **SENSING)
    drawer = open_drawer("printer:?pin=2&on_ms=120", printer=printer, **FAST)
    assert drawer.state() is DeviceStatus.DRAWER_CLOSED
    drawer.open()
    assert virtual_printer.drawer.kicks == [(2, 120)]
    assert drawer.state() is DeviceStatus.DRAWER_OPEN
    virtual_printer.drawer.close()
    assert drawer.state() is DeviceStatus.DRAWER_CLOSED


def test_open_and_wait_returns_when_the_cashier_closes_it(virtual_printer):
    drawer = open_drawer(
        {"url": "printer:", "pin": 5, "on_ms": 200}, printer=open_printer(virtual_printer.url, **SENSING), **FAST
    )
    timer = close_later(virtual_printer.drawer, 0.3)
    try:
        assert drawer.open_and_wait(timeout=3) is DrawerOutcome.CLOSED
    finally:
        timer.cancel()
    assert virtual_printer.drawer.kicks == [(5, 200)]


def test_open_and_wait_times_out_while_the_drawer_stays_open(virtual_printer):
    drawer = open_drawer("printer:", printer=open_printer(virtual_printer.url, **SENSING), **FAST)
    assert drawer.open_and_wait(timeout=0.3) is DrawerOutcome.TIMEOUT
    assert drawer.state() is DeviceStatus.DRAWER_OPEN


def test_a_pulse_too_short_for_the_solenoid_is_reported_as_not_opened(virtual_printer):
    drawer = open_drawer("printer:?on_ms=10", printer=open_printer(virtual_printer.url, **SENSING), **FAST)
    assert drawer.open_and_wait(timeout=0.5) is DrawerOutcome.NOT_OPENED


def test_concurrent_opens_within_the_settle_time_kick_once(virtual_printer):
    drawer = open_drawer("printer:?settle_time=0.5", printer=open_printer(virtual_printer.url))
    threads = [threading.Thread(target=drawer.open) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(virtual_printer.drawer.kicks) == 1


def test_kick_while_paper_is_out_raises_the_printer_error_unless_realtime(virtual_printer):
    printer = open_printer(virtual_printer.url, **SENSING)
    virtual_printer.set_paper(Paper.OUT)
    with pytest.raises(PaperOutError):
        open_drawer("printer:", printer=printer, **FAST).open()
    assert virtual_printer.drawer.kicks == []
    open_drawer("printer:?realtime=true", printer=printer, **FAST).open()  # DLE DC4 works offline
    assert virtual_printer.drawer.kicks == [(2, 100)]


def test_drawer_open_level_low(tmp_path):
    with VirtualPrinter(drawer=VirtualDrawer(open_level="low")) as sim:
        drawer = open_drawer("printer:", printer=open_printer(sim.url, drawer_open_level="low"), **FAST)
        assert drawer.state() is DeviceStatus.DRAWER_CLOSED
        drawer.open()
        assert drawer.state() is DeviceStatus.DRAWER_OPEN


def test_drawer_kick_inside_a_receipt_opens_the_drawer(virtual_printer):
    from drivers import ReceiptBuilder

    open_printer(virtual_printer.url).print_document(
        ReceiptBuilder().text("sale").cut().drawer_kick(pin=2).build(), job_id="sale-1"
    )
    assert virtual_printer.drawer.wait_for_kicks(1, timeout=2)
    assert virtual_printer.drawer.is_open


def test_serial_drawer_on_a_pty():
    with VirtualSerialDrawer() as sim:
        drawer = open_drawer(f"serial://{sim.path}?kick=\\x07&status_query=\\x06&open_mask=0x40", **FAST)
        try:
            assert drawer.state() is DeviceStatus.DRAWER_CLOSED
            timer = close_later(sim, 0.3)
            assert drawer.open_and_wait(timeout=3) is DrawerOutcome.CLOSED
            timer.cancel()
            assert sim.kicks and drawer.state() is DeviceStatus.DRAWER_CLOSED
        finally:
            drawer.close()


def test_serial_drawer_without_sensor_reports_no_sensor():
    with VirtualSerialDrawer() as sim:
        drawer = open_drawer({"url": f"serial://{sim.path}", "status_query": ""}, **FAST)
        try:
            assert drawer.open_and_wait(timeout=1) is DrawerOutcome.NO_SENSOR
            assert sim.wait_for_kicks(1, timeout=2)
        finally:
            drawer.close()
