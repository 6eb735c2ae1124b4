"""kassa's hardware layer: receipt printers, barcode scanners and cash drawers.

Imports nothing from the rest of kassa. The agent uses:

* :func:`open_printer` / :func:`open_scanner` / :func:`open_drawer` to build
  devices from configuration URLs or dicts,
* :class:`Receipt` (built with :class:`ReceiptBuilder`) and
  ``Printer.print_document(receipt, job_id)``,
* :class:`Discovery` with :class:`UsbSource`, :class:`SerialSource`,
  :class:`NetworkSource`, :class:`InputSource` for hotplug, and :func:`bind` to instantiate the
  driver a discovery event names.
"""

from typing import Any

from drivers.discovery.discovery import ATTACHED, DETACHED, DeviceEvent, Discovery
from drivers.discovery.input_source import InputSource
from drivers.discovery.sources import DeviceSource, NetworkSource, SerialSource, UsbSource
from drivers.drawers.base import DrawerOutcome, KickableDrawer
from drivers.drawers.factory import open_drawer
from drivers.drawers.printer_drawer import PrinterDrawer
from drivers.drawers.serial_drawer import SerialDrawer
from drivers.errors import (
    ConfigError,
    CoverOpenError,
    DocumentError,
    DrawerError,
    DriverError,
    PaperOutError,
    PrinterOfflineError,
    PrinterStatusUnknownError,
    PrinterUnavailableError,
    ScannerError,
    TransportError,
)
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.interfaces import Drawer, Printer, PrintResult, Scanner
from drivers.printers.escpos_printer import EscposPrinter
from drivers.printers.factory import open_printer
from drivers.printers.profile import PrinterProfile, load_profile
from drivers.receipt.document import (
    Align,
    Barcode,
    Column,
    Columns,
    Cut,
    DrawerKick,
    Feed,
    Logo,
    QrCode,
    Receipt,
    ReceiptBuilder,
    Rule,
    Style,
    Text,
)
from drivers.receipt.escpos import EscposRenderer, render_escpos
from drivers.receipt.preview import preview_image, preview_text, write_preview
from drivers.registry import DriverRegistry, Supports, UsbId, default_registry, register_driver
from drivers.scanners.base import ThreadedScanner
from drivers.scanners.events import RejectReason, ScanEvent, ScanRejection, Symbology
from drivers.scanners.factory import open_scanner
from drivers.scanners.hid import HidScanner, KeyDecoder
from drivers.scanners.serial_scanner import SerialScanner
from drivers.status import DeviceStatus, PrinterStatus, Severity


def bind(
    descriptor: DeviceDescriptor, registry: DriverRegistry = default_registry, **options: Any
) -> Printer | Scanner | Drawer | None:
    """Instantiate the driver the registry picks for a discovered device (None if none fits)."""
    driver = registry.match(descriptor)
    return None if driver is None else driver.from_descriptor(descriptor, **options)


__all__ = [
    "ATTACHED",
    "DETACHED",
    "Align",
    "Barcode",
    "Column",
    "Columns",
    "ConfigError",
    "CoverOpenError",
    "Cut",
    "DeviceDescriptor",
    "DeviceEvent",
    "DeviceKind",
    "DeviceSource",
    "DeviceStatus",
    "Discovery",
    "DocumentError",
    "Drawer",
    "DrawerError",
    "DrawerKick",
    "DrawerOutcome",
    "DriverError",
    "DriverRegistry",
    "EscposPrinter",
    "EscposRenderer",
    "Feed",
    "HidScanner",
    "InputSource",
    "KeyDecoder",
    "KickableDrawer",
    "Logo",
    "NetworkSource",
    "PaperOutError",
    "PrintResult",
    "Printer",
    "PrinterDrawer",
    "PrinterOfflineError",
    "PrinterProfile",
    "PrinterStatus",
    "PrinterStatusUnknownError",
    "PrinterUnavailableError",
    "QrCode",
    "Receipt",
    "ReceiptBuilder",
    "RejectReason",
    "Rule",
    "ScanEvent",
    "ScanRejection",
    "Scanner",
    "ScannerError",
    "SerialDrawer",
    "SerialScanner",
    "SerialSource",
    "Severity",
    "Style",
    "Supports",
    "Symbology",
    "Text",
    "ThreadedScanner",
    "Transport",
    "TransportError",
    "UsbId",
    "UsbSource",
    "bind",
    "default_registry",
    "load_profile",
    "open_drawer",
    "open_printer",
    "open_scanner",
    "preview_image",
    "preview_text",
    "register_driver",
    "render_escpos",
    "write_preview",
]
