"""Sales and refunds stored as rows (lines, payments), and one receipt number per device, on
SQLite and PostgreSQL: what apply_batch writes, what it refuses, and how two transactions
racing for one receipt number end."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _refund
from cloud_api.ingest import apply_batch
from cloud_api.ingest.fastparse import parse
from cloud_api.ingest.models import IngestedMessage
from cloud_api.ingest.sql import ConcurrentChangeError
from cloud_api.ingest.up import Up
from cloud_api.reports.models import RefundLine, RefundPayment, RefundRecord, SaleLine, SalePayment, SaleRecord
from tests.cloud.test_ingest_apply import (
    DEVICE,
    apply,
    sale,
    up,
)


def rows(engine: Engine, model: type, **where: Any) -> list[Any]:
    table = model.__table__
    query = select(table).where(*(table.c[name] == value for name, value in where.items()))
    with Session(engine) as session:
        return [row._asdict() for row in session.execute(query.order_by(*table.primary_key))]


def test_sale_stored_with_its_lines_and_payments(engine: Engine) -> None:
    envelope = up(sale(1187), 1)
    data = kc.encode(envelope)
    fast = parse(envelope.topic, data)
    assert type(fast) is Up and fast.wire_text is not None  # the fast path, body text as received
    with Session(engine) as session, session.begin():
        assert apply_batch(session, [fast]).applied == 1
    body = envelope.body

    [stored] = rows(engine, SaleRecord)
    assert {key: value for key, value in stored.items() if key not in ("sold_at", "payload")} == {
        "sale_id": body.sale_id,
        "device_id": DEVICE,
        "receipt_number": 1187,
        "cashier_id": body.cashier_id,
        "point_of_sale_code": body.point_of_sale_id,
        "till_session_id": body.till_session_id,
        "currency": "EUR",
        "tax_included": True,
        "total_minor": 2040,
        "tax_total_minor": 246,
        "change_minor": 60,
        "message_id": envelope.id,
    }
    assert stored["payload"] == body.model_dump(mode="json", exclude_none=True)
    with engine.connect() as conn:  # kept as text, the body exactly as it arrived
        raw = conn.execute(text("SELECT payload FROM sales")).scalar_one()
    assert isinstance(raw, str) and raw == fast.wire_text

    assert rows(engine, SaleLine) == [
        {
            "sale_id": body.sale_id,
            "line_index": index,
            "sku": line.sku,
            "name": line.name,
            "qty_milli": line.qty_milli,
            "unit_price_minor": line.unit_price,
            "tax_rate_bp": line.tax_rate_bp,
            "discount_minor": line.discount,
            "total_minor": line.total,
        }
        for index, line in enumerate(body.lines)
    ]
    assert rows(engine, SalePayment) == [
        {"sale_id": body.sale_id, "payment_index": 0, "method": "card", "amount_minor": 1000, "reference": "A1B2C3"},
        {"sale_id": body.sale_id, "payment_index": 1, "method": "cash", "amount_minor": 1100, "reference": None},
    ]


def test_sales_of_a_batch_and_their_resends_store_each_row_once(engine: Engine) -> None:
    batch = [up(sale(n), n, device_id=f"till-{n % 3}") for n in range(1, 31)]
    apply(engine, batch)
    resent_as_new_messages = [up(e.body, 100 + i, device_id=e.device_id) for i, e in enumerate(batch[:5])]
    plan = apply(engine, batch + resent_as_new_messages)
    assert (plan.applied, plan.duplicates, plan.rejected) == (5, 30, 0)
    assert len(rows(engine, SaleRecord)) == 30
    assert len(rows(engine, SaleLine)) == 30 * 3 and len(rows(engine, SalePayment)) == 30 * 2
    with Session(engine) as session:  # each sale's lines add up to its total
        for sale_row in session.scalars(select(SaleRecord)):
            lines = session.scalars(select(SaleLine.total_minor).where(SaleLine.sale_id == sale_row.sale_id)).all()
            assert sum(lines) == sale_row.total_minor


def test_refund_stored_with_its_lines_and_payments(engine: Engine) -> None:
    original = up(sale(1), 1)
    refund = _refund().model_copy(update={"original_sale_id": original.body.sale_id, "original_device_id": DEVICE})
    whole = kc.Refund(
        refund_id=uuid.uuid4(),
        original_sale_id=original.body.sale_id,
        original_device_id=DEVICE,
        scope=kc.RefundScope.WHOLE,
        currency="EUR",
        amount=2040,
        payments=[
            kc.Payment(method=kc.PaymentMethod.CARD, amount=2000, reference="R-1"),
            kc.Payment(method=kc.PaymentMethod.CASH, amount=40),
        ],
        cashier_id="C-0001",
        till_session_id=uuid.uuid4(),
        reason="wrong order",
    )
    batch = [original, up(refund, 2), up(whole, 3)]
    plan = apply(engine, batch)
    assert (plan.applied, plan.rejected) == (3, 0)

    stored = {row.pop("refund_id"): row for row in rows(engine, RefundRecord)}
    del stored[refund.refund_id]["refunded_at"]
    assert stored[refund.refund_id] == {
        "device_id": DEVICE,
        "original_sale_id": original.body.sale_id,
        "original_device_id": DEVICE,
        "scope": "lines",
        "cashier_id": refund.cashier_id,
        "till_session_id": refund.till_session_id,
        "reason": refund.reason,
        "currency": "EUR",
        "amount_minor": 1190,
        "payload": refund.model_dump(mode="json", exclude_none=True),
        "message_id": batch[1].id,
    }
    assert stored[whole.refund_id]["scope"] == "whole"
    assert rows(engine, RefundLine) == [
        {"refund_id": refund.refund_id, "line_index": 2, "qty_milli": 1000, "amount_minor": 1190}
    ]
    assert rows(engine, RefundPayment, refund_id=whole.refund_id) == [
        {"refund_id": whole.refund_id, "payment_index": 0, "method": "card", "amount_minor": 2000, "reference": "R-1"},
        {"refund_id": whole.refund_id, "payment_index": 1, "method": "cash", "amount_minor": 40, "reference": None},
    ]
    assert len(rows(engine, RefundPayment, refund_id=refund.refund_id)) == 1


def test_reused_receipt_number_is_refused_without_blocking_the_batch(engine: Engine) -> None:
    first = up(sale(500), 1)
    apply(engine, [first])
    reused_later = up(sale(500), 2)  # another sale, same device, same receipt number
    twins = [up(sale(501), 3), up(sale(501), 4)]  # both new, in one batch: the first wins
    other_device = up(sale(500), 1, device_id="till-8")  # numbers are per device
    fine = up(sale(502), 5)
    plan = apply(engine, [reused_later, *twins, other_device, fine])

    acked, rejected = plan.devices[DEVICE].acked, plan.devices[DEVICE].rejected
    assert list(acked) == [twins[0].id, fine.id]
    assert list(plan.devices["till-8"].acked) == [other_device.id]
    assert {message_id: r.reason for message_id, r in rejected.items()} == {
        reused_later.id: "sale.receipt_no_reused",
        twins[1].id: "sale.receipt_no_reused",
    }
    assert rejected[reused_later.id].detail == (f"receipt 500 is already recorded for sale {first.body.sale_id}")
    assert plan.devices[DEVICE].high_water == 5  # refused messages are settled too
    assert {(r["device_id"], r["receipt_number"]) for r in rows(engine, SaleRecord)} == {
        (DEVICE, 500),
        (DEVICE, 501),
        (DEVICE, 502),
        ("till-8", 500),
    }
    assert not rows(engine, SaleLine, sale_id=reused_later.body.sale_id)
    assert not rows(engine, SalePayment, sale_id=twins[1].body.sale_id)

    again = apply(engine, [reused_later])  # redelivered: answered as the first time
    assert again.duplicates == 1
    assert again.devices[DEVICE].rejected[reused_later.id].reason == "sale.receipt_no_reused"
    with Session(engine) as session:
        ledger = session.get(IngestedMessage, reused_later.id)
        assert (ledger.outcome, ledger.reject_reason) == ("rejected", "sale.receipt_no_reused")


def test_the_database_refuses_a_second_sale_with_a_used_receipt_number(engine: Engine) -> None:
    apply(engine, [up(sale(7), 1)])
    [stored] = rows(engine, SaleRecord)
    clash = {**stored, "sale_id": uuid.uuid4(), "message_id": uuid.uuid4()}
    with pytest.raises(IntegrityError, match=r"(?i)unique"), engine.begin() as conn:
        conn.execute(SaleRecord.__table__.insert(), [clash])


def test_two_transactions_racing_for_one_receipt_number(engine: Engine) -> None:
    """Worker A has stored receipt 42 but not committed; worker B, which could not see it,
    stores another sale under 42. B waits for A, then fails and retries its batch (PostgreSQL)
    or waits for the write lock and then sees A's sale (SQLite); either way B's sale ends up
    refused as a reused receipt and exactly one sale holds the number."""
    a_sale, b_sale = up(sale(42), 1), up(sale(42), 2)
    b_outcome: list[Any] = []
    b_pid: list[int] = []

    def worker_b() -> None:
        try:
            with Session(engine) as session, session.begin():
                if engine.dialect.name == "postgresql":
                    b_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                b_outcome.append(apply_batch(session, [Up.of(b_sale)]))
        except ConcurrentChangeError as exc:
            b_outcome.append(exc)

    with Session(engine) as a_session:
        with a_session.begin():
            assert apply_batch(a_session, [Up.of(a_sale)]).applied == 1
            b = threading.Thread(target=worker_b)
            b.start()
            wait_until_blocked(engine, b, b_pid)
        b.join(30)
    assert not b.is_alive()

    [outcome] = b_outcome
    if engine.dialect.name == "postgresql":
        assert isinstance(outcome, ConcurrentChangeError)  # the worker's retry path
        with Session(engine) as session, session.begin():  # the retry
            outcome = apply_batch(session, [Up.of(b_sale)])
    assert outcome.devices[DEVICE].rejected[b_sale.id].reason == "sale.receipt_no_reused"
    assert [r["sale_id"] for r in rows(engine, SaleRecord)] == [a_sale.body.sale_id]
    assert {r["sale_id"] for r in rows(engine, SaleLine)} == {a_sale.body.sale_id}


def wait_until_blocked(engine: Engine, thread: threading.Thread, pid: list[int]) -> None:
    """Until B waits on a lock held by A's open transaction."""
    if engine.dialect.name == "sqlite":
        time.sleep(0.3)  # B waits in SQLite's busy handler for the write lock (or has not
        assert thread.is_alive()  # started writing yet: it then sees A's sale, same outcome)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert thread.is_alive()
        if pid:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid[0]}
                ).scalar()
            if waiting == "Lock":
                return
        time.sleep(0.02)
    raise AssertionError("worker B never waited for worker A")
