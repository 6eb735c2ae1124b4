"""Where devices are found: the USB bus (pyusb), serial ports (pyserial), configured network printers."""

from __future__ import annotations

import abc
import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import usb.backend
import usb.core
import usb.util
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.printers.usb_transport import read_serial_number, usb_port_path
from drivers.registry import DriverRegistry, default_registry

logger = logging.getLogger(__name__)


class DiscoveryUnavailableError(RuntimeError):
    """A source cannot look at all (a missing library, no permission); says what to install or fix."""


class DeviceSource(abc.ABC):
    name: str = "source"
    # polls a device may be missing before it counts as detached (network probes can fail once)
    detach_after_misses: int = 1

    @abc.abstractmethod
    def scan(self) -> list[DeviceDescriptor]:
        """Devices present now. Raise if the source itself fails (then nothing is detached)."""


def _usb_classes(device: usb.core.Device) -> frozenset[int]:
    classes = {device.bDeviceClass} if device.bDeviceClass else set()
    try:
        for configuration in device:
            for interface in configuration:
                classes.add(interface.bInterfaceClass)
    except (usb.core.USBError, IndexError, ValueError) as error:
        logger.debug("cannot read interfaces of %04x:%04x: %s", device.idVendor, device.idProduct, error)
    return frozenset(classes)


class UsbSource(DeviceSource):
    """USB devices some registered driver can bind (printer class 7, known vendors)."""

    name = "usb"

    def __init__(
        self, registry: DriverRegistry = default_registry, *, backend: usb.backend.IBackend | None = None
    ) -> None:
        self.registry = registry
        self.backend = backend  # a pyusb backend object; None lets pyusb pick libusb

    def scan(self) -> list[DeviceDescriptor]:
        found = []
        try:
            devices = list(usb.core.find(find_all=True, backend=self.backend))
        except usb.core.NoBackendError:
            raise DiscoveryUnavailableError(
                "no USB backend: install libusb (Debian: apt-get install libusb-1.0-0)"
            ) from None
        for device in devices:
            try:
                descriptor = DeviceDescriptor(
                    transport=Transport.USB,
                    vendor_id=device.idVendor,
                    product_id=device.idProduct,
                    usb_classes=_usb_classes(device),
                    port_path=usb_port_path(device),
                    device_path=f"bus {device.bus} address {device.address}",
                )
                if self.registry.match(descriptor) is None:
                    continue
                serial_number = read_serial_number(device) if device.iSerialNumber else None
                found.append(replace(descriptor, serial_number=serial_number))
            finally:
                usb.util.dispose_resources(device)
        return found


class SerialSource(DeviceSource):
    """Serial ports: USB-serial adapters a driver knows by vendor, plus ports named in the configuration.

    ``lister`` defaults to ``serial.tools.list_ports.comports``; ``configured``
    maps a path (which may be a pseudo-terminal) to the kind of device on it.
    """

    name = "serial"

    def __init__(
        self,
        registry: DriverRegistry = default_registry,
        *,
        lister: Callable[[], Iterable[ListPortInfo]] = list_ports.comports,
        configured: Mapping[str, DeviceKind] | None = None,
    ) -> None:
        self.registry = registry
        self.lister = lister
        self.configured = dict(configured or {})

    def scan(self) -> list[DeviceDescriptor]:
        found: dict[str, DeviceDescriptor] = {}
        for port in self.lister():
            descriptor = DeviceDescriptor(
                transport=Transport.SERIAL,
                vendor_id=getattr(port, "vid", None),
                product_id=getattr(port, "pid", None),
                serial_number=getattr(port, "serial_number", None) or None,
                port_path=getattr(port, "location", None) or None,
                device_path=port.device,
                manufacturer=getattr(port, "manufacturer", None),
                product=getattr(port, "product", None),
                kind_hint=self.configured.get(port.device),
            )
            if descriptor.kind_hint is not None or self.registry.match(descriptor) is not None:
                found[port.device] = descriptor
        for path, kind in self.configured.items():
            if path not in found and os.path.exists(path):
                found[path] = DeviceDescriptor(Transport.SERIAL, device_path=path, kind_hint=kind)
        return list(found.values())


class NetworkSource(DeviceSource):
    """Configured network printers ("host:port"), present while their port accepts connections."""

    name = "network"
    detach_after_misses = 2

    def __init__(self, targets: Iterable[str], *, probe: bool = True, timeout: float = 0.5) -> None:
        self.targets = []
        for target in targets:
            host, _, port = target.removeprefix("tcp://").partition(":")
            self.targets.append((host, int(port or 9100)))
        self.probe, self.timeout = probe, timeout

    def scan(self) -> list[DeviceDescriptor]:
        reachable = self._probe_all() if self.probe else set(self.targets)
        return [
            DeviceDescriptor(Transport.TCP, device_path=f"{host}:{port}", kind_hint=DeviceKind.PRINTER)
            for host, port in self.targets
            if (host, port) in reachable
        ]

    def _probe_all(self) -> set[tuple[str, int]]:
        """Connect to every target at once so one dead printer costs ``timeout``, not one per printer."""
        pending: dict[socket.socket, tuple[str, int]] = {}
        reachable = set()
        for target in self.targets:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(target)
            if code in (0, errno.EINPROGRESS):
                pending[sock] = target
            else:
                sock.close()
        deadline = time.monotonic() + self.timeout
        while pending and (remaining := deadline - time.monotonic()) > 0:
            _, writable, _ = select.select([], list(pending), [], remaining)
            for sock in writable:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    reachable.add(pending[sock])
                sock.close()
                del pending[sock]
        for sock in pending:
            sock.close()
        return reachable
