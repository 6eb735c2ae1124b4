"""Shared scanner machinery: a reader thread, reconnects, event building, de-duplication."""

from __future__ import annotations

import abc
import logging
import threading
import time

from drivers.errors import ScannerError
from drivers.interfaces import ScanCallback, Scanner
from drivers.scanners.events import DuplicateFilter, ScanEvent, classify
from drivers.status import DeviceStatus

logger = logging.getLogger(__name__)


class ThreadedScanner(Scanner):
    """Runs ``_read_loop`` in a daemon thread and hands events to a callback.

    The callback runs in the reader thread; the agent wraps it with
    ``loop.call_soon_threadsafe``. A device that disappears is reopened
    every ``reconnect_interval`` seconds until :meth:`stop`.
    """

    def __init__(self, identity: str, *, dedupe_window: float = 1.0, aim_ids: bool = False,
                 reconnect_interval: float = 2.0) -> None:
        self.identity = identity
        self.aim_ids = aim_ids
        self.reconnect_interval = reconnect_interval
        self.duplicates = DuplicateFilter(dedupe_window)
        self._on_scan: ScanCallback | None = None
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

    def start(self, on_scan: ScanCallback) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise ScannerError(f"scanner {self.identity} is already running")
        self._on_scan = on_scan
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

    def _emit(self, text: str, raw: bytes = b"") -> ScanEvent | None:
        text = text.strip("\r\n\x00")
        if not text:
            return None
        data, symbology, valid = classify(text, aim_ids=self.aim_ids)
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
