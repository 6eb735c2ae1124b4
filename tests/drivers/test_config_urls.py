"""Building devices from URLs and config dicts."""

from __future__ import annotations

import pytest

from drivers import ConfigError, HidScanner, SerialScanner, open_drawer, open_printer, open_scanner
from drivers.printers.file_transport import FileTransport
from drivers.printers.network_transport import NetworkTransport
from drivers.printers.serial_transport import SerialTransport
from drivers.printers.usb_transport import UsbTransport


def test_tcp_url_with_options():
    printer = open_printer("tcp://10.0.0.5:9101?profile=TM-T20II&status_timeout=1.5&write_timeout=20")
    assert isinstance(printer.transport, NetworkTransport)
    assert (printer.transport.host, printer.transport.port, printer.transport.write_timeout) == ("10.0.0.5", 9101, 20.0)
    assert printer.profile.name == "TM-T20II" and printer.status_timeout == 1.5
    assert not printer.keep_open  # network printers are not held between jobs


def test_tcp_port_defaults_to_9100():
    assert open_printer("tcp://printer.local").transport.port == 9100


def test_usb_url_with_hex_ids_serial_and_vendor_default_profile():
    printer = open_printer("usb://04b8:0e28?serial=X5&port=1-1.4")
    transport = printer.transport
    assert isinstance(transport, UsbTransport)
    assert (transport.vendor_id, transport.product_id, transport.serial_number, transport.port_path) == (
        0x04B8,
        0x0E28,
        "X5",
        "1-1.4",
    )
    assert printer.profile.name == "TM-T88V"  # Epson's default
    assert transport.timeout_ms == 10_000


def test_serial_and_file_urls():
    serial_printer = open_printer("serial:///dev/ttyS0?baudrate=19200&parity=E&flow=rtscts")
    assert isinstance(serial_printer.transport, SerialTransport)
    assert (serial_printer.transport.path, serial_printer.transport.baudrate) == ("/dev/ttyS0", 19200)
    lp = open_printer("file:///dev/usb/lp0?status_check=never")
    assert isinstance(lp.transport, FileTransport) and lp.transport.path == "/dev/usb/lp0"
    assert lp.status_check == "never"


def test_dict_config_overrides_url_query_and_may_omit_url():
    printer = open_printer({"url": "tcp://h:9100?profile=TM-T88V", "profile": "TM-T20II", "paper_mm": 58})
    assert printer.profile.name == "TM-T20II" and printer.profile.width_px == 384
    assert printer.profile.columns() == 32
    explicit = open_printer({"transport": "tcp", "host": "10.1.1.1", "port": 9200, "code_pages": "CP858,CP866"})
    assert explicit.transport.port == 9200
    assert [p.name for p in explicit.profile.code_pages[:2]] == ["CP858", "CP866"]


@pytest.mark.parametrize(
    "spec",
    [
        "tcp://h?unknown_option=1",  # typos are errors, not silently ignored
        "usb://epson",
        "ftp://h",
        "tcp://h?profile=NoSuchModel",
        "tcp://h?status_check=sometimes",
        "tcp://h?write_timeout=0",
        "serial:///dev/ttyS0?flow=magic",
        {"transport": "tcp"},
        "no-scheme",
    ],
)
def test_bad_printer_configuration_is_rejected(spec):
    with pytest.raises(ConfigError):
        open_printer(spec)


def test_scanner_urls():
    serial_scanner = open_scanner("serial:///dev/ttyACM0?baudrate=115200&prefix=\\x02&suffix=\\r&dedupe_window=0.5")
    assert isinstance(serial_scanner, SerialScanner)
    assert serial_scanner.splitter.prefix == b"\x02" and serial_scanner.splitter.suffix == b"\r"
    assert serial_scanner.duplicates.window == 0.5
    hid_path = open_scanner("hid:///dev/input/event3?layout=fr&grab=true")
    assert isinstance(hid_path, HidScanner) and hid_path.path == "/dev/input/event3"
    assert hid_path.decoder.layout.name == "fr"
    hid_ids = open_scanner({"url": "hid://0c2e:0b61?serial=17012B4F5", "layout": "de"})
    assert (hid_ids.vendor_id, hid_ids.product_id, hid_ids.serial_number) == (0x0C2E, 0x0B61, "17012B4F5")


@pytest.mark.parametrize(
    "spec",
    ["hid://", "serial://", "bluetooth://x", "serial:///dev/x?parity=Q", "hid:///dev/input/event1?layout=klingon"],
)
def test_bad_scanner_configuration_is_rejected(spec):
    with pytest.raises((ConfigError, ValueError)):
        open_scanner(spec)


def test_drawer_urls_need_their_printer():
    with pytest.raises(ConfigError):
        open_drawer("printer:?pin=2")
    printer = open_printer("tcp://h")
    drawer = open_drawer("printer:?pin=5&on_ms=150&settle_time=0.4", printer=printer)
    assert (drawer.pin, drawer.on_ms, drawer.settle_time) == (5, 150, 0.4)
    serial_drawer = open_drawer("serial:///dev/ttyS1?kick=\\x1b\\x07&status_query=")
    assert serial_drawer.kick == b"\x1b\x07" and serial_drawer.status_query is None
