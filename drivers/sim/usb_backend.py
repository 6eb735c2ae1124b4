"""A pyusb backend with virtual devices on a virtual bus.

It implements ``usb.backend.IBackend``, so pyusb, python-escpos and kassa's
discovery run their real code paths against it: pass it as ``backend=`` to
``usb.core.find`` or as ``usb_backend=`` to :func:`drivers.open_printer`.
A device can carry a :class:`VirtualPrinterCore`, which then prints what is
written to it and answers status queries on the IN endpoint.
"""

from __future__ import annotations

import array
import errno
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import usb.backend
import usb.core
import usb.util

from drivers.sim.printer_core import PrinterStream, VirtualPrinterCore
from drivers.vendors import USB_CLASS_HID, USB_CLASS_PRINTER

_DESCRIPTOR_STRING = 3
_GET_DESCRIPTOR = 0x06


@dataclass
class VirtualInterface:
    interface_class: int
    endpoints: tuple[tuple[int, int], ...]  # (address, bmAttributes); 0x02 bulk, 0x03 interrupt


PRINTER_INTERFACE = VirtualInterface(USB_CLASS_PRINTER, ((0x01, 0x02), (0x82, 0x02)))
HID_INTERFACE = VirtualInterface(USB_CLASS_HID, ((0x81, 0x03),))


