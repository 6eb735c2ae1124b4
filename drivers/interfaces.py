"""The three device interfaces the agent programs against.

Drivers subclass one of these and declare a ``supports`` (see
:mod:`drivers.registry`). Blocking I/O is fine in every method: the agent
calls printers and drawers from worker threads, and scanners push events
from their own reader threads.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from drivers.status import DeviceStatus, PrinterStatus

if TYPE_CHECKING:
    from drivers.printers.profile import PrinterProfile
    from drivers.receipt.document import Receipt
    from drivers.scanners.events import ScanEvent, ScanRejection


@dataclass(frozen=True)
class PrintResult:
    """Returned only once every byte of the job was handed to the printer."""

    job_id: str
    bytes_written: int
    status_before: PrinterStatus | None
    # An answered status query after the job proves the printer received all
    # of it (it answers in stream order); None if the link cannot report.
    status_after: PrinterStatus | None
    seconds: float


class Printer(abc.ABC):
    identity: str
    profile: PrinterProfile

    @abc.abstractmethod
    def status(self) -> PrinterStatus:
        """Query the printer now. Never raises for an unreachable printer: returns OFFLINE/UNKNOWN."""

    @abc.abstractmethod
    def render(self, document: Receipt) -> bytes:
        """The bytes this printer would be sent for ``document``, without touching the printer.

        The agent renders a receipt in the sale's transaction and its print queue later
        hands the stored bytes to :meth:`send_raw`. Raises
        :class:`drivers.errors.DocumentError` for a document this printer cannot print."""

    @abc.abstractmethod
    def print_document(self, document: Receipt, job_id: str) -> PrintResult:
        """Print, or raise a :class:`drivers.errors.PrinterUnavailableError` subclass saying why not."""

    @abc.abstractmethod
    def send_raw(
        self, data: bytes, job_id: str, *, check_status: bool = True, before_write: Callable[[], None] | None = None
    ) -> PrintResult:
        """Write already-rendered ESC/POS bytes with the same guarantees as :meth:`print_document`.

        ``before_write()`` runs once the printer was found ready, just before the first byte
        goes out (a print queue records there that the job may have started; if it raises,
        nothing is written)."""

    @abc.abstractmethod
    def drawer_status(self) -> DeviceStatus:
        """DRAWER_OPEN, DRAWER_CLOSED or UNKNOWN from the printer's drawer connector."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


ScanCallback = Callable[["ScanEvent"], None]
RejectCallback = Callable[["ScanRejection"], None]


class Scanner(abc.ABC):
    identity: str

    @abc.abstractmethod
    def start(self, on_scan: ScanCallback, on_reject: RejectCallback | None = None) -> None:
        """Start the reader thread; ``on_scan`` is called from that thread for every scan,
        ``on_reject`` for input turned away (too long, binary, control characters...)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 2.0) -> None: ...

    @abc.abstractmethod
    def status(self) -> DeviceStatus:
        """READY while the device is open and being read, OFFLINE while it is missing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Drawer(abc.ABC):
    identity: str

    @abc.abstractmethod
    def open(self) -> None:
        """Kick the drawer and return after the settle time."""

    @abc.abstractmethod
    def state(self) -> DeviceStatus:
        """DRAWER_OPEN, DRAWER_CLOSED, or UNKNOWN when the hardware has no sensor."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link to the drawer (it does not shut the drawer)."""
