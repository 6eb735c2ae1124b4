"""What the sales component is built from, and the helpers its sale, refund and till code share.

``SalesBase`` holds the collaborators the wiring hands in (agent/wiring.py): the runtime
(store, outbox, events, config), the permission gate and the till hardware. Nothing here
looks another component up; tests build it from the same parts (tests/agent/test_sales_unit.py).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from agent.cashiers.permissions import Action, Gate, Grant, PermissionRefused
from agent.hardware.facade import RenderedReceipt, TillHardware
from agent.runtime import Runtime
from agent.sales import receipts
from agent.sales.models import DrawerOutcome, PrintResult, SalesRefused
from agent.sales.reports import configured_currency, period_currency
from drivers import Receipt

log = logging.getLogger(__name__)


class SalesBase:
    def __init__(
        self, runtime: Runtime, gate: Gate, hardware: TillHardware, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = runtime.config
        self.store = runtime.store
        self.events = runtime.events
        self.device_id = runtime.device_id
        # Sales are queued in the outbox even before pairing starts the cloud link, whose drain
        # sends every row of the table once it runs.
        self.outbox = runtime.outbox
        self.gate = gate
        self.hardware = hardware
        self.clock = clock
        self.committed = {"sales": 0, "refunds": 0, "replays": 0}

    # ------------------------------------------------------------------- cashiers
    def _authorize(self, token: str, action: Action, *, sale_till_session: str | None = None) -> Grant:
        try:
            return self.gate.authorize(token, action, sale_till_session=sale_till_session)
        except PermissionRefused as exc:
            raise SalesRefused(exc.code, exc.message) from None

    def _session(self, token: str) -> None:
        """Any logged-in cashier (printing, reprints, X report)."""
        try:
            self.gate.current_cashier(token)
        except PermissionRefused as exc:
            raise SalesRefused(exc.code, exc.message) from None

    # ------------------------------------------------------------------- printing
    def _template(self) -> receipts.Template:
        # The language is read for every receipt: a changed site.language applies to the next one.
        return receipts.current_template(self.store.read(), self.config.site.language)

    def _render(self, document: Receipt) -> RenderedReceipt | None:
        """The receipt printer's bytes, or None when there is no receipt printer."""
        return self.hardware.render_receipt(document)

    def _queue_rendered(
        self, conn: sqlite3.Connection, rendered: RenderedReceipt | None, *, kind: str, ref: str
    ) -> str | None:
        return None if rendered is None else self.hardware.queue_rendered(conn, rendered, kind=kind, ref=ref)

    def _print(self, document: Receipt, *, kind: str, ref: str | None) -> PrintResult:
        if self.hardware.receipt_printer is None:
            raise SalesRefused("print.no_printer", "no receipt printer is configured")
        queued = self.hardware.queue_receipt(document, kind=kind, ref=ref)
        return PrintResult(job_id=queued.job_id, printer=queued.printer)

    # ------------------------------------------------------------------- drawer
    async def _kick_drawer(self, cash: bool) -> tuple[DrawerOutcome, str | None]:
        """After a commit: open the cash drawer; a failure is reported, never undoes anything."""
        if not cash:
            return DrawerOutcome.NOT_NEEDED, None
        if self.hardware.cash_drawer is None:
            return DrawerOutcome.NO_DRAWER, None
        try:
            await self.hardware.open_drawer()
        except Exception as exc:  # a refusal or a driver bug: the sale stands (drawer.failed is published)
            log.warning("cash drawer did not open after a commit", extra={"problem": str(exc)})
            return DrawerOutcome.FAILED, str(exc)
        return DrawerOutcome.OPENED, None

    # ------------------------------------------------------------------- money
    def _check_currency(self, currency: str, code: str) -> None:
        conn = self.store.read()
        expected = period_currency(conn, {}) or configured_currency(receipts.pushed_config(conn))
        if expected is not None and currency != expected:
            raise SalesRefused(code, f"this till works in {expected}, not {currency} (one currency per till period)")
