"""Applying the bodies of newly recorded up messages, and the business rules that refuse them.

Each apply_* function takes the new up messages of one type (ids already recorded in this
transaction) and the receipt time, and returns the ones refused for good as
{message id: (reason, detail)}. Rows are written in key order so that concurrent workers
lock them in the same order.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.fields import MAX_STORED_INT  # sales.receipt_number; the contract's receipt_no has no upper bound
from cloud_api.db import table_of, upsert_insert
from cloud_api.ingest.models import CommandReply, DeviceEvent, DevicePresence, DeviceReport
from cloud_api.ingest.sql import ConcurrentChangeError, copy_rows, insert_new, select_where_in
from cloud_api.ingest.up import Up
from cloud_api.reports.models import RefundLine, RefundPayment, RefundRecord, SaleLine, SalePayment, SaleRecord

log = logging.getLogger(__name__)

Refusals = dict[uuid.UUID, tuple[str, str]]

_sales = table_of(SaleRecord)
_sale_lines = table_of(SaleLine)
_sale_payments = table_of(SalePayment)
_refunds = table_of(RefundRecord)
_refund_lines = table_of(RefundLine)
_refund_payments = table_of(RefundPayment)
_events = table_of(DeviceEvent)
_replies = table_of(CommandReply)
_reports = table_of(DeviceReport)
_presence = table_of(DevicePresence)
_SALE_COLUMNS = (
    "sale_id",
    "device_id",
    "receipt_number",
    "cashier_id",
    "point_of_sale_code",
    "till_session_id",
    "currency",
    "tax_included",
    "total_minor",
    "tax_total_minor",
    "change_minor",
    "sold_at",
    "payload",
    "message_id",
)
_LINE_COLUMNS = (
    "sale_id",
    "line_index",
    "sku",
    "name",
    "qty_milli",
    "unit_price_minor",
    "tax_rate_bp",
    "discount_minor",
    "total_minor",
)
_PAYMENT_COLUMNS = ("sale_id", "payment_index", "method", "amount_minor", "reference")


def _uuid_order(value: uuid.UUID) -> int:
    return value.int


def apply_sales(session: Session, ups: list[Up], now: datetime) -> Refusals:
    """Record sales with their lines and payments. A sale id stored with other content, or
    a receipt number already used by another sale of the device, is refused; the same sale
    resent under a new message id changes nothing.

    Reads the sale from its wire form, which the fast path provides without a model. Two
    workers storing clashing sales at once: the second insert fails on the primary key or
    on uq_sales_device_receipt, and its batch is retried, now seeing the first one's sale."""
    sales = [(up, up.wire_form()) for up in ups]
    sale_ids = [uuid.UUID(wire["sale_id"]) for _, wire in sales]
    stored = {
        sale_id: (device_id, payload)
        for sale_id, device_id, payload in select_where_in(
            session, _sales, ("sale_id", "device_id", "payload"), [("sale_id", sorted(sale_ids, key=_uuid_order))]
        )
    }
    receipts = {
        (device_id, receipt_number): sale_id
        for device_id, receipt_number, sale_id in select_where_in(
            session,
            _sales,
            ("device_id", "receipt_number", "sale_id"),
            [
                ("device_id", sorted({up.device_id for up in ups})),
                (
                    "receipt_number",
                    sorted({wire["receipt_no"] for _, wire in sales if wire["receipt_no"] <= MAX_STORED_INT}),
                ),
            ],
        )
    }
    refusals: Refusals = {}
    new: list[tuple[uuid.UUID, Up, dict[str, Any]]] = []
    for (up, payload), sale_id in zip(sales, sale_ids, strict=True):
        receipt_no = payload["receipt_no"]
        if sale_id in stored:
            if stored[sale_id] != (up.device_id, payload):
                refusals[up.id] = ("sale.conflict", f"sale {sale_id} is already recorded with different content")
            continue
        if receipt_no > MAX_STORED_INT:  # refused with a reason, not failed on every resend
            refusals[up.id] = ("message.unstorable", "the receipt number exceeds 2^63-1")
            continue
        owner = receipts.get((up.device_id, receipt_no))
        if owner is not None:
            refusals[up.id] = ("sale.receipt_no_reused", f"receipt {receipt_no} is already recorded for sale {owner}")
            continue
        stored[sale_id] = (up.device_id, payload)
        receipts[(up.device_id, receipt_no)] = sale_id
        new.append((sale_id, up, payload))
    if new:
        _insert_sales(session, new)
    return refusals


