"""What sales, licence and pairing may ask of the hardware: print a receipt, open a drawer.

``Hardware`` (agent/hardware/component.py) implements it; the printers, the print queue and
the drivers stay behind it. Tests hand sales a small fake of this instead of a whole agent.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple, Protocol

from drivers import Receipt


class RenderedReceipt(NamedTuple):
    printer: str
    data: bytes  # the printer's own bytes (ESC/POS)


class QueuedPrint(NamedTuple):
    job_id: str
    printer: str


class TillHardware(Protocol):
    """The receipt printer and the cash drawer, as the till uses them."""

    @property
    def receipt_printer(self) -> str | None: ...

    @property
    def cash_drawer(self) -> str | None: ...

    def has_drawer(self, name: str) -> bool: ...

    def render_receipt(self, document: Receipt) -> RenderedReceipt | None: ...

    def queue_rendered(self, conn: sqlite3.Connection, rendered: RenderedReceipt, *, kind: str, ref: str) -> str: ...

    def queue_receipt(
        self, document: Receipt, *, kind: str, ref: str | None = None, printer: str | None = None
    ) -> QueuedPrint: ...

    def reprint_job(self, job_id: str) -> QueuedPrint | None: ...

    async def open_drawer(self, drawer: str | None = None, *, cashier_id: str | None = None) -> str: ...
