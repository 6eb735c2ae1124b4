"""What discovery knows about a device, and the stable identity derived from it.

Identity never depends on enumeration order (bus address, ``/dev/ttyUSB0``
numbering): it is vendor/product plus the serial number when the device has
one, otherwise the physical port path, so it survives reboots and re-plugs
into the same socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DeviceKind(str, Enum):
    PRINTER = "printer"
    SCANNER = "scanner"
    DRAWER = "drawer"


class Transport(str, Enum):
    USB = "usb"
    TCP = "tcp"
    SERIAL = "serial"
    FILE = "file"
    HID = "hid"


@dataclass(frozen=True)
class DeviceDescriptor:
    """Facts about one attached device, as reported by a discovery source."""

    transport: Transport
    vendor_id: int | None = None
    product_id: int | None = None
    serial_number: str | None = None
    port_path: str | None = None  # physical USB port chain, e.g. "1-1.4"
    device_path: str | None = None  # /dev node or host:port; may change, never the identity alone for USB
    usb_classes: frozenset[int] = frozenset()
    manufacturer: str | None = None
    product: str | None = None
    kind_hint: DeviceKind | None = None  # set when configuration says what the device is
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def identity(self) -> str:
        return device_identity(self)

    def usb_id(self) -> str | None:
        if self.vendor_id is None or self.product_id is None:
            return None
        return f"{self.vendor_id:04x}:{self.product_id:04x}"


def device_identity(d: DeviceDescriptor) -> str:
    usb_id = d.usb_id()
    if d.transport in (Transport.USB, Transport.HID) and usb_id:
        anchor = f"sn={d.serial_number}" if d.serial_number else f"port={d.port_path or d.device_path}"
        return f"usb:{usb_id}:{anchor}"
    if d.transport is Transport.SERIAL:
        if usb_id and d.serial_number:
            return f"serial:{usb_id}:sn={d.serial_number}"
        if usb_id and d.port_path:
            return f"serial:{usb_id}:port={d.port_path}"
        return f"serial:{d.device_path}"
    if d.transport is Transport.TCP:
        return f"tcp:{d.device_path}"
    return f"{d.transport.value}:{d.device_path}"
