"""Logging for background loops that retry (the outbox drain, the print queue): a failure is
logged once per kind while it lasts, not on every retry, and its end is logged too.

A full disk can last hours; a log line with a traceback every second would bury everything
else in the journal and says nothing new. A full disk is logged without a traceback (it is
not a bug, and the message says what to do); anything else keeps its traceback.
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

    def failed(self, exc: BaseException, **extra: Any) -> None:
        failure = f"{type(exc).__name__}: {exc}"
        if failure == self.current:
            return
        self.current = failure
        if isinstance(exc, StoreFullError):
            self.log.warning(f"{self.loop} paused while the disk is full; retrying", extra={**extra, "error": str(exc)})
        else:
            self.log.error(f"{self.loop} step failed; retrying", exc_info=exc, extra=extra)

    def succeeded(self, **extra: Any) -> None:
        if self.current is not None:
            self.log.info(f"{self.loop} works again", extra={**extra, "after": self.current})
            self.current = None
