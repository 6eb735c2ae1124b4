"""Logging for background loops that retry (the outbox drain, the print queue, the broker
connection, cloud HTTP requests): a failure is logged once per kind while it lasts, not on every
retry, and its end is logged too.

A full disk can last hours; a log line with a traceback every second would bury everything
else in the journal and says nothing new. A full disk is logged without a traceback (it is
not a bug, and the message says what to do); anything else keeps its traceback. An unreachable
peer (refused, TLS, DNS, timeout) is not a bug either: it is logged once at warning with the
reason when the outage starts, whatever reasons follow while it lasts.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.store import StoreFullError


class LoopFailures:
    def __init__(self, log: logging.Logger, loop: str) -> None:
        self.log = log
        self.loop = loop  # e.g. "outbox drain", used in the messages
        self.current: str | None = None  # the failure that lasts, until a step succeeds
        self.attempts = 0  # failed attempts since the last success

    def failed(self, exc: BaseException, **extra: Any) -> None:
        failure = f"{type(exc).__name__}: {exc}"
        self.attempts += 1
        if failure == self.current:
            return
        self.current = failure
        if isinstance(exc, StoreFullError):
            self.log.warning(f"{self.loop} paused while the disk is full; retrying", extra={**extra, "error": str(exc)})
        else:
            self.log.error(f"{self.loop} step failed; retrying", exc_info=exc, extra=extra)

    def unreachable(self, reason: str, **extra: Any) -> None:
        """A connection or request failed for a reason outside the program: the first one of an
        outage is logged at warning; the rest (even with another reason: a flapping network
        alternates them) only at debug."""
        self.attempts += 1
        if self.current is not None:
            self.log.debug(f"{self.loop} still failing", extra={**extra, "reason": reason})
            return
        self.current = reason
        self.log.warning(f"{self.loop} failed; retrying", extra={**extra, "reason": reason})

    def succeeded(self, **extra: Any) -> None:
        if self.current is not None:
            self.log.info(
                f"{self.loop} works again", extra={**extra, "after": self.current, "failed_attempts": self.attempts}
            )
            self.current = None
        self.attempts = 0
