"""Discovery through pyusb's backend seam, serial ports and network probes: attach, detach, re-attach."""

from __future__ import annotations

import os

from serial.tools.list_ports_common import ListPortInfo

from drivers import (
    ATTACHED,
    DETACHED,
    DeviceKind,
    Discovery,
    EscposPrinter,
    HidScanner,
    NetworkSource,
    SerialScanner,
    SerialSource,
    Transport,
    UsbSource,
    bind,
)
from drivers.identity import DeviceDescriptor
from drivers.registry import default_registry
from drivers.sim.printer_core import VirtualPrinterCore
from drivers.sim.scanner import VirtualSerialScanner
from drivers.sim.usb_backend import HID_INTERFACE, VirtualUsbBus, VirtualUsbDevice


def printer(serial="E1", port=(1, 4), address=5):
    return VirtualUsbDevice(
        0x04B8, 0x0202, serial_number=serial, port_numbers=port, address=address, core=VirtualPrinterCore("TM-T88V")
    )


def hid_scanner(serial="H1", port=(1, 2), address=6):
    return VirtualUsbDevice(
        0x0C2E, 0x0B61, serial_number=serial, port_numbers=port, address=address, interfaces=(HID_INTERFACE,)
    )


def keyboard():
    return VirtualUsbDevice(
        0x046D, 0xC31C, serial_number=None, port_numbers=(1, 1), address=3, interfaces=(HID_INTERFACE,)
    )


def test_usb_attach_detach_reattach_keeps_identity_and_driver():
    bus = VirtualUsbBus()
    discovery = Discovery([UsbSource(backend=bus)])
    device = bus.plug(printer())

    [attached] = discovery.poll()
    assert attached.action == ATTACHED and attached.driver is EscposPrinter
    assert attached.identity == "usb:04b8:0202:sn=E1"
    assert discovery.poll() == []  # nothing changed

    bus.unplug(device)
    [detached] = discovery.poll()
    assert (detached.action, detached.identity, detached.driver) == (DETACHED, attached.identity, EscposPrinter)

    # plugged back in: new bus address, same identity and driver
    device.address = 17
    bus.plug(device)
    [again] = discovery.poll()
    assert (again.action, again.identity, again.driver) == (ATTACHED, attached.identity, EscposPrinter)


def test_identity_without_serial_number_is_the_port_path_not_enumeration_order():
    bus = VirtualUsbBus()
    discovery = Discovery([UsbSource(backend=bus)])
    left, right = printer(serial=None, port=(1, 2), address=9), printer(serial=None, port=(1, 3), address=4)
    bus.plug(left)
    bus.plug(right)
    first = {e.identity for e in discovery.poll()}
    assert first == {"usb:04b8:0202:port=1-1.2", "usb:04b8:0202:port=1-1.3"}
    for device in (left, right):
        bus.unplug(device)
    discovery.poll()
    bus.plug(right)  # other order, other addresses
    right.address, left.address = 2, 3
    bus.plug(left)
    assert {e.identity for e in discovery.poll()} == first


def test_scanners_bind_hid_driver_and_keyboards_are_ignored():
    bus = VirtualUsbBus((hid_scanner(), keyboard(), printer()))
    events = {e.identity: e.driver for e in Discovery([UsbSource(backend=bus)]).poll()}
    assert events == {"usb:0c2e:0b61:sn=H1": HidScanner, "usb:04b8:0202:sn=E1": EscposPrinter}


def test_bind_instantiates_the_chosen_driver_for_the_device():
    bus = VirtualUsbBus((printer(),))
    [event] = Discovery([UsbSource(backend=bus)]).poll()
    bound = bind(event.descriptor, usb_backend=bus)
    assert isinstance(bound, EscposPrinter) and bound.identity == event.identity
    assert bound.status().status.value == "ready"


def test_a_failing_source_does_not_detach_its_devices():
    bus = VirtualUsbBus((printer(),))
    source = UsbSource(backend=bus)
    discovery = Discovery([source])
    assert len(discovery.poll()) == 1

    def broken():
        raise OSError("libusb went away")

    source.scan = broken
    assert discovery.poll() == []
    assert list(discovery.devices) == ["usb:04b8:0202:sn=E1"]


def test_serial_scanner_on_a_pty_is_discovered_from_configuration():
    with VirtualSerialScanner() as sim:
        source = SerialSource(lister=list, configured={sim.path: DeviceKind.SCANNER})
        discovery = Discovery([source])
        [attached] = discovery.poll()
        assert attached.action == ATTACHED and attached.driver is SerialScanner
        assert attached.identity == f"serial:{sim.path}"
        scanner = bind(attached.descriptor)
        assert isinstance(scanner, SerialScanner) and scanner.path == sim.path
        path = sim.path
    assert not os.path.exists(path)  # closing both ends removes the pty node
    [detached] = discovery.poll()
    assert detached.action == DETACHED and detached.identity == attached.identity


def port_info(device, vid=None, pid=None, serial=None, location=None):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.location = vid, pid, serial, location
    return info


