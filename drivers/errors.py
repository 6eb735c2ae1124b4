"""Typed errors: each says *why* a device could not do its job.

The agent's durable print queue retries on :class:`PrinterUnavailableError`
subclasses and gives up (dead-letters) on :class:`DocumentError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.status import DeviceStatus

if TYPE_CHECKING:
    from drivers.status import PrinterStatus


class DriverError(Exception):
    """Base class of every error raised by ``drivers``."""


class ConfigError(DriverError, ValueError):
    """A device URL or option is malformed or names something unsupported."""


class DocumentError(DriverError, ValueError):
    """A receipt document cannot be rendered (bad barcode, bad image...). Retrying will not help."""


class TransportError(DriverError, OSError):
    """A byte-level link failed (connect, write or read)."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out
        # Set by a write that failed after bytes may have reached the device: part of the job
        # may have printed, so sending it again in full would print it twice.
        self.partial = False


class PrinterUnavailableError(DriverError):
    """The printer cannot print right now; retry later. ``reason`` says why."""

    reason: DeviceStatus = DeviceStatus.UNKNOWN
    retryable = True

    def __init__(self, message: str, *, status: PrinterStatus | None = None, job_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.job_id = job_id
        self.interrupted = False  # the job's write had begun: some of it may have printed


class PaperOutError(PrinterUnavailableError):
    reason = DeviceStatus.PAPER_OUT


class CoverOpenError(PrinterUnavailableError):
    reason = DeviceStatus.COVER_OPEN


class PrinterOfflineError(PrinterUnavailableError):
    reason = DeviceStatus.OFFLINE


class PrinterStatusUnknownError(PrinterUnavailableError):
    """The printer did not answer a status query, so kassa will not assume it is ready."""

    reason = DeviceStatus.UNKNOWN


_ERROR_FOR_STATUS = {
    DeviceStatus.PAPER_OUT: PaperOutError,
    DeviceStatus.COVER_OPEN: CoverOpenError,
    DeviceStatus.OFFLINE: PrinterOfflineError,
    DeviceStatus.UNKNOWN: PrinterStatusUnknownError,
}


def error_for_status(
    status: PrinterStatus, job_id: str | None = None, action: str = "print"
) -> PrinterUnavailableError:
    """The typed error that explains why ``status`` prevents ``action``."""
    error_class = _ERROR_FOR_STATUS.get(status.status, PrinterStatusUnknownError)
    detail = "; ".join(status.details)
    message = f"cannot {action}: printer is {status.status.value}" + (f" ({detail})" if detail else "")
    return error_class(message, status=status, job_id=job_id)


class DrawerError(DriverError):
    """The drawer could not be kicked."""


class ScannerError(DriverError):
    """A scanner could not be opened or read."""