def _insert_sales(session: Session, new: list[tuple[uuid.UUID, Up, dict[str, Any]]]) -> None:
    """One bulk insert each into sales, sale_lines and sale_payments, in sale id order
    (concurrent workers then wait on each other's keys in one order)."""
    new.sort(key=lambda item: item[0].int)
    sales, lines, payments = [], [], []
    for sale_id, up, sale in new:
        sales.append(
            (
                sale_id,
                up.device_id,
                sale["receipt_no"],
                sale["cashier_id"],
                sale["point_of_sale_id"],
                uuid.UUID(sale["till_session_id"]),
                sale["currency"],
                sale["tax_included"],
                sale["total"],
                sale["tax_total"],
                sale["change"],
                up.created_at,
                up.wire_document(),
                up.id,
            )
        )
        lines += [
            (
                sale_id,
                index,
                line["sku"],
                line["name"],
                line["qty_milli"],
                line["unit_price"],
                line["tax_rate_bp"],
                line["discount"],
                line["total"],
            )
            for index, line in enumerate(sale["lines"])
        ]
        payments += [
            (sale_id, index, payment["method"], payment["amount"], payment.get("reference"))
            for index, payment in enumerate(sale["payments"])
        ]
    try:
        copy_rows(session, _sales, _SALE_COLUMNS, sales)
    except IntegrityError as exc:
        raise ConcurrentChangeError("sales: a sale id or receipt number was stored concurrently") from exc
    # Keyed by sale id: a clash here would have failed the sales insert above first.
    copy_rows(session, _sale_lines, _LINE_COLUMNS, lines)
    copy_rows(session, _sale_payments, _PAYMENT_COLUMNS, payments)


def apply_refunds(session: Session, envelopes: list[Up], now: datetime) -> Refusals:
    """Record refunds with their lines and payments; a refund id stored with other content
    is refused.

    The original sale may not be here yet (another device's messages can arrive later), so
    it is not required.
    """
    refund_ids = [envelope.body.refund_id for envelope in envelopes]
    stored = {
        row.refund_id: (row.device_id, row.payload)
        for row in session.execute(
            select(_refunds.c.refund_id, _refunds.c.device_id, _refunds.c.payload).where(
                _refunds.c.refund_id.in_(refund_ids)
            )
        )
    }
    refusals: Refusals = {}
    rows, lines, payments = [], [], []
    for envelope in envelopes:
        refund: kc.Refund = envelope.body
        payload = envelope.wire_form()
        if refund.refund_id in stored:
            if stored[refund.refund_id] != (envelope.device_id, payload):
                refusals[envelope.id] = (
                    "refund.conflict",
                    f"refund {refund.refund_id} is already recorded with different content",
                )
            continue
        stored[refund.refund_id] = (envelope.device_id, payload)
        rows.append(
            {
                "refund_id": refund.refund_id,
                "device_id": envelope.device_id,
                "original_sale_id": refund.original_sale_id,
                "original_device_id": refund.original_device_id,
                "scope": refund.scope.value,
                "cashier_id": refund.cashier_id,
                "till_session_id": refund.till_session_id,
                "reason": refund.reason,
                "currency": refund.currency,
                "amount_minor": refund.amount,
                "refunded_at": envelope.created_at,
                "payload": payload,
                "message_id": envelope.id,
            }
        )
        lines += [
            {
                "refund_id": refund.refund_id,
                "line_index": line.line_index,
                "qty_milli": line.qty_milli,
                "amount_minor": line.amount,
            }
            for line in sorted(refund.lines, key=lambda line: line.line_index)
        ]
        payments += [
            {
                "refund_id": refund.refund_id,
                "payment_index": index,
                "method": payment.method.value,
                "amount_minor": payment.amount,
                "reference": payment.reference,
            }
            for index, payment in enumerate(refund.payments)
        ]
    _insert_all_or_retry(session, _refunds, rows, "refund_id")
    # Child rows in their refund's order (the sort is stable), after the refunds themselves.
    _insert_all_or_retry(session, _refund_lines, lines, "refund_id")
    _insert_all_or_retry(session, _refund_payments, payments, "refund_id")
    return refusals


def apply_events(session: Session, envelopes: list[Up], now: datetime) -> Refusals:
    refusals = _refuse_unstorable(envelopes)
    rows = [
        {
            "message_id": envelope.id,
            "device_id": envelope.device_id,
            "kind": envelope.body.kind,
            "cashier_id": envelope.body.cashier_id,
            "details": envelope.body.details,
            "occurred_at": envelope.created_at,
        }
        for envelope in envelopes
        if envelope.id not in refusals
    ]
    _insert_all_or_retry(session, _events, rows, "message_id")
    return refusals


