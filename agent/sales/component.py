"""The sales component (``agent.component("sales")``): sales, refunds, no-sale, reprints, X/Z.

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

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agent.cashiers.permissions import Action, Grant, PermissionRefused, requires
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
from agent.sales.till import TillMixin
from broker import contract as kc
from broker.contract.sales import PaymentMethod
from drivers import Receipt, ReceiptBuilder

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 3


class Sales(TillMixin):
    name = "sales"

    def __init__(self, agent: Agent) -> None:
        assert agent.store is not None
        self.agent = agent
        self.device_id = agent.config.device_id
        # An outbox of our own (like the cashiers' audit): sales are queued even before pairing
        # starts the cloud link, whose drain sends every row of the table once it runs.
        self.outbox = agent.outbox
        self.clock = time.time
        self.committed = {"sales": 0, "refunds": 0, "replays": 0}

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        conn = self.agent.store.read()
        return {
            "summary": f"period {ledger.open_period(conn)}, next receipt #{ledger.next_receipt_no(conn)}",
            "open_period": ledger.open_period(conn),
            "next_receipt_no": ledger.next_receipt_no(conn),
            **self.committed,
        }

    # ------------------------------------------------------------------- helpers
    def _authorize(self, token: str, action: Action, *, sale_till_session: str | None = None) -> Grant:
        try:
            return self.agent.component("cashiers").authorize(token, action, sale_till_session=sale_till_session)
        except PermissionRefused as exc:
            raise SalesRefused(exc.code, exc.message) from None
        except LookupError:
            raise SalesRefused("session.invalid", "cashier logins are not running on this terminal") from None

    def _session(self, token: str) -> dict[str, Any]:
        """Any logged-in cashier (printing, reprints, X report)."""
        try:
            return self.agent.component("cashiers").session(token)
        except PermissionRefused as exc:
            raise SalesRefused(exc.code, exc.message) from None
        except LookupError:
            raise SalesRefused("session.invalid", "cashier logins are not running on this terminal") from None

    def _hardware(self) -> Any | None:
        try:
            return self.agent.component("hardware")
        except LookupError:
            return None

    def _receipt_printer(self) -> str | None:
        hardware = self._hardware()
        return None if hardware is None else hardware.receipt_printer

    def _render(self, document: Receipt) -> tuple[str, bytes] | None:
        """(printer, bytes) for the receipt printer, or None when there is none."""
        name = self._receipt_printer()
        if name is None:
            return None
        return name, self._hardware().printers[name].render(document)

    def _submit(self, conn: Any, rendered: tuple[str, bytes] | None, *, kind: str, ref: str) -> str | None:
        if rendered is None:
            return None
        return self._hardware().queue.submit(conn, rendered[0], rendered[1], kind=kind, ref=ref)

    def _template(self) -> receipts.Template:
        # The language is read for every receipt: a changed site.language applies to the next one.
        return receipts.current_template(self.agent.store.read(), self.agent.config.site.language)

    async def _kick_drawer(self, cash: bool) -> tuple[DrawerOutcome, str | None]:
        """After a commit: open the cash drawer; a failure is reported, never undoes anything."""
        if not cash:
            return DrawerOutcome.NOT_NEEDED, None
        hardware = self._hardware()
        if hardware is None or hardware.cash_drawer is None:
            return DrawerOutcome.NO_DRAWER, None
        try:
            await hardware.open_drawer()
        except (
            Exception
        ) as exc:  # HardwareError or a driver bug: the sale stands either way (drawer.failed is published)
            log.warning("cash drawer did not open after a commit", extra={"problem": str(exc)})
            return DrawerOutcome.FAILED, str(exc)
        return DrawerOutcome.OPENED, None

    def _check_currency(self, currency: str, code: str) -> None:
        from agent.sales.reports import _configured_currency, period_currency

        conn = self.agent.store.read()
        expected = period_currency(conn, {}) or _configured_currency(receipts.pushed_config(conn))
        if expected is not None and currency != expected:
            raise SalesRefused(code, f"this till works in {expected}, not {currency} (one currency per till period)")

    # --------------------------------------------------------------------- sales
    async def commit_sale(self, token: str, request: SaleRequest) -> SaleResult:
        """Sell once per ``request.request_id``; see the module docstring for the order of writes."""
        grant = self._authorize(token, Action.SELL)
        digest = ledger.request_hash(request)
        earlier = ledger.sale_by_request(self.agent.store.read(), request.request_id)
        if earlier is not None:
            return self._replay(earlier, digest, "sale")
        priced = compute.price_sale(request)
        self._check_currency(request.currency, "sale.currency")
        result = self._commit_sale(grant, self, request, priced, digest)
        if result.replayed:
            return result
        self.committed["sales"] += 1
        cash = any(p.method is PaymentMethod.CASH for p in priced.payments)
        drawer, drawer_error = await self._kick_drawer(cash)
        result = result.model_copy(update={"drawer": drawer, "drawer_error": drawer_error})
        self.agent.events.publish(
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

    def _replay(self, earlier: tuple[str, dict[str, Any]], digest: str, family: str) -> Any:
        stored_hash, stored = earlier
        if stored_hash != digest:
            raise SalesRefused(
                f"{family}.request_id_reused", f"request id {stored['request_id']} was used for a different {family}"
            )
        self.committed["replays"] += 1
        # Nothing happens again: no second receipt, no second drawer opening.
        model = SaleResult if family == "sale" else RefundResult
        return model(**{**stored, "replayed": True, "drawer": DrawerOutcome.NOT_NEEDED, "drawer_error": None})

    # @requires wants the grant as the first argument: a static method taking the component second.
    @staticmethod
    @requires(Action.SELL)
    def _commit_sale(
        grant: Grant, self: Sales, request: SaleRequest, priced: compute.Computed, digest: str
    ) -> SaleResult:
        store = self.agent.store
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
                        return self._replay(again, digest, "sale")
                    ledger.claim_receipt_no(conn, receipt_no)
                    job_id = self._submit(conn, rendered, kind="sale", ref=body["sale_id"])
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

    def get_sale(self, sale_id: str) -> dict[str, Any] | None:
        """A sale of this device as committed (the kc.Sale body), or None."""
        stored = ledger.sale(self.agent.store.read(), sale_id)
        return None if stored is None else stored.body

    # ------------------------------------------------------------------- refunds
    async def refund(self, token: str, request: RefundRequest) -> RefundResult:
        """Refund once per ``request.request_id``: whole or lines, never more than was sold."""
        try:
            sale_uuid = str(uuid.UUID(request.sale_id))
        except ValueError:
            raise SalesRefused("refund.invalid_request", f"sale id {request.sale_id!r} is not a UUID") from None
        conn = self.agent.store.read()
        local = ledger.sale(conn, sale_uuid)
        if local is not None:
            grant = self._authorize(token, Action.REFUND_OWN, sale_till_session=local.body["till_session_id"])
        else:  # a sale of another device: only an admin, and only after the gate asks the cloud
            grant = self._authorize(token, Action.REFUND_ANY)
        digest = ledger.request_hash(request)
        earlier = ledger.refund_by_request(conn, request.request_id)
        if earlier is not None:
            return self._replay(earlier, digest, "refund")
        refunded = ledger.refunded_lines(conn, sale_uuid)
        cloud_refunded: dict[int, tuple[int, int]] = {}
        paid_out = ledger.paid_out_by_method(conn, sale_uuid)  # by this terminal's refunds of the sale
        if local is not None:
            sale, device = local.body, self.device_id
        else:
            # Asked every time, also after a refund of it here: other terminals refund it too. The
            # cloud's refunds that this terminal made (and counts in `refunded`) are left out.
            found = await find_foreign_sale(self.agent, sale_uuid, counted=ledger.refund_ids(conn, sale_uuid))
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
            self,
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
        self.agent.events.publish(
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

    @staticmethod
    @requires(Action.REFUND_OWN)
    def _commit_refund(
        grant: Grant,
        self: Sales,
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
        store = self.agent.store
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
                        return self._replay(again, digest, "refund")
                    if ledger.refunded_lines(conn, sale["sale_id"]) != refunded:
                        raise ledger.CounterMoved("the sale was refunded meanwhile")
                    ledger.claim_receipt_no(conn, receipt_no)
                    job_id = self._submit(conn, rendered, kind="refund", ref=body["refund_id"])
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
        return await self._no_sale(grant, self, drawer)

    @staticmethod
    @requires(Action.NO_SALE)
    async def _no_sale(grant: Grant, self: Sales, drawer: str | None) -> DrawerResult:
        hardware = self._hardware()
        name = drawer or (hardware.cash_drawer if hardware is not None else None)
        if drawer is not None and (hardware is None or drawer not in hardware.drawers):
            raise SalesRefused("drawer.unknown", f"no drawer named {drawer!r} is configured here")
        if hardware is None or name is None or name not in hardware.drawers:
            raise SalesRefused("drawer.none", "this terminal has no cash drawer configured")
        # Recorded first: an opening is never without its audit trail, even if we crash right after.
        self.outbox.enqueue_one(
            kc.Event(
                kind="drawer.no_sale",
                cashier_id=grant.cashier_id,
                details={"drawer": name, "till_session_id": grant.session.till_session_id},
            )
        )
        try:
            state = await hardware.open_drawer(
                name, cashier_id=grant.cashier_id
            )  # a failure is published as drawer.failed
        except Exception as exc:
            raise SalesRefused("drawer.failed", f"the drawer did not open: {exc}") from None
        self.agent.events.publish("drawer.no_sale", drawer=name, cashier_id=grant.cashier_id)
        return DrawerResult(drawer=name, state=state)

    def _print(self, document: Receipt, *, kind: str, ref: str | None) -> PrintResult:
        hardware = self._hardware()
        if hardware is None or hardware.receipt_printer is None:
            raise SalesRefused("print.no_printer", "no receipt printer is configured")
        job_id = hardware.queue.submit_document(hardware.receipt_printer, document, kind=kind, ref=ref)
        return PrintResult(job_id=job_id, printer=hardware.receipt_printer)

    async def print_document(self, token: str, document: dict[str, Any]) -> PrintResult:
        """Print a document in the receipt model's JSON form (any logged-in cashier)."""
        self._session(token)
        return self._print(parse_document(document), kind="document", ref=None)

    async def reprint(self, token: str, sale_id: str) -> PrintResult:
        """A copy (marked ``*** COPY ***``, in the terminal's language) of a sale's or refund's receipt (any logged-in cashier)."""
        self._session(token)
        conn = self.agent.store.read()
        row = conn.execute(
            "SELECT print_job_id, body, created_at, 'sale' FROM sales WHERE sale_id = ?"
            " UNION ALL SELECT print_job_id, body, created_at, 'refund' FROM refunds WHERE refund_id = ?",
            (sale_id, sale_id),
        ).fetchone()
        if row is None:
            raise SalesRefused("sale.unknown", f"no sale or refund {sale_id} on this terminal")
        hardware = self._hardware()
        if row[0] is not None and hardware is not None and hardware.queue.get(row[0]) is not None:
            return PrintResult(job_id=hardware.queue.reprint(row[0]), printer=hardware.queue.get(row[0]).printer)
        import json

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
