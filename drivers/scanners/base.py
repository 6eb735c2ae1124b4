"""Shared scanner machinery: a reader thread, reconnects, event building, rejections, de-duplication."""

from __future__ import annotations

import abc
import logging
import threading
import time

from drivers.errors import ConfigError, ScannerError
from drivers.interfaces import RejectCallback, ScanCallback, Scanner
from drivers.scanners.events import (
    DEFAULT_MAX_LENGTH,
    PREVIEW_LENGTH,
    DuplicateFilter,
    RejectReason,
    ScanEvent,
    ScanRejected,
    ScanRejection,
    TooLong,
    check_text,
    classify,
)
from drivers.status import DeviceStatus

logger = logging.getLogger(__name__)

# Garbage on a line can make many rejections a second: one warning per interval, the rest counted.
REJECTION_LOG_INTERVAL = 10.0


class ThreadedScanner(Scanner):
    """Runs ``_read_loop`` in a daemon thread and hands events to a callback.

    The callback runs in the reader thread; the agent wraps it with
    ``loop.call_soon_threadsafe``. A device that disappears is reopened
    every ``reconnect_interval`` seconds until :meth:`stop`.
    """

    length_unit = "bytes"  # what max_length counts for this kind of scanner

    def __init__(
        self,
        identity: str,
        *,
        dedupe_window: float = 1.0,
        aim_ids: bool = False,
        reconnect_interval: float = 2.0,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if not 1 <= max_length <= 1024 * 1024:
            raise ConfigError(f"max_length must be from 1 to 1048576, got {max_length!r}")
        self.identity = identity
        self.aim_ids = aim_ids
        self.reconnect_interval = reconnect_interval
        self.max_length = max_length
        self.duplicates = DuplicateFilter(dedupe_window)
        self.rejections = 0
        self._on_scan: ScanCallback | None = None
        self._on_reject: RejectCallback | None = None
        self._rejection_logged_at = float("-inf")
        self._rejections_not_logged = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = DeviceStatus.UNKNOWN
        self.ready = threading.Event()  # set while the device is open

    # -- to implement -------------------------------------------------------------------

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read_loop(self) -> None:
        """Read until ``self._stop`` is set; raise OSError/ScannerError when the device goes away."""

    @abc.abstractmethod
    def _close(self) -> None: ...

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, on_scan: ScanCallback, on_reject: RejectCallback | None = None) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise ScannerError(f"scanner {self.identity} is already running")
        self._on_scan = on_scan
        self._on_reject = on_reject
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"scanner {self.identity}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("scanner %s reader did not stop within %.1fs", self.identity, timeout)
        self._thread = None

    def status(self) -> DeviceStatus:
        return self._status

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._open()
            except (OSError, ScannerError) as error:
                self._set_offline(f"cannot open: {error}")
                self._stop.wait(self.reconnect_interval)
                continue
            self._status = DeviceStatus.READY
            self.ready.set()
            logger.info("scanner %s ready", self.identity)
            try:
                self._read_loop()
            except (OSError, ScannerError) as error:
                self._set_offline(f"read failed: {error}")
                self._stop.wait(self.reconnect_interval)
            finally:
                self.ready.clear()
                try:
                    self._close()
                except OSError as error:
                    logger.debug("closing scanner %s: %s", self.identity, error)
        self._status = DeviceStatus.OFFLINE

    def _set_offline(self, reason: str) -> None:
        if self._status is not DeviceStatus.OFFLINE:
            logger.warning("scanner %s offline: %s", self.identity, reason)
        else:
            logger.debug("scanner %s still offline: %s", self.identity, reason)
        self._status = DeviceStatus.OFFLINE

    # -- events -----------------------------------------------------------------------------

    def _emit(self, text: str, raw: bytes = b"") -> ScanEvent | ScanRejection | None:
        """Check, classify and deliver one code; None when it is empty or a duplicate."""
        text = text.strip("\r\n")  # a CR/LF the framing left (or a scanner adds before its suffix)
        if not text:
            return None
        try:
            check_text(text, self.max_length)
            data, symbology, valid = classify(text, aim_ids=self.aim_ids)
        except ScanRejected as rejected:
            return self._reject(rejected.reason, rejected.message, len(raw) or len(text), raw or text)
        now = time.monotonic()
        if not self.duplicates.accept(data, now):
            logger.debug("scanner %s: duplicate %r suppressed", self.identity, data)
            return None
        event = ScanEvent(data=data, symbology=symbology, valid=valid, source=self.identity, monotonic=now, raw=raw)
        if valid is False:
            logger.info("scanner %s: %s %r has a wrong check digit", self.identity, symbology.value, data)
        callback = self._on_scan
        if callback is not None:
            try:
                callback(event)
            except Exception:  # a faulty consumer must not kill the reader thread
                logger.exception("scan callback failed for %r", data)
        return event

    def _emit_too_long(self, too_long: TooLong) -> ScanRejection:
        message = (
            f"{too_long.length} {self.length_unit} without an end, more than max_length {self.max_length}: "
            "dropped; check the scanner's suffix (it may not end its codes) or raise max_length"
        )
        return self._reject(RejectReason.TOO_LONG, message, too_long.length, too_long.start)

    def _reject(self, reason: RejectReason, message: str, length: int, start: bytes | str) -> ScanRejection:
        preview = start[:PREVIEW_LENGTH]
        escaped = (
            repr(preview)[2:-1] if isinstance(preview, bytes) else preview.encode("unicode_escape").decode("ascii")
        )
        rejection = ScanRejection(reason=reason, message=message, length=length, source=self.identity, preview=escaped)
        self.rejections += 1
        if rejection.monotonic - self._rejection_logged_at >= REJECTION_LOG_INTERVAL:
            more = (
                f" ({self._rejections_not_logged} more rejected since the last warning)"
                if self._rejections_not_logged
                else ""
            )
            logger.warning(
                'scanner %s: input rejected (%s): %s; it starts "%s"%s',
                self.identity,
                reason.value,
                message,
                escaped,
                more,
            )
            self._rejection_logged_at, self._rejections_not_logged = rejection.monotonic, 0
        else:
            self._rejections_not_logged += 1
            logger.debug("scanner %s: input rejected (%s): %s", self.identity, reason.value, message)
        callback = self._on_reject
        if callback is not None:
            try:
                callback(rejection)
            except Exception:
                logger.exception("scan rejection callback failed")
        return rejection
