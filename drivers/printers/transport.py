"""Byte links to printers. Each wraps a python-escpos connection class.

python-escpos opens and writes; kassa adds what the field needs: a write
timeout on every link, reads with a timeout (for DLE EOT), discarding stale
input before a status query, and one error type (:class:`TransportError`).
"""

from __future__ import annotations

import abc
import logging
import time
from typing import Any, ClassVar

from drivers.errors import ConfigError, TransportError

logger = logging.getLogger(__name__)

DEFAULT_WRITE_TIMEOUT = 10.0  # seconds for a piece of a job to go (see write): a stalled link, not a long job
DEFAULT_CONNECT_TIMEOUT = 3.0
# The slowest link a receipt printer is commonly on: 9600 baud 8N1, also a serial printer behind a
# network or USB adapter. Links whose speed kassa cannot know are assumed to carry at least this.
DEFAULT_LINK_BYTES_PER_S = 960.0


def positive_timeout(value: Any, name: str) -> float:  # a configuration value of any shape
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        # a zero/None timeout means "block forever" to pyusb, sockets and pyserial alike
        raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
    return seconds


class PrinterTransport(abc.ABC):
    scheme: ClassVar[str]
    keep_open_default: ClassVar[bool] = True

    def __init__(self, *, write_timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        self.write_timeout = positive_timeout(write_timeout, "write_timeout")
        self._inbox = bytearray()
        self.escpos: Any = None  # the python-escpos connection while the link is open

    # -- implemented by each link ------------------------------------------------------

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @property
    def bidirectional(self) -> bool:
        """Whether the link can carry answers back (status queries)."""
        return True

    @property
    def nominal_bytes_per_s(self) -> float:
        """How fast the link carries bytes at the least (a serial link knows it from its baud rate)."""
        return DEFAULT_LINK_BYTES_PER_S

    @abc.abstractmethod
    def _open(self) -> None: ...

    def _close(self) -> None:
        if self.escpos is not None:
            self.escpos.close()
        self.escpos = None

    @abc.abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def _read_chunk(self, timeout: float) -> bytes:
        """Up to a few bytes, or b"" when nothing arrived within ``timeout``."""

    @abc.abstractmethod
    def describe(self) -> str: ...

    # -- shared behaviour ------------------------------------------------------------------

    def open(self) -> None:
        if not self.is_open:
            self._inbox.clear()
            self._open()
            logger.debug("opened %s", self.describe())

    def close(self) -> None:
        if self.is_open:
            try:
                self._close()
            except Exception as error:  # closing a vanished device must not mask the real error
                logger.debug("closing %s: %s", self.describe(), error)
            logger.debug("closed %s", self.describe())
        self._inbox.clear()

    def write(self, data: bytes) -> None:
        if not self.is_open:
            self.open()
        # In pieces of about a second of the link's time, each with the whole write timeout: the
        # timeout then catches a link that stopped moving (flow control held by an offline
        # printer), not a long job. A logo takes a minute at 9600 baud, and a job cut off by a
        # timeout is sent again in full: on a slow link that repeated for ever.
        piece = max(64, int(self.nominal_bytes_per_s))
        for start in range(0, len(data), piece):
            try:
                self._write(data[start : start + piece])
            except TransportError as error:
                error.partial = True  # even a first piece may have gone out in part
                raise

    def read_byte(self, timeout: float) -> int | None:
        if not self.bidirectional:
            return None
        if not self._inbox:
            deadline = time.monotonic() + timeout
            while not self._inbox:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._inbox += self._read_chunk(remaining)
        value = self._inbox[0]
        del self._inbox[0]
        return value

    def discard_input(self) -> None:
        """Drop unread bytes (late answers, automatic status) so the next answer is ours."""
        self._inbox.clear()
        if not self.bidirectional:
            return
        for _ in range(64):
            if not self._read_chunk(0.001):
                break

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def fail(message: str, error: BaseException | None = None, *, timed_out: bool = False) -> TransportError:
    detail = f"{message}: {error}" if error else message
    return TransportError(detail, timed_out=timed_out)
