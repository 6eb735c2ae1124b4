"""The sales component: sales, refunds, no-sale, reprints, X/Z.

Every public method takes the cashier session token and passes the permission gate first;
refusals raise ``SalesRefused`` (stable code, message, ``.http_status``). Writes follow the
delivery rules: the message is drafted and the receipt rendered before the store
transaction opens; ONE transaction then writes the row, its receipt number, its outbox row
and its print job; the drawer opens and events are published only after the commit.

The work between reading the receipt counter and committing is synchronous on the agent's
loop, so two sales of this process cannot interleave; the counter is still claimed with a
compare-and-set in the transaction (``ledger.claim_receipt_no``) and drafted again if it moved.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, TypeVar

from pydantic import ValidationError

from agent.cashiers.permissions import Action, Grant, requires
from agent.sales import compute, ledger, receipts, refunds
from agent.sales.documents import parse_document
from agent.sales.foreign import find_foreign_sale
from agent.sales.models import (
    DrawerOutcome,
    DrawerResult,
    PrintResult,
    RefundRequest,
    RefundResult,
    SaleRequest,
    SaleResult,
    SalesRefused,
)
from agent.sales.till import TillReports
from broker import contract as kc
from broker.contract.sales import PaymentMethod
from drivers import ReceiptBuilder

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 3
R = TypeVar("R", SaleResult, RefundResult)


class Sales(TillReports):
    """Built from its collaborators (agent/sales/base.py ``SalesBase``): the runtime, the
    permission gate and the till hardware."""

    name = "sales"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        conn = self.store.read()
        return {
            "summary": f"period {ledger.open_period(conn)}, next receipt #{ledger.next_receipt_no(conn)}",
            "open_period": ledger.open_period(conn),
            "next_receipt_no": ledger.next_receipt_no(conn),
            **self.committed,
        }

    # --------------------------------------------------------------------- sales
    async def commit_sale(self, token: str, request: SaleRequest) -> SaleResult:
        """Sell once per ``request.request_id``; see the module docstring for the order of writes."""
        grant = self._authorize(token, Action.SELL)
        digest = ledger.request_hash(request)
        earlier = ledger.sale_by_request(self.store.read(), request.request_id)
        if earlier is not None:
            return self._replay(earlier, digest, "sale", SaleResult)
        priced = compute.price_sale(request)
        self._check_currency(request.currency, "sale.currency")
        result = self._commit_sale(grant, request, priced, digest)
        if result.replayed:
            return result
        self.committed["sales"] += 1
        cash = any(p.method is PaymentMethod.CASH for p in priced.payments)
        drawer, drawer_error = await self._kick_drawer(cash)
        result = result.model_copy(update={"drawer": drawer, "drawer_error": drawer_error})
        self.events.publish(
            "sale.committed",
            sale_id=result.sale_id,
            receipt_no=result.receipt_no,
            total=result.total,
            currency=result.currency,
            change=result.change,
            cashier_id=grant.cashier_id,
            print_job_id=result.print_job_id,
            drawer=drawer.value,
        )
        return result

    def _replay(self, earlier: tuple[str, dict[str, Any]], digest: str, family: str, model: type[R]) -> R:
        stored_hash, stored = earlier
        if stored_hash != digest:
            raise SalesRefused(
                f"{family}.request_id_reused", f"request id {stored['request_id']} was used for a different {family}"
            )
        self.committed["replays"] += 1
        # Nothing happens again: no second receipt, no second drawer opening.
        return model(**{**stored, "replayed": True, "drawer": DrawerOutcome.NOT_NEEDED, "drawer_error": None})

    @requires(Action.SELL)
    def _commit_sale(self, grant: Grant, request: SaleRequest, priced: compute.Computed, digest: str) -> SaleResult:
        store = self.store
        template = self._template()
        for _ in range(COMMIT_ATTEMPTS):
            now = self.clock()
            receipt_no = ledger.next_receipt_no(store.read())
            sale = priced.sale(request, sale_id=kc.uuid7(), receipt_no=receipt_no, fields=grant.sale_fields)
            body = sale.model_dump(mode="json")
            draft = self.outbox.draft(sale)
            rendered = None
            if request.print_receipt:
                rendered = self._render(
                    receipts.sale_receipt(body, created_at=now, device_id=self.device_id, template=template)
                )
            try:
                with store.transaction() as conn:
                    again = ledger.sale_by_request(conn, request.request_id)
                    if again is not None:  # committed by a concurrent call with the same id
                        return self._replay(again, digest, "sale", SaleResult)
                    ledger.claim_receipt_no(conn, receipt_no)
                    job_id = self._queue_rendered(conn, rendered, kind="sale", ref=body["sale_id"])
                    self.outbox.enqueue(conn, draft)
                    result = SaleResult(
                        sale_id=body["sale_id"],
                        request_id=request.request_id,
                        receipt_no=receipt_no,
                        created_at=now,
                        currency=sale.currency,
                        tax_included=sale.tax_included,
                        total=sale.total,
                        tax_total=sale.tax_total,
                        discount_total=priced.discount_total,
                        paid=sum(p.amount for p in sale.payments),
                        change=sale.change,
                        sale=body,
                        print_job_id=job_id,
                        drawer=DrawerOutcome.NOT_NEEDED,
                    )
                    ledger.insert_sale(
                        conn,
                        sale=body,
                        request_id=request.request_id,
                        request_hash=digest,
                        period_no=ledger.open_period(conn),
                        created_at=now,
                        result=result.model_dump(mode="json"),
                        print_job_id=job_id,
                    )
                return result
            except ledger.CounterMoved:
                continue
        raise SalesRefused("store.busy", "the receipt counter kept moving; try again")

    # ------------------------------------------------------------------- refunds
    async def refund(self, token: str, request: RefundRequest) -> RefundResult:
        """Refund once per ``request.request_id``: whole or lines, never more than was sold."""
        try:
            sale_uuid = str(uuid.UUID(request.sale_id))
        except ValueError:
            raise SalesRefused("refund.invalid_request", f"sale id {request.sale_id!r} is not a UUID") from None
        conn = self.store.read()
        local = ledger.sale(conn, sale_uuid)
        if local is not None:
            grant = self._authorize(token, Action.REFUND_OWN, sale_till_session=local.body["till_session_id"])
        else:  # a sale of another device: only an admin, and only after the gate asks the cloud
            grant = self._authorize(token, Action.REFUND_ANY)
        digest = ledger.request_hash(request)
        earlier = ledger.refund_by_request(conn, request.request_id)
        if earlier is not None:
            return self._replay(earlier, digest, "refund", RefundResult)
        refunded = ledger.refunded_lines(conn, sale_uuid)
        cloud_refunded: dict[int, tuple[int, int]] = {}
        paid_out = ledger.paid_out_by_method(conn, sale_uuid)  # by this terminal's refunds of the sale
        if local is not None:
            sale, device = local.body, self.device_id
        else:
            # Asked every time, also after a refund of it here: other terminals refund it too. The
            # cloud's refunds that this terminal made (and counts in `refunded`) are left out.
            found = await find_foreign_sale(self.config, sale_uuid, counted=ledger.refund_ids(conn, sale_uuid))
            sale, device, cloud_refunded = found.sale, found.device, found.refunded
            paid_out = {m: paid_out.get(m, 0) + found.paid_out.get(m, 0) for m in set(paid_out) | set(found.paid_out)}
        merged = {
            i: (
                refunded.get(i, (0, 0))[0] + cloud_refunded.get(i, (0, 0))[0],
                refunded.get(i, (0, 0))[1] + cloud_refunded.get(i, (0, 0))[1],
            )
            for i in set(refunded) | set(cloud_refunded)
        }
        scope, plans = refunds.plan(sale, merged, request)
        amount = sum(p.amount for p in plans)
        if request.payments is not None:
            refunds.check_refund_payments(request, amount)
            if local is None:  # another device's sale: never more cash than it took, over all its refunds
                refunds.check_cash_room(request, sale, paid_out)
            payments = [kc.Payment(method=p.method, amount=p.amount, reference=p.reference) for p in request.payments]
        else:
            payments = compute.default_refund_payments(sale, amount, paid_out)
        self._check_currency(sale["currency"], "refund.currency")
        result = self._commit_refund(
            grant,
            request,
            digest,
            sale,
            device,
            scope,
            plans,
            payments,
            refunded,
            foreign=local is None,
            remaining=refunds.remaining(sale, sum(a for _, a in merged.values()) + amount),
        )
        if result.replayed:
            return result
        self.committed["refunds"] += 1
        drawer, drawer_error = await self._kick_drawer(any(p.method is PaymentMethod.CASH for p in payments))
        result = result.model_copy(update={"drawer": drawer, "drawer_error": drawer_error})
        self.events.publish(
            "refund.committed",
            refund_id=result.refund_id,
            sale_id=result.sale_id,
            receipt_no=result.receipt_no,
            amount=result.amount,
            currency=result.currency,
            cashier_id=grant.cashier_id,
            drawer=drawer.value,
        )
        return result

    @requires(Action.REFUND_OWN)
    def _commit_refund(
        self,
        grant: Grant,
        request: RefundRequest,
        digest: str,
        sale: dict[str, Any],
        device: str,
        scope: kc.RefundScope,
        plans: list[compute.RefundLinePlan],
        payments: list[kc.Payment],
        refunded: dict[int, tuple[int, int]],
        *,
        foreign: bool,
        remaining: int,
    ) -> RefundResult:
        store = self.store
        fields = grant.sale_fields
        template = self._template()
        for _ in range(COMMIT_ATTEMPTS):
            now = self.clock()
            receipt_no = ledger.next_receipt_no(store.read())
            try:
                refund = kc.Refund(
                    refund_id=kc.uuid7(),
                    original_sale_id=uuid.UUID(sale["sale_id"]),
                    original_device_id=device,
                    scope=scope,
                    lines=[]
                    if scope is kc.RefundScope.WHOLE
                    else [
                        kc.RefundLine(line_index=p.line_index, qty_milli=p.qty_milli, amount=p.amount) for p in plans
                    ],
                    currency=sale["currency"],
                    amount=sum(p.amount for p in plans),
                    payments=payments,
                    cashier_id=fields["cashier_id"],
                    till_session_id=uuid.UUID(fields["till_session_id"]),
                    reason=request.reason,
                    receipt_no=receipt_no,
                    terminal_id=fields["terminal_id"],
                    operator_code=fields["operator_code"],
                )
            except ValidationError as exc:
                raise SalesRefused(
                    "refund.invalid_request", f"the refund is not valid: {exc.errors()[0]['msg']}"
                ) from None
            body = refund.model_dump(mode="json")
            draft = self.outbox.draft(refund)
            rendered = None
            if request.print_receipt:
                rendered = self._render(
                    receipts.refund_receipt(body, sale, created_at=now, device_id=self.device_id, template=template)
                )
            try:
                with store.transaction() as conn:
                    again = ledger.refund_by_request(conn, request.request_id)
                    if again is not None:
                        return self._replay(again, digest, "refund", RefundResult)
                    if ledger.refunded_lines(conn, sale["sale_id"]) != refunded:
                        raise ledger.CounterMoved("the sale was refunded meanwhile")
                    ledger.claim_receipt_no(conn, receipt_no)
                    job_id = self._queue_rendered(conn, rendered, kind="refund", ref=body["refund_id"])
                    self.outbox.enqueue(conn, draft)
                    result = RefundResult(
                        refund_id=body["refund_id"],
                        request_id=request.request_id,
                        sale_id=sale["sale_id"],
                        receipt_no=receipt_no,
                        created_at=now,
                        currency=refund.currency,
                        amount=refund.amount,
                        refund=body,
                        remaining=remaining,
                        print_job_id=job_id,
                        drawer=DrawerOutcome.NOT_NEEDED,
                    )
                    ledger.insert_refund(
                        conn,
                        refund=body,
                        request_id=request.request_id,
                        request_hash=digest,
                        period_no=ledger.open_period(conn),
                        created_at=now,
                        tax_total=sum(p.tax for p in plans),
                        lines=plans,
                        result=result.model_dump(mode="json"),
                        sale_body=sale if foreign else None,
                        print_job_id=job_id,
                    )
                return result
            except ledger.CounterMoved:
                raise SalesRefused(
                    "refund.concurrent", "the sale was refunded at the same moment; look at it again"
                ) from None
        raise SalesRefused("store.busy", "try again")

    # -------------------------------------------------------------- drawer, print
    async def open_drawer(self, token: str, drawer: str | None = None) -> DrawerResult:
        """No-sale: open the drawer; the audit event is queued before it opens."""
        grant = self._authorize(token, Action.NO_SALE)
        return await self._no_sale(grant, drawer)

    @requires(Action.NO_SALE)
    async def _no_sale(self, grant: Grant, drawer: str | None) -> DrawerResult:
        hardware = self.hardware
        name = drawer or hardware.cash_drawer
        if drawer is not None and not hardware.has_drawer(drawer):
            raise SalesRefused("drawer.unknown", f"no drawer named {drawer!r} is configured here")
        if name is None or not hardware.has_drawer(name):
            raise SalesRefused("drawer.none", "this terminal has no cash drawer configured")
        # Recorded first: an opening is never without its audit trail, even if we crash right after.
        self.outbox.enqueue_one(
            kc.Event(
                kind="drawer.no_sale",
                cashier_id=grant.cashier_id,
                details={"drawer": name, "till_session_id": grant.session.till_session_id},
            )
        )
        try:  # a failure is published as drawer.failed by the hardware
            state = await hardware.open_drawer(name, cashier_id=grant.cashier_id)
        except Exception as exc:
            raise SalesRefused("drawer.failed", f"the drawer did not open: {exc}") from None
        self.events.publish("drawer.no_sale", drawer=name, cashier_id=grant.cashier_id)
        return DrawerResult(drawer=name, state=state)

    async def print_document(self, token: str, document: dict[str, Any]) -> PrintResult:
        """Print a document in the receipt model's JSON form (any logged-in cashier)."""
        self._session(token)
        return self._print(parse_document(document), kind="document", ref=None)

    async def reprint(self, token: str, sale_id: str) -> PrintResult:
        """A copy (marked ``*** COPY ***``, in the terminal's language) of a sale's or refund's
        receipt (any logged-in cashier)."""
        self._session(token)
        conn = self.store.read()
        row = conn.execute(
            "SELECT print_job_id, body, created_at, 'sale' FROM sales WHERE sale_id = ?"
            " UNION ALL SELECT print_job_id, body, created_at, 'refund' FROM refunds WHERE refund_id = ?",
            (sale_id, sale_id),
        ).fetchone()
        if row is None:
            raise SalesRefused("sale.unknown", f"no sale or refund {sale_id} on this terminal")
        if row[0] is not None:
            copied = self.hardware.reprint_job(row[0])
            if copied is not None:
                return PrintResult(job_id=copied.job_id, printer=copied.printer)
        body = json.loads(row[1])
        template = self._template()
        if row[3] == "sale":
            document = receipts.sale_receipt(body, created_at=row[2], device_id=self.device_id, template=template)
        else:
            sale = ledger.sale(conn, body["original_sale_id"])
            original = (
                sale.body if sale is not None else (ledger.foreign_sale(conn, body["original_sale_id"]) or ({},))[0]
            )
            document = receipts.refund_receipt(
                body, original, created_at=row[2], device_id=self.device_id, template=template
            )
        copy = ReceiptBuilder().add(*receipts.copy_mark(template).blocks, *document.blocks).build()
        return self._print(copy, kind=row[3], ref=sale_id)
