"""The speed of a slow link in a fault test (the TCP proxy, the serial line)."""

from __future__ import annotations

import threading
import time


class Throttle:
    """One direction of a slow link: `bytes_per_s` on average, a few bytes at a time."""

    BURST_S = 0.2  # a relay thread not scheduled for this long (a loaded machine) catches up: the average holds

    def __init__(self, bytes_per_s: float) -> None:
        self.bytes_per_s = bytes_per_s
        self._allowance = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """How many of `wanted` bytes may go now."""
        with self._lock:
            now = time.monotonic()
            self._allowance = min(
                self.bytes_per_s * self.BURST_S, self._allowance + (now - self._last) * self.bytes_per_s
            )
            self._last = now
            granted = min(wanted, int(self._allowance))
            self._allowance -= granted
            return granted
