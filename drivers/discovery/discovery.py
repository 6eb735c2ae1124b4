"""Polling discovery: each :meth:`Discovery.poll` diffs what the sources see into attach/detach events."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.discovery.sources import DeviceSource
from drivers.identity import DeviceDescriptor
from drivers.registry import DriverRegistry, default_registry

logger = logging.getLogger(__name__)

ATTACHED = "attached"
DETACHED = "detached"


@dataclass(frozen=True)
class DeviceEvent:
    action: str  # ATTACHED or DETACHED
    descriptor: DeviceDescriptor
    driver: type | None  # the driver class bound to the device

    @property
    def identity(self) -> str:
        return self.descriptor.identity


@dataclass
class _Known:
    descriptor: DeviceDescriptor
    driver: type | None
    source: DeviceSource
    misses: int = 0


class Discovery:
    """Keeps the set of attached devices. Call :meth:`poll` periodically (e.g. every 2 s).

    Identity is stable (vendor/product + serial number or port path), so a
    device unplugged and plugged back gets the same identity and driver.
    """

    def __init__(self, sources: Iterable[DeviceSource], registry: DriverRegistry = default_registry) -> None:
        self.sources = list(sources)
        self.registry = registry
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # source name -> last error, so a broken source warns once

    @property
    def devices(self) -> dict[str, tuple[DeviceDescriptor, type | None]]:
        with self._lock:
            return {identity: (k.descriptor, k.driver) for identity, k in self._known.items()}

    def poll(self) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        with self._lock:
            for source in self.sources:
                try:
                    present = {d.identity: d for d in source.scan()}
                except Exception as error:  # a broken source (no libusb, no permission) must not detach its devices
                    if self._failing.get(source.name) != str(error):
                        logger.warning("discovery source %s failed: %s", source.name, error)
                    self._failing[source.name] = str(error)
                    continue
                if self._failing.pop(source.name, None) is not None:
                    logger.info("discovery source %s works again", source.name)
                events += self._diff(source, present)
        for event in events:
            logger.info(
                "%s %s (%s)", event.action, event.identity, event.driver.__name__ if event.driver else "no driver"
            )
        return events

    def _diff(self, source: DeviceSource, present: dict[str, DeviceDescriptor]) -> list[DeviceEvent]:
        events = []
        for identity, descriptor in present.items():
            known = self._known.get(identity)
            if known is None:
                driver = self.registry.match(descriptor)
                self._known[identity] = _Known(descriptor, driver, source)
                events.append(DeviceEvent(ATTACHED, descriptor, driver))
            else:
                known.misses = 0
                known.descriptor = descriptor  # the /dev node may have changed; the identity did not
        for identity, known in list(self._known.items()):
            if known.source is not source or identity in present:
                continue
            known.misses += 1
            if known.misses >= source.detach_after_misses:
                del self._known[identity]
                events.append(DeviceEvent(DETACHED, known.descriptor, known.driver))
        return events
