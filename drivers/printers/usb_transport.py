"""USB printers through python-escpos ``Usb`` and pyusb, always with a write timeout.

python-escpos's ``Usb`` defaults to ``timeout=0``, which pyusb passes to
libusb as "wait forever": a printer that stops taking data (paper out with
a full buffer) would hang the print thread for good. Here the timeout is
mandatory and positive.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import usb.backend
import usb.core
import usb.util
from escpos.exceptions import DeviceNotFoundError

from drivers.printers.transport import DEFAULT_WRITE_TIMEOUT, PrinterTransport, fail, positive_timeout
from drivers.vendors import USB_CLASS_PRINTER

if TYPE_CHECKING:
    from drivers.printers.escpos_links import HardenedUsb

logger = logging.getLogger(__name__)


def usb_port_path(device: usb.core.Device) -> str | None:
    """The physical port chain ("1-1.4"), as udev and sysfs name it."""
    numbers = getattr(device, "port_numbers", None)
    if device.bus is None or not numbers:
        return None
    return f"{device.bus}-{'.'.join(str(n) for n in numbers)}"


def read_serial_number(device: usb.core.Device) -> str | None:
    try:
        return cast(str | None, device.serial_number)  # pyusb is untyped; it reads a string descriptor
    except (usb.core.USBError, ValueError, NotImplementedError) as error:
        # no permission or no string descriptors: fall back to the port path
        logger.debug("cannot read serial number of %04x:%04x: %s", device.idVendor, device.idProduct, error)
        return None


class UsbTransport(PrinterTransport):
    scheme = "usb"

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        serial_number: str | None = None,
        port_path: str | None = None,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        in_ep: int | None = None,
        out_ep: int | None = None,
        backend: usb.backend.IBackend | None = None,
    ) -> None:
        super().__init__(write_timeout=write_timeout)
        self.vendor_id, self.product_id = vendor_id, product_id
        self.serial_number, self.port_path = serial_number, port_path
        self._configured_endpoints = (in_ep, out_ep)
        self.backend = backend  # a pyusb backend object; None lets pyusb pick libusb
        self.escpos: HardenedUsb | None = None
        self._has_in_endpoint = True

    @property
    def timeout_ms(self) -> int:
        return max(1, int(positive_timeout(self.write_timeout, "write_timeout") * 1000))

    @property
    def is_open(self) -> bool:
        return bool(self.escpos is not None and self.escpos._device)

    @property
    def bidirectional(self) -> bool:
        return self._has_in_endpoint

    def _matches(self, device: usb.core.Device) -> bool:
        if self.port_path and usb_port_path(device) != self.port_path:
            return False
        return not self.serial_number or read_serial_number(device) == self.serial_number

    def _link(self) -> HardenedUsb:
        if self.escpos is None:
            raise fail(f"USB printer {self.describe()} is not open")
        return self.escpos

    def _open(self) -> None:
        usb_args: dict[str, Any] = {
            "idVendor": self.vendor_id,
            "idProduct": self.product_id,
            "custom_match": self._matches,
        }
        if self.backend is not None:
            usb_args["backend"] = self.backend
        in_ep, out_ep = self._configured_endpoints
        # imported on first open: python-escpos's printer classes load Pillow, qrcode and PyYAML
        from drivers.printers.escpos_links import HardenedUsb

        self.escpos = HardenedUsb(
            usb_args=usb_args, timeout=self.timeout_ms, in_ep=in_ep or 0x82, out_ep=out_ep or 0x01
        )
        try:
            self.escpos.open()
        except (DeviceNotFoundError, usb.core.USBError) as error:
            self.escpos = None
            raise fail(f"USB printer {self.describe()} not available", error) from error
        self._pick_endpoints()

    def _pick_endpoints(self) -> None:
        """Use the printer interface's bulk endpoints unless configured: they differ between models."""
        in_ep, out_ep = self._configured_endpoints
        link = self._link()
        device = link.device
        try:
            configuration = device.get_active_configuration()
        except usb.core.USBError as error:
            logger.debug("no active configuration on %s: %s", self.describe(), error)
            return
        interfaces = list(configuration)
        interface = next(
            (i for i in interfaces if i.bInterfaceClass == USB_CLASS_PRINTER), interfaces[0] if interfaces else None
        )
        if interface is None:
            return

        def bulk(direction: int) -> usb.core.Endpoint | None:
            return usb.util.find_descriptor(
                interface,
                custom_match=lambda e: (
                    usb.util.endpoint_direction(e.bEndpointAddress) == direction
                    and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK
                ),
            )

        found_out, found_in = bulk(usb.util.ENDPOINT_OUT), bulk(usb.util.ENDPOINT_IN)
        if out_ep is None and found_out is not None:
            link.out_ep = found_out.bEndpointAddress
        if in_ep is None:
            if found_in is not None:
                link.in_ep = found_in.bEndpointAddress
            self._has_in_endpoint = found_in is not None

    def _write(self, data: bytes) -> None:
        try:
            self._link()._raw(data)
        except usb.core.USBTimeoutError as error:
            raise fail(
                f"USB write to {self.describe()} timed out after {self.timeout_ms} ms", error, timed_out=True
            ) from error
        except usb.core.USBError as error:
            self.close()
            raise fail(f"USB write to {self.describe()} failed", error) from error

    def _read_chunk(self, timeout: float) -> bytes:
        try:
            link = self._link()
            return bytes(link.device.read(link.in_ep, 64, max(1, int(timeout * 1000))))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as error:
            self.close()
            raise fail(f"USB read from {self.describe()} failed", error) from error

    def describe(self) -> str:
        anchor = (
            f"?serial={self.serial_number}"
            if self.serial_number
            else (f"?port={self.port_path}" if self.port_path else "")
        )
        return f"usb://{self.vendor_id:04x}:{self.product_id:04x}{anchor}"