def test_serial_ports_from_a_lister_are_bound_by_vendor_and_identified_by_serial_number():
    ports = [
        port_info("/dev/ttyACM0", 0x0C2E, 0x0CAA, "SCN42", "1-1.3:1.0"),
        port_info("/dev/ttyS0"),  # an onboard port nobody configured: ignored
        port_info("/dev/ttyUSB0", 0x1A86, 0x7523, None, "1-1.4:1.0"),
    ]  # unknown adapter, unconfigured
    discovery = Discovery([SerialSource(lister=lambda: ports)])
    [attached] = discovery.poll()
    assert attached.identity == "serial:0c2e:0caa:sn=SCN42" and attached.driver is SerialScanner

    # re-enumerated as ttyACM1 after a replug: same identity, no events
    ports[0] = port_info("/dev/ttyACM1", 0x0C2E, 0x0CAA, "SCN42", "1-1.3:1.0")
    assert discovery.poll() == []
    assert discovery.devices[attached.identity][0].device_path == "/dev/ttyACM1"


def test_network_printers_attach_when_reachable_and_detach_after_two_misses(virtual_printer):
    source = NetworkSource([f"127.0.0.1:{virtual_printer.port}"], timeout=0.3)
    discovery = Discovery([source])
    [attached] = discovery.poll()
    assert attached.identity == f"tcp:127.0.0.1:{virtual_printer.port}" and attached.driver is EscposPrinter
    virtual_printer.go_offline("refuse")
    assert discovery.poll() == []  # one miss is forgiven
    [detached] = discovery.poll()
    assert detached.action == DETACHED
    virtual_printer.go_online()
    assert [e.action for e in discovery.poll()] == [ATTACHED]


def test_registry_prefers_exact_ids_and_respects_required_classes():
    usb_printer = DeviceDescriptor(Transport.USB, 0x04B8, 0x0202, usb_classes=frozenset({7}))
    unknown_vendor_printer = DeviceDescriptor(Transport.USB, 0x1234, 0x0001, usb_classes=frozenset({7}))
    cdc_scanner_on_usb = DeviceDescriptor(Transport.USB, 0x0C2E, 0x0CAA, usb_classes=frozenset({2, 10}))
    assert default_registry.match(usb_printer) is EscposPrinter
    assert default_registry.match(unknown_vendor_printer) is EscposPrinter  # USB printer class 7 is enough
    assert default_registry.match(cdc_scanner_on_usb) is None  # no HID interface: not a wedge scanner
    assert EscposPrinter.supports.score(usb_printer) > EscposPrinter.supports.score(unknown_vendor_printer)


class FakeEvdevDevice:
    def __init__(self, path, name, vendor, product, *, uniq="", leds=False, pointer=False):
        from evdev import ecodes

        self.path, self.name, self.uniq, self.phys = path, name, uniq, "usb-0000:00:14.0-1.2/input0"
        self.info = type("Info", (), {"vendor": vendor, "product": product})()
        self._capabilities = {ecodes.EV_KEY: [ecodes.KEY_1, ecodes.KEY_ENTER, ecodes.KEY_A]}
        if leds:
            self._capabilities[ecodes.EV_LED] = [0, 1]
        if pointer:
            self._capabilities[ecodes.EV_REL] = [0, 1]
        self.closed = False

    def capabilities(self):
        return self._capabilities

    def close(self):
        self.closed = True


def test_input_source_finds_wedge_scanners_and_leaves_keyboards_alone():
    from drivers import InputSource

    devices = {
        "/dev/input/event3": FakeEvdevDevice("/dev/input/event3", "Logitech USB Keyboard", 0x046D, 0xC31C, leds=True),
        "/dev/input/event4": FakeEvdevDevice("/dev/input/event4", "Honeywell 1900", 0x0C2E, 0x0B61, uniq="H1"),
        "/dev/input/event5": FakeEvdevDevice("/dev/input/event5", "USB Barcode Scanner", 0x1A86, 0xE026),
        "/dev/input/event6": FakeEvdevDevice("/dev/input/event6", "Logitech Unifying", 0x046D, 0xC52B, pointer=True),
    }
    source = InputSource(lister=lambda: list(devices), opener=devices.__getitem__, port_path_of=lambda path: "1-1.2")
    events = {e.identity: e for e in Discovery([source]).poll()}
    assert set(events) == {"usb:0c2e:0b61:sn=H1", "usb:1a86:e026:port=1-1.2"}
    assert all(e.driver is HidScanner for e in events.values())
    assert all(device.closed for device in devices.values())
    scanner = bind(events["usb:0c2e:0b61:sn=H1"].descriptor, layout="de")
    assert isinstance(scanner, HidScanner) and scanner.path == "/dev/input/event4"


def test_input_source_deny_list_wins_over_the_name():
    from drivers import InputSource

    devices = {"/dev/input/event5": FakeEvdevDevice("/dev/input/event5", "USB Barcode Scanner", 0x1A86, 0xE026)}
    source = InputSource(
        deny=((0x1A86, None),), lister=lambda: list(devices), opener=devices.__getitem__, port_path_of=lambda path: None
    )
    assert Discovery([source]).poll() == []


def test_configured_serial_drawer_binds_the_serial_drawer_driver():
    from drivers import SerialDrawer
    from drivers.sim.drawer import VirtualSerialDrawer

    with VirtualSerialDrawer() as sim:
        [event] = Discovery([SerialSource(lister=list, configured={sim.path: DeviceKind.DRAWER})]).poll()
        assert event.driver is SerialDrawer
        drawer = bind(event.descriptor, settle_time=0.01)
        try:
            assert drawer.state().value == "drawer_closed"
        finally:
            drawer.close()
