"""The last few thousand log lines, kept in memory for `kassactl logs` and diagnostics.

The journal has the full history; this buffer lets a technician without journal
access (or a diagnostics bundle) see what just happened. Lines are formatted by
the same structured formatter, so secrets are already masked.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from broker.logs import TextFormatter, _not_library_chatter

DEFAULT_LINES = 2000


class LogBuffer(logging.Handler):
    keep_on_setup = True  # setup_logging (run again on SIGHUP) must not drop the buffer

    def __init__(self, capacity: int = DEFAULT_LINES) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(TextFormatter())
        self.addFilter(_not_library_chatter)
        self._lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._next = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging must never raise into the caller
            return
        with self._guard:
            self._lines.append((self._next, line))
            self._next += 1

    def recent(self, count: int) -> list[str]:
        with self._guard:
            return [line for _, line in list(self._lines)[-count:]]

    def since(self, position: int) -> tuple[int, list[str]]:
        """Lines numbered >= position, and the position to ask from next time."""
        with self._guard:
            lines = [line for number, line in self._lines if number >= position]
            return self._next, lines

    @property
    def position(self) -> int:
        with self._guard:
            return self._next
