"""Drawer behaviour common to every kind: settle time, waiting for the drawer to be shut."""

from __future__ import annotations

import abc
import enum
import logging
import threading
import time

from drivers.interfaces import Drawer
from drivers.status import DeviceStatus

logger = logging.getLogger(__name__)


class DrawerOutcome(str, enum.Enum):
    CLOSED = "closed"  # opened, then shut within the timeout
    TIMEOUT = "timeout"  # still open when the timeout ran out
    NOT_OPENED = "not_opened"  # the sensor still said closed after the settle time (jammed, locked)
    NO_SENSOR = "no_sensor"  # kicked, but this hardware cannot tell


class KickableDrawer(Drawer):
    """Kick, then wait ``settle_time`` for the solenoid and sensor to settle before reading it.

    A second kick within the settle time is skipped: the drawer is already on its way.
    """

    def __init__(self, identity: str, *, settle_time: float = 0.3, poll_interval: float = 0.2) -> None:
        self.identity = identity
        self.settle_time = settle_time
        self.poll_interval = poll_interval
        self._last_kick = float("-inf")
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _kick(self) -> None: ...

    def open(self) -> None:
        with self._lock:
            since = time.monotonic() - self._last_kick
            kick = since >= self.settle_time
            if kick:
                self._kick()
                self._last_kick = time.monotonic()
                logger.info("drawer %s kicked", self.identity)
            else:
                logger.debug("drawer %s kicked %.2fs ago: not kicking again", self.identity, since)
        time.sleep(self.settle_time if kick else self.settle_time - since)

    def wait_closed(self, timeout: float) -> DrawerOutcome:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state is DeviceStatus.DRAWER_CLOSED:
                return DrawerOutcome.CLOSED
            if state is DeviceStatus.UNKNOWN:
                return DrawerOutcome.NO_SENSOR
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return DrawerOutcome.TIMEOUT
            time.sleep(min(self.poll_interval, remaining))

    def open_and_wait(self, timeout: float) -> DrawerOutcome:
        """Open, then block until the drawer is shut again or ``timeout`` seconds pass."""
        self.open()
        state = self.state()
        if state is DeviceStatus.UNKNOWN:
            return DrawerOutcome.NO_SENSOR
        if state is DeviceStatus.DRAWER_CLOSED:
            logger.warning("drawer %s did not open", self.identity)
            return DrawerOutcome.NOT_OPENED
        return self.wait_closed(timeout)