def apply_replies(session: Session, envelopes: list[Up], now: datetime) -> Refusals:
    """Keep the first reply to each command; a later one (a resend after a device restart
    made a new message) is logged and changes nothing."""
    refusals = _refuse_unstorable(envelopes)
    replies = [(envelope, _command_id(envelope)) for envelope in envelopes if envelope.id not in refusals]
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for envelope, command_id in sorted(replies, key=lambda reply: reply[0].seq):
        rows.setdefault(
            command_id,
            {
                "correlation_id": command_id,
                "device_id": envelope.device_id,
                "ok": envelope.body.ok,
                "reply": envelope.wire_form(),
                "message_id": envelope.id,
                "received_at": now,
            },
        )
    inserted = insert_new(session, _replies, list(rows.values()), "correlation_id")
    for envelope, command_id in replies:
        first = rows[command_id]["message_id"] == envelope.id
        if not first or command_id not in inserted:
            log.info(
                "command already answered; later reply ignored",
                extra={"device_id": envelope.device_id, "correlation_id": str(command_id)},
            )
    return refusals


def _command_id(reply: Up) -> uuid.UUID:
    """The command a reply answers (the contract requires `correlation_id` of every reply)."""
    if reply.correlation_id is None:
        raise ValueError(f"reply {reply.id} names no command")
    return reply.correlation_id


def apply_reports(session: Session, envelopes: list[Up], now: datetime) -> Refusals:
    """Keep the latest report of each kind per device (highest seq wins, whatever the order
    of arrival)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for envelope in envelopes:
        key = (envelope.device_id, _report_kind(envelope.body))
        if key not in latest or latest[key]["seq"] < envelope.seq:
            latest[key] = {
                "device_id": key[0],
                "kind": key[1],
                "seq": envelope.seq,
                "report": envelope.wire_form(),
                "message_id": envelope.id,
                "reported_at": envelope.created_at,
            }
    statement = upsert_insert(session, _reports)
    newer = {name: statement.excluded[name] for name in ("seq", "report", "message_id", "reported_at")}
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[_reports.c.device_id, _reports.c.kind],
            set_=newer,
            where=_reports.c.seq < statement.excluded.seq,
        ),
        [latest[key] for key in sorted(latest)],
    )
    return {}


def record_presence(session: Session, envelopes: list[kc.Envelope], now: datetime) -> int:
    """Online/offline per device: the last status received wins (the broker orders one
    topic's messages, and the retained status re-sent on every subscribe corrects a worker
    that fell behind). A status already recorded (that retained copy, or the copy every
    other worker receives too) changes nothing, so `last_seen_at` stays the time the status
    first arrived. Returns the number of status messages taken into account."""
    latest: dict[str, tuple[kc.Envelope, kc.Status]] = {}
    for envelope in envelopes:
        if not isinstance(envelope.body, kc.Status):
            raise TypeError(f"message {envelope.id} is a {envelope.type}, not a status")
        latest[envelope.device_id] = (envelope, envelope.body)
    rows = [
        {
            "device_id": device_id,
            "state": status.state.value,
            "boot_id": envelope.boot_id,
            "status_message_id": envelope.id,
            "status_at": envelope.created_at,
            "last_seen_at": now,
        }
        for device_id, (envelope, status) in sorted(latest.items())
    ]
    statement = upsert_insert(session, _presence)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[_presence.c.device_id],
            set_={
                name: statement.excluded[name]
                for name in ("state", "boot_id", "status_message_id", "status_at", "last_seen_at")
            },
            where=_presence.c.status_message_id != statement.excluded.status_message_id,
        ),
        rows,
    )
    return len(envelopes)


def _refuse_unstorable(envelopes: list[Up]) -> Refusals:
    """Free-form JSON (event details, reply results) may hold NUL characters, which the
    contract allows but PostgreSQL cannot store: refuse them on every database alike, rather
    than fail the message on every resend."""
    return {
        envelope.id: ("message.unstorable", "the JSON holds a NUL character (\\u0000)")
        for envelope in envelopes
        if _holds_nul(envelope.wire_form())
    }


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _report_kind(body: kc.DeviceState | kc.LeaseReport | kc.ReleaseReceipt | kc.BindRequest) -> str:
    if isinstance(body, kc.DeviceState):
        return "state"
    return f"licence.{body.kind.value}"


def _insert_all_or_retry(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    """Insert rows whose keys were checked absent above (a plain executemany, the fastest
    path on both databases). A key stored meanwhile by a concurrent worker fails the insert;
    only a fresh look at the table can tell the outcome, so the batch is retried."""
    if not rows:
        return
    try:
        session.execute(table.insert(), sorted(rows, key=lambda row: row[key]))
    except IntegrityError as exc:
        raise ConcurrentChangeError(f"{table.name}: a key was stored concurrently") from exc
