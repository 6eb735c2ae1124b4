"""USB printers through python-escpos Usb and pyusb, on a virtual bus (usb.backend.IBackend)."""

from __future__ import annotations

import pytest
import usb.core

from drivers import ConfigError, DeviceStatus, PrinterOfflineError, ReceiptBuilder, open_printer
from drivers.printers.escpos_links import HardenedUsb
from drivers.printers.usb_transport import UsbTransport
from drivers.sim.printer_core import Paper, VirtualPrinterCore
from drivers.sim.usb_backend import VirtualUsbBus, VirtualUsbDevice

from .conftest import sample_receipt


@pytest.fixture
def bus():
    return VirtualUsbBus()


def epson(bus, serial="TM0001", core=None, port=(1,)):
    return bus.plug(
        VirtualUsbDevice(
            0x04B8,
            0x0202,
            serial_number=serial,
            core=core or VirtualPrinterCore("TM-T88V"),
            port_numbers=port,
            address=len(bus.devices) + 2,
        )
    )


def test_every_usb_write_carries_the_configured_timeout(bus):
    device = epson(bus)
    printer = open_printer("usb://04b8:0202?serial=TM0001&write_timeout=2.5", usb_backend=bus)
    printer.print_document(sample_receipt(), job_id="usb-1")
    assert device.writes, "nothing was written"
    assert {timeout for _, _, timeout in device.writes} == {2500}
    assert all(timeout > 0 for _, timeout in device.reads)
    [receipt] = device.core.receipts
    assert "TOTAL CHF" in receipt.text


def test_default_usb_printer_still_has_a_write_timeout(bus):
    device = epson(bus)
    open_printer("usb://04b8:0202", usb_backend=bus).status()
    assert device.writes and all(timeout > 0 for _, _, timeout in device.writes)


@pytest.mark.parametrize("bad", [0, -1, "0", None])
def test_a_zero_or_missing_write_timeout_is_rejected(bad):
    with pytest.raises(ConfigError):
        UsbTransport(0x04B8, 0x0202, write_timeout=bad)


def test_hardened_escpos_usb_refuses_to_be_built_without_timeout():
    with pytest.raises(ValueError):
        HardenedUsb(usb_args={"idVendor": 0x04B8}, timeout=0)


def test_plain_escpos_usb_would_block_forever_which_is_why_kassa_wraps_it(bus):
    """python-escpos's own Usb hands timeout 0 (= infinite in libusb) to pyusb."""
    from escpos.printer import Usb

    device = epson(bus)
    plain = Usb(usb_args={"idVendor": 0x04B8, "idProduct": 0x0202, "backend": bus})
    plain.open()
    plain._raw(b"\x1b@")
    assert device.writes[-1][2] == 0
    plain.close()


def test_status_over_usb_reads_the_in_endpoint(bus):
    device = epson(bus)
    printer = open_printer("usb://04b8:0202", usb_backend=bus)
    assert printer.status().status is DeviceStatus.READY
    device.core.sensors.paper = Paper.OUT
    assert printer.status().status is DeviceStatus.PAPER_OUT


def test_a_stalled_usb_printer_raises_instead_of_hanging(bus):
    device = epson(bus)
    printer = open_printer("usb://04b8:0202?write_timeout=0.2", usb_backend=bus, status_check="never")
    device.stall_writes = True
    with pytest.raises(PrinterOfflineError) as raised:
        printer.print_document(ReceiptBuilder().text("x").build(), job_id="stall")
    assert "timed out" in str(raised.value)
    assert device.writes[-1][2] == 200


def test_serial_number_picks_the_right_printer_among_identical_models(bus):
    first, second = epson(bus, "AAA", port=(1,)), epson(bus, "BBB", port=(2,))
    open_printer("usb://04b8:0202?serial=BBB", usb_backend=bus).print_document(
        ReceiptBuilder().text("for BBB").cut().build(), job_id="pick"
    )
    assert not first.core.receipts
    assert "for BBB" in second.core.receipts[0].text


def test_port_path_picks_a_printer_without_serial_number(bus):
    left, right = epson(bus, None, port=(1, 2)), epson(bus, None, port=(1, 3))
    open_printer("usb://04b8:0202?port=1-1.3", usb_backend=bus).print_document(
        ReceiptBuilder().text("right socket").cut().build(), job_id="port"
    )
    assert not left.core.receipts and right.core.receipts


def test_unplugged_printer_is_offline_and_replugged_printer_prints_again(bus):
    device = epson(bus)
    printer = open_printer("usb://04b8:0202?serial=TM0001", usb_backend=bus)
    assert printer.status().status is DeviceStatus.READY
    bus.unplug(device)
    assert printer.status().status is DeviceStatus.OFFLINE
    with pytest.raises(PrinterOfflineError):
        printer.print_document(ReceiptBuilder().text("x").build(), job_id="gone")
    bus.plug(device)
    printer.print_document(ReceiptBuilder().text("back").cut().build(), job_id="back")
    assert "back" in device.core.receipts[-1].text


def test_endpoints_are_taken_from_the_printer_interface(bus):
    from drivers.sim.usb_backend import VirtualInterface

    device = VirtualUsbDevice(
        0x0519,
        0x0003,
        serial_number="STAR",
        core=VirtualPrinterCore("TSP600"),
        interfaces=(VirtualInterface(7, ((0x02, 0x02), (0x81, 0x02))),),
    )
    bus.plug(device)
    open_printer("usb://0519:0003", usb_backend=bus).status()
    assert {endpoint for endpoint, _, _ in device.writes} == {0x02}
    assert {endpoint for endpoint, _ in device.reads} == {0x81}


def test_pyusb_sees_the_virtual_devices_through_the_backend_seam(bus):
    epson(bus)
    found = usb.core.find(find_all=True, backend=bus)
    [device] = list(found)
    assert (device.idVendor, device.idProduct, device.serial_number) == (0x04B8, 0x0202, "TM0001")
