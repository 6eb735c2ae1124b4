"""The ESC/POS printer driver: render, check status, write, confirm."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers import dle_eot
from drivers.errors import (
    ConfigError,
    PrinterOfflineError,
    PrinterUnavailableError,
    TransportError,
    error_for_status,
)
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.interfaces import Printer, PrintResult
from drivers.printers.profile import PrinterProfile, load_profile
from drivers.printers.transport import PrinterTransport
from drivers.receipt.document import Receipt
from drivers.receipt.escpos import EscposRenderer
from drivers.registry import Supports, UsbId, register_driver
from drivers.status import DeviceStatus, PrinterStatus
from drivers.vendors import PRINTER_VENDORS, USB_CLASS_PRINTER

logger = logging.getLogger(__name__)

STATUS_CHECKS = ("auto", "always", "never")


@register_driver
class EscposPrinter(Printer):
    """Any ESC/POS receipt printer on USB, TCP, serial or a device file.

    ``status_check``: ``auto`` checks DLE EOT before each job when the link
    can answer (a plain file cannot); ``always`` also refuses to print
    through a link that cannot answer; ``never`` prints blind (for printers
    that do not implement DLE EOT).

    After a job the status is asked again: the answer comes in stream order,
    after the job, so it confirms the job arrived. ``link_bytes_per_s`` (by
    default the serial line's speed, else the slowest common link) sets how
    long that answer may take: the job's bytes, twice over at that speed, plus
    ``status_timeout``. Silence then is ``unknown``, never "printed".
    """

    supports = Supports(
        kind=DeviceKind.PRINTER,
        transports=frozenset({Transport.USB, Transport.TCP, Transport.SERIAL, Transport.FILE}),
        usb_ids=tuple(UsbId(vendor) for vendor in PRINTER_VENDORS),
        match_usb_classes=(USB_CLASS_PRINTER,),
        notes="ESC/POS receipt printers (Star models in ESC/POS emulation mode)",
    )

    def __init__(
        self,
        transport: PrinterTransport,
        profile: PrinterProfile | None = None,
        *,
        identity: str | None = None,
        status_check: str = "auto",
        status_timeout: float = 0.5,
        drawer_open_level: str = "high",
        keep_open: bool | None = None,
        name: str | None = None,
        link_bytes_per_s: float | None = None,
    ) -> None:
        if status_check not in STATUS_CHECKS:
            raise ConfigError(f"status_check must be one of {STATUS_CHECKS}")
        if link_bytes_per_s is not None and not float(link_bytes_per_s) > 0:
            raise ConfigError(f"link_bytes_per_s must be > 0 bytes per second, got {link_bytes_per_s!r}")
        if drawer_open_level not in dle_eot.DRAWER_OPEN_LEVELS:
            raise ConfigError(f"drawer_open_level must be one of {dle_eot.DRAWER_OPEN_LEVELS}")
        self.transport = transport
        self.profile = profile or load_profile()
        self.renderer = EscposRenderer(self.profile)
        self.identity = identity or transport.describe()
        self.name = name or self.identity
        self.status_check = status_check
        self.status_timeout = float(status_timeout)
        self.link_bytes_per_s = (
            float(link_bytes_per_s) if link_bytes_per_s is not None else transport.nominal_bytes_per_s
        )
        self.drawer_open_level = drawer_open_level
        self.keep_open = transport.keep_open_default if keep_open is None else keep_open
        self._lock = threading.RLock()
        self.last_status: PrinterStatus | None = None

    @classmethod
    def from_descriptor(cls, descriptor: DeviceDescriptor, **options: Any) -> EscposPrinter:
        """Bind to a discovered device (see :mod:`drivers.discovery`)."""
        from drivers.printers.factory import open_printer, url_for_descriptor

        return open_printer(url_for_descriptor(descriptor), identity=descriptor.identity, **options)

    # -- status ------------------------------------------------------------------------

    def _checks_status(self) -> bool:
        if self.status_check == "never":
            return False
        return self.status_check == "always" or self.transport.bidirectional

    def _query_locked(self, first_timeout: float | None = None) -> PrinterStatus:
        try:
            self.transport.open()
        except TransportError as error:
            return PrinterStatus.offline(str(error))
        if not self.transport.bidirectional:
            return PrinterStatus.unknown(f"{self.transport.describe()} cannot report status")
        try:
            status = dle_eot.read_status(
                self.transport,
                self.status_timeout,
                drawer_open_level=self.drawer_open_level,
                first_timeout=first_timeout,
            )
        except TransportError as error:
            # the link broke mid-query (peer closed, device gone): unreachable, not merely silent
            self.transport.close()
            return PrinterStatus.offline(str(error))
        self.last_status = status
        return status

    def status(self) -> PrinterStatus:
        with self._lock:
            try:
                return self._query_locked()
            finally:
                self._release_locked()

    def drawer_status(self) -> DeviceStatus:
        with self._lock:
            try:
                self.transport.open()
                return dle_eot.read_drawer(
                    self.transport, self.status_timeout, drawer_open_level=self.drawer_open_level
                )
            except TransportError as error:
                logger.debug("drawer status of %s: %s", self.name, error)
                return DeviceStatus.UNKNOWN
            finally:
                self._release_locked()

    # -- printing ------------------------------------------------------------------------

    def render(self, document: Receipt) -> bytes:
        return self.renderer.render(document)

    def print_document(self, document: Receipt, job_id: str) -> PrintResult:
        data = self.render(document)  # outside the lock: a DocumentError must not need the printer
        return self.send_raw(data, job_id)

    def send_raw(
        self, data: bytes, job_id: str, *, check_status: bool = True, before_write: Callable[[], None] | None = None
    ) -> PrintResult:
        started = time.monotonic()
        with self._lock:
            try:
                return self._send_locked(data, job_id, check_status and self._checks_status(), started, before_write)
            finally:
                self._release_locked()

    def _send_locked(
        self, data: bytes, job_id: str, check: bool, started: float, before_write: Callable[[], None] | None
    ) -> PrintResult:
        before = None
        if check:
            before = self._query_locked()
            if not before.can_print:
                # debug: a queue retries every few seconds while the printer stays offline; the
                # agent's print queue logs the outage once, a summary, and its end.
                logger.debug("job %s not sent to %s: %s", job_id, self.name, before.status.value)
                raise error_for_status(before, job_id)
        if before_write is not None:
            before_write()
        writing = time.monotonic()
        try:
            self.transport.write(data)
        except TransportError as error:
            logger.warning("job %s: writing to %s failed: %s", job_id, self.name, error)
            explained = self._explain_write_failure(error, job_id)
            explained.interrupted = error.partial
            raise explained from error
        after = None
        if check:
            # answered in stream order: an answer means every byte before it arrived
            after = self._query_locked(first_timeout=self.confirmation_wait(len(data), writing))
            if after.status is DeviceStatus.UNKNOWN:
                logger.warning(
                    "job %s written to %s but not confirmed: %s", job_id, self.name, "; ".join(after.details)
                )
        seconds = time.monotonic() - started
        logger.debug("job %s: %d bytes to %s in %.3fs", job_id, len(data), self.name, seconds)
        return PrintResult(job_id, len(data), before, after, seconds)

    def confirmation_wait(self, size: int, writing_since: float) -> float:
        """Seconds from now to wait for the status answer queued behind a job of ``size`` bytes
        whose write began at ``writing_since`` (monotonic): the answer cannot come before the
        printer took the job. Twice the job's time at the link's speed (flow control pauses,
        a printer that prints slower than its link), plus the normal status timeout.
        A shorter wait took a slow link's late answer for silence and printed every job again."""
        in_flight_until = writing_since + 2 * size / self.link_bytes_per_s
        return self.status_timeout + max(0.0, in_flight_until - time.monotonic())

    def _explain_write_failure(self, error: TransportError, job_id: str) -> PrinterUnavailableError:
        # a stalled write usually has a cause the printer will tell us about
        status = self._query_locked() if self.transport.bidirectional else None
        if status is not None and not status.can_print and status.status is not DeviceStatus.UNKNOWN:
            return error_for_status(status, job_id)
        return PrinterOfflineError(f"cannot print: {error}", status=status, job_id=job_id)

    def _release_locked(self) -> None:
        if not self.keep_open:
            self.transport.close()

    def close(self) -> None:
        with self._lock:
            self.transport.close()

    def __repr__(self) -> str:
        return f"<EscposPrinter {self.name} profile={self.profile.name}>"
