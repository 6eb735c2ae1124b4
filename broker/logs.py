"""Structured logging to stderr, shared by the agent and the cloud service: one event per line.

Callers log with ``log.info("message", extra={"key": value})``; the extra keys
become fields. Fields whose name suggests a secret are masked, so a PIN, key or
token handed to a log call by mistake never reaches the journal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
# uvicorn hands its own formatter a copy of the message with ANSI colours: never a field of ours.
_LIBRARY_ATTRS = frozenset({"color_message"})
_SECRET_NAME = re.compile(r"pin|password|passwd|secret|token|private|api_?key|credential", re.IGNORECASE)
_MASK = "***"
_PLAIN_VALUE = re.compile(r"^[^\s=\"]+$")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD_ATTRS or key in _LIBRARY_ATTRS or key.startswith("_"):
            continue
        fields[key] = _MASK if _SECRET_NAME.search(key) else value
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-11-22T10:00:00.000Z info agent.store store opened path=/var/lib/kassa/agent.db``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname.lower(), record.name, record.getMessage()]
        for key, value in _fields(record).items():
            text = str(value)
            parts.append(
                f"{key}={text}" if _PLAIN_VALUE.match(text) else f"{key}={json.dumps(text, ensure_ascii=False)}"
            )
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(_fields(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


# syslog(3) priorities: journald reads a "<N>" at the start of a line as the line's priority.
_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def _syslog_priority(levelno: int) -> int:
    return next((priority for level, priority in sorted(_SYSLOG_PRIORITY.items(), reverse=True) if levelno >= level), 7)


class SyslogPrefixFormatter(logging.Formatter):
    """Another formatter's lines, each with a ``<N>`` priority prefix, so ``journalctl -p err``
    finds errors (the unit sets ``SyslogLevelPrefix=yes``). Every line of a traceback gets it:
    journald reads each line as its own entry."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def stderr_is_journal() -> bool:
    """True when systemd connected our stderr to the journal: it then sets JOURNAL_STREAM to the
    device and inode of that stream (a child whose stderr was redirected elsewhere sees no match)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


class RepeatedLog:
    """A line that would repeat while a condition lasts (a printer offline, sweeps skipped): the
    first is logged, then at most one summary every ``summary_every_s`` while it goes on, and one
    line with the total when it ends. Another ``key`` (a new reason) is logged at once.

    The clock is a parameter: tests step it instead of waiting."""

    def __init__(
        self, log: logging.Logger, summary_every_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.summary_every_s = summary_every_s
        self.clock = clock
        self.key: object = None
        self.started_at: float | None = None
        self.count = 0  # occurrences since it started
        self.unlogged = 0  # occurrences since the last line
        self.logged_at = 0.0

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def occurred(self, level: int, message: str, key: object = None, **extra: Any) -> None:
        now = self.clock()
        if self.started_at is None or key != self.key:
            self.key, self.started_at, self.count, self.unlogged, self.logged_at = key, now, 1, 0, now
            self.log.log(level, message, extra=extra)
            return
        self.count += 1
        self.unlogged += 1
        if now - self.logged_at >= self.summary_every_s:
            self.log.log(
                level,
                f"{message} (repeated {self.unlogged} times in {now - self.logged_at:.0f} s)",
                extra={**extra, "repeats": self.count, "since_s": round(now - self.started_at, 1)},
            )
            self.unlogged, self.logged_at = 0, now

    def ended(self, level: int, message: str, **extra: Any) -> None:
        """Log ``message``, with how long it lasted and how often it happened if it had started."""
        if self.started_at is not None:
            extra = {**extra, "repeats": self.count, "lasted_s": round(self.clock() - self.started_at, 1)}
        self.log.log(level, message, extra=extra)
        self.key, self.started_at, self.count, self.unlogged = None, None, 0, 0


def _not_library_chatter(record: logging.LogRecord) -> bool:
    # python-escpos logs every connection open/close at INFO on the root logger.
    return not (record.name == "root" and record.levelno < logging.WARNING and "escpos" in record.pathname)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was at setup: whatever
    swaps stderr (pytest's capture, between tests) must not leave the handler on a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(
    level: str = "info", fmt: str = "text", stream: Any = None, *, syslog_prefix: bool | None = None
) -> None:
    """Route every logger to stderr with the chosen format; idempotent (SIGHUP calls it again).
    ``syslog_prefix``: start each line with its ``<N>`` priority; by default when stderr is the journal."""
    root = logging.getLogger()
    # Some libraries (python-escpos) call logging.basicConfig() at import: their plain
    # handler would print every event a second time, unstructured.
    for foreign in [
        h for h in root.handlers if not (getattr(h, "_kassa", False) or getattr(h, "keep_on_setup", False))
    ]:
        root.removeHandler(foreign)
    handler = next((h for h in root.handlers if getattr(h, "_kassa", False)), None)
    if handler is None:
        ours: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
        ours._kassa = True  # type: ignore[attr-defined]  # marks our handler, so setup runs once
        ours.addFilter(_not_library_chatter)
        root.addHandler(ours)
        handler = ours
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    if syslog_prefix if syslog_prefix is not None else (stream is None and stderr_is_journal()):
        formatter = SyslogPrefixFormatter(formatter)
    handler.setFormatter(formatter)
    root.setLevel(level.upper())
    # Third-party chatter stays out of an info-level journal.
    for noisy in ("apscheduler", "asyncio", "urllib3", "PIL", "usb", "escpos"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # pyusb logs an ERROR per missing libusb variant on every enumeration; discovery
    # reports a missing backend once, with what to install.
    for loader in ("usb.backend", "usb.libloader"):
        logging.getLogger(loader).setLevel(logging.CRITICAL)
