"""Driver registry: each driver class declares what it supports.

Discovery reports :class:`DeviceDescriptor` objects; :meth:`DriverRegistry.match`
picks the driver class that fits best (exact vendor/product beats vendor,
vendor beats USB class, a configured kind beats nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.interfaces import Drawer, Printer, Scanner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsbId:
    vendor: int
    product: int | None = None  # None: every product of the vendor


@dataclass(frozen=True)
class Supports:
    """A driver's declaration of the devices it can drive."""

    kind: DeviceKind
    transports: frozenset[Transport]
    usb_ids: tuple[UsbId, ...] = ()
    match_usb_classes: tuple[int, ...] = ()  # any of these classes is enough to bind
    require_usb_classes: tuple[int, ...] = ()  # a device found on the USB bus must expose one of these
    priority: int = 0
    notes: str = field(default="", compare=False)

    def score(self, d: DeviceDescriptor) -> int:
        """0 when the driver cannot bind ``d``; higher means a better fit."""
        if d.transport not in self.transports:
            return 0
        if d.kind_hint is not None and d.kind_hint is not self.kind:
            return 0
        # classes are only known for devices enumerated on the USB bus itself
        if (
            self.require_usb_classes
            and d.transport is Transport.USB
            and not d.usb_classes & set(self.require_usb_classes)
        ):
            return 0
        score = 0
        for usb_id in self.usb_ids:
            if d.vendor_id == usb_id.vendor:
                if usb_id.product is None:
                    score = max(score, 50)
                elif usb_id.product == d.product_id:
                    score = max(score, 100)
        if d.usb_classes & set(self.match_usb_classes):
            score = max(score, 20)
        if d.kind_hint is self.kind:
            score = max(score, 10)
        return score + self.priority if score else 0


class Driver(Protocol):
    """What the registry needs of a driver class: its declaration and a way to build it for a device."""

    supports: Supports

    @classmethod
    def from_descriptor(cls, descriptor: DeviceDescriptor, **options: Any) -> Printer | Scanner | Drawer: ...


DriverClass = type[Driver]
T = TypeVar("T", bound=DriverClass)


class DriverRegistry:
    def __init__(self) -> None:
        self._drivers: list[DriverClass] = []

    def register(self, driver_class: T) -> T:
        """Class decorator; the class must have a ``supports`` attribute."""
        if not isinstance(getattr(driver_class, "supports", None), Supports):
            raise TypeError(f"{driver_class.__name__} has no 'supports' declaration")
        if driver_class not in self._drivers:
            self._drivers.append(driver_class)
        return driver_class

    def drivers(self, kind: DeviceKind | None = None) -> list[DriverClass]:
        return [d for d in self._drivers if kind is None or d.supports.kind is kind]

    def match(self, descriptor: DeviceDescriptor) -> DriverClass | None:
        best: DriverClass | None = None
        best_score = 0
        for driver_class in self._drivers:
            score = driver_class.supports.score(descriptor)
            # ties resolved by name so the choice never depends on import order
            if score > best_score or (
                score == best_score and score and best is not None and driver_class.__name__ < best.__name__
            ):
                best, best_score = driver_class, score
        if best is not None:
            logger.debug("%s binds %s (score %d)", best.__name__, descriptor.identity, best_score)
        return best

    def known_usb_vendors(self) -> set[int]:
        return {u.vendor for d in self._drivers for u in d.supports.usb_ids}

    def extend(self, driver_classes: Iterable[DriverClass]) -> None:
        for driver_class in driver_classes:
            self.register(driver_class)


default_registry = DriverRegistry()
register_driver = default_registry.register
