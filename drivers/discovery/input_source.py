"""Keyboard-wedge scanners among the input devices (evdev), told apart from keyboards.

The decision rules live in :mod:`drivers.scanners.classify`; every device
is logged once with its verdict and reason so a technician can see why a
scanner was (not) taken.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import evdev

from drivers.discovery.sources import DeviceSource
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.scanners.classify import facts_from_evdev, is_scanner

logger = logging.getLogger(__name__)

_USB_PORT = re.compile(r"^\d+-\d+(\.\d+)*$")


def sysfs_port_path(event_path: str) -> str | None:
    """The USB port chain ("1-1.4") of an input node, read from sysfs."""
    device_link = f"/sys/class/input/{os.path.basename(event_path)}/device"
    try:
        parts = os.path.realpath(device_link).split(os.sep)
    except OSError:
        return None
    ports = [part for part in parts if _USB_PORT.match(part)]
    return ports[-1] if ports else None


class InputSource(DeviceSource):
    name = "input"

    def __init__(
        self,
        *,
        allow: Iterable[tuple[int, int | None]] = (),
        deny: Iterable[tuple[int, int | None]] = (),
        name_heuristic: bool = True,
        lister: Callable[[], list[str]] = evdev.list_devices,
        opener: Callable[[str], evdev.InputDevice[Any]] = evdev.InputDevice,
        port_path_of: Callable[[str], str | None] = sysfs_port_path,
    ) -> None:
        self.allow, self.deny = tuple(allow), tuple(deny)
        self.name_heuristic = name_heuristic
        self.lister, self.opener, self.port_path_of = lister, opener, port_path_of
        self._logged: set[str] = set()

    def scan(self) -> list[DeviceDescriptor]:
        found = []
        for path in self.lister():
            try:
                device = self.opener(path)
            except OSError as error:
                logger.debug("cannot open %s: %s", path, error)
                continue
            try:
                facts = facts_from_evdev(device)
            finally:
                device.close()
            verdict, reason = is_scanner(facts, allow=self.allow, deny=self.deny, name_heuristic=self.name_heuristic)
            key = f"{path}:{facts.vendor:04x}:{facts.product:04x}"
            if key not in self._logged:
                self._logged.add(key)
                logger.info(
                    "%s (%s, %04x:%04x): %s — %s",
                    path,
                    facts.name,
                    facts.vendor,
                    facts.product,
                    "scanner" if verdict else "not a scanner",
                    reason,
                )
            if verdict:
                found.append(
                    DeviceDescriptor(
                        transport=Transport.HID,
                        vendor_id=facts.vendor,
                        product_id=facts.product,
                        serial_number=facts.uniq or None,
                        port_path=self.port_path_of(path),
                        device_path=path,
                        product=facts.name,
                        kind_hint=DeviceKind.SCANNER,
                    )
                )
        return found
