"""Sales stored as rows (lines, payments) and one receipt number per device.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

- sales: cashier_id, point_of_sale_code, till_session_id, tax_included, tax_total_minor,
  change_minor as columns; the received body (`payload`) becomes TEXT; (device_id,
  receipt_number) becomes unique.
- refunds: scope, cashier_id, till_session_id, reason as columns; `payload` becomes TEXT.
- sale_lines, sale_payments, refund_lines, refund_payments: new.
Rows stored before this revision are filled in from their payload. Like 0001 it adopts a
database whose tables were made from the models directly: what exists is kept.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
CODE = sa.String(64)
BACKFILL_CHUNK = 1000

SALE_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [("cashier_id", CODE), ("point_of_sale_code", CODE), ("till_session_id", sa.Uuid()),
                ("tax_included", sa.Boolean()), ("tax_total_minor", sa.BigInteger()),
                ("change_minor", sa.BigInteger())]
REFUND_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [("scope", sa.String(16)), ("cashier_id", CODE), ("till_session_id", sa.Uuid()),
                  ("reason", sa.String(500))]


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable)


def _payment_columns(parent: str) -> list[sa.schema.SchemaItem]:
    return [_col(parent, sa.Uuid()), _col("payment_index", sa.Integer()),
            _col("method", sa.String(16)), _col("amount_minor", sa.BigInteger()),
            _col("reference", CODE, True),
            sa.PrimaryKeyConstraint(parent, "payment_index")]


def _child_tables() -> dict[str, list[sa.schema.SchemaItem]]:
    return {
        "sale_lines": [
            _col("sale_id", sa.Uuid()), _col("line_index", sa.Integer()), _col("sku", CODE),
            _col("name", sa.String(200)), _col("qty_milli", sa.BigInteger()),
            _col("unit_price_minor", sa.BigInteger()), _col("tax_rate_bp", sa.Integer()),
            _col("discount_minor", sa.BigInteger()), _col("total_minor", sa.BigInteger()),
            sa.PrimaryKeyConstraint("sale_id", "line_index")],
        "sale_payments": _payment_columns("sale_id"),
        "refund_lines": [
            _col("refund_id", sa.Uuid()), _col("line_index", sa.Integer()),
            _col("qty_milli", sa.BigInteger()), _col("amount_minor", sa.BigInteger()),
            sa.PrimaryKeyConstraint("refund_id", "line_index")],
        "refund_payments": _payment_columns("refund_id"),
    }


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    for table, columns in (("sales", SALE_COLUMNS), ("refunds", REFUND_COLUMNS)):
        present = {column["name"] for column in inspector.get_columns(table)}
        for name, type_ in columns:
            if name not in present:
                op.add_column(table, _col(name, type_, nullable=True))  # filled in below
    for name, items in _child_tables().items():
        if name not in tables:
            op.create_table(name, *items)

    _fill_sales(bind)
    _fill_refunds(bind)
    _refuse_reused_receipts(bind)

    indexes = {index["name"] for index in inspector.get_indexes("sales")}
    with op.batch_alter_table("sales") as batch:
        for name, type_ in SALE_COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
        batch.alter_column("payload", existing_type=JSON_DOC, type_=sa.Text(),
                           existing_nullable=False, postgresql_using="payload::text")
        if "ix_sales_device_receipt" in indexes:
            batch.drop_index("ix_sales_device_receipt")
        if "uq_sales_device_receipt" not in indexes:
            batch.create_index("uq_sales_device_receipt", ["device_id", "receipt_number"],
                               unique=True)
    with op.batch_alter_table("refunds") as batch:
        for name, type_ in REFUND_COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
        batch.alter_column("payload", existing_type=JSON_DOC, type_=sa.Text(),
                           existing_nullable=False, postgresql_using="payload::text")


def downgrade() -> None:
    for name in reversed(list(_child_tables())):
        op.drop_table(name)
    with op.batch_alter_table("refunds") as batch:
        for name, _ in REFUND_COLUMNS:
            batch.drop_column(name)
        batch.alter_column("payload", existing_type=sa.Text(), type_=JSON_DOC,
                           existing_nullable=False, postgresql_using="payload::jsonb")
    with op.batch_alter_table("sales") as batch:
        batch.drop_index("uq_sales_device_receipt")
        batch.create_index("ix_sales_device_receipt", ["device_id", "receipt_number"])
        for name, _ in SALE_COLUMNS:
            batch.drop_column(name)
        batch.alter_column("payload", existing_type=sa.Text(), type_=JSON_DOC,
                           existing_nullable=False, postgresql_using="payload::jsonb")


# --------------------------------------------------------------------------- filling in
# Tables as this revision sees them (the models may change later; migrations must not).
_sales = sa.table("sales", sa.column("sale_id", sa.Uuid()), sa.column("payload", JSON_DOC),
                  *(sa.column(name, type_) for name, type_ in SALE_COLUMNS))
_refunds = sa.table("refunds", sa.column("refund_id", sa.Uuid()), sa.column("payload", JSON_DOC),
                    *(sa.column(name, type_) for name, type_ in REFUND_COLUMNS))


def _child(name: str) -> sa.TableClause:
    columns = [column for column in _child_tables()[name] if isinstance(column, sa.Column)]
    return sa.table(name, *(sa.column(column.name, column.type) for column in columns))


def _document(value: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return document


def _payment_rows(key: str, parent_id: Any, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: parent_id, "payment_index": index, "method": payment["method"],
             "amount_minor": payment["amount"], "reference": payment.get("reference")}
            for index, payment in enumerate(payments)]


def _unfilled(bind: sa.Connection, table: sa.TableClause, key: str) -> Sequence[sa.Row[Any, Any]]:
    return bind.execute(sa.select(table.c[key], table.c.payload)
                        .where(table.c.cashier_id.is_(None))
                        .order_by(table.c[key]).limit(BACKFILL_CHUNK)).all()


def _fill_sales(bind: sa.Connection) -> None:
    lines, payments = _child("sale_lines"), _child("sale_payments")
    while rows := _unfilled(bind, _sales, "sale_id"):
        updates, line_rows, payment_rows = [], [], []
        for sale_id, payload in rows:
            body = _document(payload)
            updates.append({
                "key": sale_id, "cashier_id": body["cashier_id"],
                "point_of_sale_code": body["point_of_sale_id"],
                "till_session_id": uuid.UUID(body["till_session_id"]),
                "tax_included": body["tax_included"], "tax_total_minor": body["tax_total"],
                "change_minor": body.get("change", 0)})
            line_rows += [{
                "sale_id": sale_id, "line_index": index, "sku": line["sku"], "name": line["name"],
                "qty_milli": line["qty_milli"], "unit_price_minor": line["unit_price"],
                "tax_rate_bp": line["tax_rate_bp"], "discount_minor": line.get("discount", 0),
                "total_minor": line["total"]} for index, line in enumerate(body["lines"])]
            payment_rows += _payment_rows("sale_id", sale_id, body["payments"])
        bind.execute(_sales.update().where(_sales.c.sale_id == sa.bindparam("key"))
                     .values({name: sa.bindparam(name) for name, _ in SALE_COLUMNS}), updates)
        _insert(bind, lines, line_rows)
        _insert(bind, payments, payment_rows)


def _fill_refunds(bind: sa.Connection) -> None:
    lines, payments = _child("refund_lines"), _child("refund_payments")
    while rows := _unfilled(bind, _refunds, "refund_id"):
        updates, line_rows, payment_rows = [], [], []
        for refund_id, payload in rows:
            body = _document(payload)
            updates.append({
                "key": refund_id, "scope": body["scope"], "cashier_id": body["cashier_id"],
                "till_session_id": uuid.UUID(body["till_session_id"]),
                "reason": body["reason"]})
            line_rows += [{"refund_id": refund_id, "line_index": line["line_index"],
                           "qty_milli": line["qty_milli"], "amount_minor": line["amount"]}
                          for line in body.get("lines", [])]
            payment_rows += _payment_rows("refund_id", refund_id, body["payments"])
        bind.execute(_refunds.update().where(_refunds.c.refund_id == sa.bindparam("key"))
                     .values({name: sa.bindparam(name) for name, _ in REFUND_COLUMNS}), updates)
        _insert(bind, lines, line_rows)
        _insert(bind, payments, payment_rows)


def _insert(bind: sa.Connection, table: sa.TableClause, rows: list[dict[str, Any]]) -> None:
    if rows:
        bind.execute(table.insert(), rows)


def _refuse_reused_receipts(bind: sa.Connection) -> None:
    """Stop with a clear message when two stored sales of one device share a receipt number
    (possible before this revision, when two workers raced): which one is the device's real
    receipt is for a person to decide, not for a migration."""
    clashes = bind.execute(sa.text(
        "SELECT device_id, receipt_number, COUNT(*) FROM sales "
        "GROUP BY device_id, receipt_number HAVING COUNT(*) > 1 "
        "ORDER BY device_id, receipt_number LIMIT 5")).all()
    if clashes:
        listed = ", ".join(f"device {device} receipt {receipt} ({count} sales)"
                           for device, receipt, count in clashes)
        raise RuntimeError(
            "cannot make receipt numbers unique per device: some are used by several sales "
            f"({listed}{', ...' if len(clashes) == 5 else ''}). Keep one sale per device and "
            "receipt number (the others' ids are in the sales table), then start again.")
