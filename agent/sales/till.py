"""X and Z reports of the sales component (``Sales`` inherits them; ``SalesBase`` holds the parts).

Who may do what (decided here, documented in docs/architecture.md):
- X report (read-only running totals): any logged-in cashier.
- Z report (closes the period for the whole device): a cashier with ``sell`` (closing the
  till at the end of a shift is routine), or an ``admin`` (``refund_any``). Both actions are
  licensed, so a terminal without a valid licence cannot close a period either; its open
  period stays and is closed by the first Z after the licence is back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from agent.cashiers.permissions import Action, Grant
from agent.sales import ledger, receipts, reports
from agent.sales.base import SalesBase
from agent.sales.models import ReportResult, SalesRefused
from broker import contract as kc


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class TillReports(SalesBase):
    async def x_report(self, token: str, *, print_it: bool = False) -> ReportResult:
        """The open period's running totals; printed when asked."""
        self._session(token)
        conn = self.store.read()
        report = reports.totals(conn, receipts.pushed_config(conn), now=self.clock())
        job = None
        if print_it:
            document = receipts.report_receipt(report, device_id=self.device_id, template=self._template())
            job = self._print(document, kind="report", ref=None).job_id
        return ReportResult(**report, print_job_id=job)

    async def z_report(self, token: str, *, print_it: bool = True) -> ReportResult:
        """Close the open period: Z row, kc.ZReport in the outbox and the printout in one transaction."""
        try:
            grant = self._authorize(token, Action.SELL)
        except SalesRefused as refused:
            if refused.code != "permission.denied":
                raise
            try:
                grant = self._authorize(token, Action.REFUND_ANY)
            except SalesRefused:
                raise SalesRefused(
                    "permission.denied", "closing the till (Z report) needs the role cashier or admin"
                ) from None
        result = self._close_period(grant, print_it)
        self.events.publish(
            "till.z_report",
            z_no=result.z_no,
            report_id=result.report_id,
            closed_by=grant.cashier_id,
            sales_count=result.sales_count,
            sales_total=result.sales_total,
        )
        return result

    def _close_period(self, grant: Grant, print_it: bool) -> ReportResult:
        # Two actions may close a period, so this is checked here rather than with @requires.
        if not isinstance(grant, Grant) or grant.action not in (Action.SELL, Action.REFUND_ANY):
            raise SalesRefused("permission.denied", "closing the till needs the role cashier or admin")
        store = self.store
        conn = store.read()
        now = self.clock()
        report = reports.totals(conn, receipts.pushed_config(conn), now=now)
        z_no = ledger.open_period(conn)
        receipt_counter = ledger.next_receipt_no(conn)
        body = kc.ZReport(
            report_id=kc.uuid7(),
            z_no=z_no,
            currency=report["currency"],
            opened_at=_at(report["opened_at"]),
            closed_at=_at(now),
            closed_by=grant.cashier_id,
            first_receipt_no=report["first_receipt_no"],
            last_receipt_no=report["last_receipt_no"],
            sales_count=report["sales_count"],
            refunds_count=report["refunds_count"],
            sales_total=report["sales_total"],
            refunds_total=report["refunds_total"],
            tax_total=report["tax_total"],
            payments=[kc.PaymentTotal(**p) for p in report["payments"]],
            taxes=[kc.TaxLine(**t) for t in report["taxes"]],
        )
        report = {**report, "kind": "z", "z_no": z_no, "report_id": str(body.report_id), "closed_at": now}
        draft = self.outbox.draft(body)
        rendered = None
        if print_it:
            rendered = self._render(
                receipts.report_receipt(report, device_id=self.device_id, template=self._template())
            )
        with store.transaction() as tx:
            if ledger.open_period(tx) != z_no or ledger.next_receipt_no(tx) != receipt_counter:
                raise SalesRefused("report.concurrent", "a sale or another Z report came in meanwhile; close again")
            job = self._queue_rendered(tx, rendered, kind="report", ref=str(body.report_id))
            self.outbox.enqueue(tx, draft)
            ledger.insert_z(
                tx,
                z_no=z_no,
                report_id=str(body.report_id),
                opened_at=report["opened_at"],
                closed_at=now,
                closed_by=grant.cashier_id,
                body=json.loads(body.model_dump_json()),
                print_job_id=job,
            )
        return ReportResult(**report, print_job_id=job)
