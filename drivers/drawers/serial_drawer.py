"""A drawer with its own serial interface.

There is no single standard: by default BEL (0x07) opens it and ACK (0x06)
asks for one status byte whose bit 6 means open, as on IBM-style serial
drawers. All three are configurable; without ``status_query`` the state is
``unknown``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import serial

from drivers.drawers.base import KickableDrawer
from drivers.errors import ConfigError, DrawerError
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.registry import Supports, register_driver
from drivers.status import DeviceStatus

logger = logging.getLogger(__name__)


@register_driver
class SerialDrawer(KickableDrawer):
    supports = Supports(
        kind=DeviceKind.DRAWER,
        transports=frozenset({Transport.SERIAL}),
        notes="serial drawers named in the configuration",
    )

    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 9600,
        kick: bytes = b"\x07",
        status_query: bytes | None = b"\x06",
        open_mask: int = 0x40,
        open_when_set: bool = True,
        status_timeout: float = 0.5,
        write_timeout: float = 2.0,
        settle_time: float = 0.3,
        poll_interval: float = 0.2,
        identity: str | None = None,
    ) -> None:
        super().__init__(identity or f"serial:{path}#drawer", settle_time=settle_time, poll_interval=poll_interval)
        if not kick:
            raise DrawerError("a serial drawer needs a kick command")
        self.path, self.baudrate = path, baudrate
        self.kick, self.status_query = kick, status_query or None
        self.open_mask, self.open_when_set = open_mask, open_when_set
        self.status_timeout, self.write_timeout = status_timeout, write_timeout
        self._port: serial.Serial | None = None
        self._io_lock = threading.Lock()

    @classmethod
    def from_descriptor(cls, descriptor: DeviceDescriptor, **options: Any) -> SerialDrawer:
        if descriptor.device_path is None:
            raise ConfigError("a serial drawer needs a device path")
        return cls(descriptor.device_path, identity=descriptor.identity, **options)

    def _ensure_open(self) -> serial.Serial:
        if self._port is None:
            try:
                self._port = serial.Serial(
                    self.path, self.baudrate, timeout=self.status_timeout, write_timeout=self.write_timeout
                )
            except serial.SerialException as error:
                raise DrawerError(f"cannot open drawer port {self.path}: {error}") from error
        return self._port

    def _kick(self) -> None:
        with self._io_lock:
            try:
                self._ensure_open().write(self.kick)
            except (serial.SerialException, OSError) as error:
                self._drop_port()
                raise DrawerError(f"cannot kick drawer on {self.path}: {error}") from error

    def state(self) -> DeviceStatus:
        if self.status_query is None:
            return DeviceStatus.UNKNOWN
        with self._io_lock:
            try:
                port = self._ensure_open()
                port.reset_input_buffer()
                port.write(self.status_query)
                answer = port.read(1)
            except (DrawerError, serial.SerialException, OSError) as error:
                logger.debug("drawer %s status: %s", self.identity, error)
                self._drop_port()
                return DeviceStatus.UNKNOWN
        if not answer:
            return DeviceStatus.UNKNOWN
        is_set = bool(answer[0] & self.open_mask)
        return DeviceStatus.DRAWER_OPEN if is_set == self.open_when_set else DeviceStatus.DRAWER_CLOSED

    def _drop_port(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
        self._port = None

    def close(self) -> None:
        with self._io_lock:
            self._drop_port()