@dataclass(eq=False)
class VirtualUsbDevice:
    vendor_id: int
    product_id: int
    serial_number: str | None = None
    manufacturer: str | None = "kassa"
    product: str | None = "virtual device"
    bus: int = 1
    address: int = 2
    port_numbers: tuple[int, ...] = (1,)
    device_class: int = 0
    interfaces: tuple[VirtualInterface, ...] = (PRINTER_INTERFACE,)
    core: VirtualPrinterCore | None = None
    stall_writes: bool = False  # every bulk write times out, like a printer that stopped taking data
    writes: list[tuple[int, bytes, int]] = field(default_factory=list)  # (endpoint, data, timeout ms)
    reads: list[tuple[int, int]] = field(default_factory=list)  # (endpoint, timeout ms)
    plugged: bool = False

    def __post_init__(self) -> None:
        self._answers = bytearray()
        self._answered = threading.Condition()
        self._stream: PrinterStream | None = None

    @property
    def strings(self) -> dict[int, str]:
        return {i: s for i, s in ((1, self.manufacturer), (2, self.product), (3, self.serial_number)) if s}

    def _feed(self, data: bytes) -> None:
        if self.core is None:
            return
        if self._stream is None:
            self._stream = self.core.open_stream()
        answers = self._stream.feed(data)
        if answers:
            with self._answered:
                self._answers += answers
                self._answered.notify_all()

    def _take_answer(self, size: int, timeout_ms: int) -> bytes:
        deadline = time.monotonic() + timeout_ms / 1000
        with self._answered:
            while not self._answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                self._answered.wait(remaining)
            chunk = bytes(self._answers[:size])
            del self._answers[:size]
            return chunk

    def release(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _gone() -> usb.core.USBError:
    return usb.core.USBError("No such device (it may have been disconnected)", errno=errno.ENODEV)


class VirtualUsbBus(usb.backend.IBackend):
    def __init__(self, devices: tuple[VirtualUsbDevice, ...] = ()) -> None:
        self.devices: list[VirtualUsbDevice] = []
        self._lock = threading.Lock()
        for device in devices:
            self.plug(device)

    def plug(self, device: VirtualUsbDevice) -> VirtualUsbDevice:
        with self._lock:
            device.plugged = True
            if device not in self.devices:
                self.devices.append(device)
        return device

    def unplug(self, device: VirtualUsbDevice) -> None:
        with self._lock:
            device.plugged = False
            if device in self.devices:
                self.devices.remove(device)
        device.release()

    # -- enumeration and descriptors --------------------------------------------------

    def enumerate_devices(self) -> Iterator[VirtualUsbDevice]:
        with self._lock:
            return iter(list(self.devices))

    def get_parent(self, dev: VirtualUsbDevice) -> None:
        return None

    def get_device_descriptor(self, dev: VirtualUsbDevice) -> SimpleNamespace:
        strings = dev.strings
        return SimpleNamespace(
            bLength=18,
            bDescriptorType=1,
            bcdUSB=0x0200,
            bDeviceClass=dev.device_class,
            bDeviceSubClass=0,
            bDeviceProtocol=0,
            bMaxPacketSize0=64,
            idVendor=dev.vendor_id,
            idProduct=dev.product_id,
            bcdDevice=0x0100,
            iManufacturer=1 if 1 in strings else 0,
            iProduct=2 if 2 in strings else 0,
            iSerialNumber=3 if 3 in strings else 0,
            bNumConfigurations=1,
            address=dev.address,
            bus=dev.bus,
            port_number=dev.port_numbers[-1] if dev.port_numbers else None,
            port_numbers=dev.port_numbers,
            speed=3,
        )

    def get_configuration_descriptor(self, dev: VirtualUsbDevice, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError("configuration index out of range")
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=2,
            wTotalLength=32,
            bNumInterfaces=len(dev.interfaces),
            bConfigurationValue=1,
            iConfiguration=0,
            bmAttributes=0xC0,
            bMaxPower=50,
            extra_descriptors=[],
        )

    def get_interface_descriptor(self, dev: VirtualUsbDevice, intf: int, alt: int, config: int) -> SimpleNamespace:
        if config != 0 or alt != 0 or intf >= len(dev.interfaces):
            raise IndexError("interface index out of range")
        interface = dev.interfaces[intf]
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=4,
            bInterfaceNumber=intf,
            bAlternateSetting=0,
            bNumEndpoints=len(interface.endpoints),
            bInterfaceClass=interface.interface_class,
            bInterfaceSubClass=1,
            bInterfaceProtocol=2,
            iInterface=0,
            extra_descriptors=[],
        )

    def get_endpoint_descriptor(
        self, dev: VirtualUsbDevice, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        address, attributes = dev.interfaces[intf].endpoints[ep]
        return SimpleNamespace(
            bLength=7,
            bDescriptorType=5,
            bEndpointAddress=address,
            bmAttributes=attributes,
            wMaxPacketSize=64,
            bInterval=0,
            bRefresh=0,
            bSynchAddress=0,
            extra_descriptors=[],
        )

    # -- handles -------------------------------------------------------------------------

    def open_device(self, dev: VirtualUsbDevice) -> VirtualUsbDevice:
        if not dev.plugged:
            raise _gone()
        return dev

    def close_device(self, dev_handle: VirtualUsbDevice) -> None:
        dev_handle.release()

    def set_configuration(self, dev_handle: VirtualUsbDevice, config_value: int) -> None:
        if not dev_handle.plugged:
            raise _gone()

    def get_configuration(self, dev_handle: VirtualUsbDevice) -> int:
        return 1

    def set_interface_altsetting(self, dev_handle: VirtualUsbDevice, intf: int, altsetting: int) -> None:
        pass

    def claim_interface(self, dev_handle: VirtualUsbDevice, intf: int) -> None:
        if not dev_handle.plugged:
            raise _gone()

    def release_interface(self, dev_handle: VirtualUsbDevice, intf: int) -> None:
        pass

    def reset_device(self, dev_handle: VirtualUsbDevice) -> None:
        pass

    def clear_halt(self, dev_handle: VirtualUsbDevice, ep: int) -> None:
        pass

    def is_kernel_driver_active(self, dev_handle: VirtualUsbDevice, intf: int) -> bool:
        return False

    def detach_kernel_driver(self, dev_handle: VirtualUsbDevice, intf: int) -> None:
        pass

    def attach_kernel_driver(self, dev_handle: VirtualUsbDevice, intf: int) -> None:
        pass

    # -- transfers ---------------------------------------------------------------------

    def ctrl_transfer(
        self,
        dev_handle: VirtualUsbDevice,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        if not dev_handle.plugged:
            raise _gone()
        if bRequest != _GET_DESCRIPTOR or (wValue >> 8) != _DESCRIPTOR_STRING:
            return 0
        index = wValue & 0xFF
        if index == 0:
            payload = bytes([4, _DESCRIPTOR_STRING, 0x09, 0x04])  # English (US)
        else:
            text = dev_handle.strings.get(index)
            if text is None:
                raise usb.core.USBError("Pipe error", errno=errno.EPIPE)
            encoded = text.encode("utf-16-le")
            payload = bytes([len(encoded) + 2, _DESCRIPTOR_STRING]) + encoded
        count = min(len(payload), len(data))
        data[:count] = array.array("B", payload[:count])
        return count

    def bulk_write(self, dev_handle: VirtualUsbDevice, ep: int, intf: int, data: array.array[int], timeout: int) -> int:
        if not dev_handle.plugged:
            raise _gone()
        payload = bytes(data)
        dev_handle.writes.append((ep, payload, timeout))
        if dev_handle.stall_writes:
            time.sleep(min(timeout, 50) / 1000)
            raise usb.core.USBTimeoutError("Operation timed out", errno=errno.ETIMEDOUT)
        dev_handle._feed(payload)
        return len(payload)

    def bulk_read(self, dev_handle: VirtualUsbDevice, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        if not dev_handle.plugged:
            raise _gone()
        dev_handle.reads.append((ep, timeout))
        chunk = dev_handle._take_answer(len(buff), timeout)
        if not chunk:
            raise usb.core.USBTimeoutError("Operation timed out", errno=errno.ETIMEDOUT)
        buff[: len(chunk)] = array.array("B", chunk)
        return len(chunk)

    intr_read = bulk_read
    intr_write = bulk_write
