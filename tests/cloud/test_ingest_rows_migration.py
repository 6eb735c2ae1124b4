"""Migration 0002 on a database holding sales and refunds stored before it (payload only):
their columns and child rows are filled in from the payload, and receipt numbers used twice
stop the upgrade with a message that says what to do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from broker.contract.examples import _refund, _sale
from cloud_api import schema
from cloud_api.db import make_engine
from cloud_api.reports.models import RefundLine, RefundPayment, RefundRecord, SaleLine, SalePayment, SaleRecord
from tests.cloud.api_support import BACKENDS, private_database

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# The two tables as revision 0001 made them.
OLD_SALES = sa.table(
    "sales",
    *(
        sa.column(name, type_)
        for name, type_ in [
            ("sale_id", sa.Uuid()),
            ("device_id", sa.String()),
            ("receipt_number", sa.BigInteger()),
            ("currency", sa.String()),
            ("total_minor", sa.BigInteger()),
            ("sold_at", sa.DateTime(True)),
            ("payload", JSON_DOC),
            ("message_id", sa.Uuid()),
        ]
    ),
)
OLD_REFUNDS = sa.table(
    "refunds",
    *(
        sa.column(name, type_)
        for name, type_ in [
            ("refund_id", sa.Uuid()),
            ("device_id", sa.String()),
            ("original_sale_id", sa.Uuid()),
            ("original_device_id", sa.String()),
            ("currency", sa.String()),
            ("amount_minor", sa.BigInteger()),
            ("refunded_at", sa.DateTime(True)),
            ("payload", JSON_DOC),
            ("message_id", sa.Uuid()),
        ]
    ),
)


def old_sale(conn: sa.Connection, receipt_no: int, device_id: str = "till-1") -> uuid.UUID:
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": receipt_no})
    conn.execute(
        OLD_SALES.insert().values(
            sale_id=sale.sale_id,
            device_id=device_id,
            receipt_number=receipt_no,
            currency="EUR",
            total_minor=sale.total,
            sold_at=AT,
            payload=sale.model_dump(mode="json", exclude_none=True),
            message_id=uuid.uuid4(),
        )
    )
    return sale.sale_id


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_stored_before_0002_are_filled_in(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine, "0001")
            refund = _refund()
            with engine.begin() as conn:
                sale_ids = [old_sale(conn, n) for n in range(1, 4)]
                conn.execute(
                    OLD_REFUNDS.insert().values(
                        refund_id=refund.refund_id,
                        device_id="till-1",
                        original_sale_id=sale_ids[0],
                        original_device_id="till-1",
                        currency="EUR",
                        amount_minor=refund.amount,
                        refunded_at=AT,
                        payload=refund.model_dump(mode="json", exclude_none=True),
                        message_id=uuid.uuid4(),
                    )
                )
            schema.upgrade(engine)

            with engine.connect() as conn:
                assert (
                    compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata())
                    == []
                )
            with Session(engine) as session:
                sale = session.get(SaleRecord, sale_ids[1])
                assert (
                    sale.cashier_id,
                    sale.point_of_sale_code,
                    sale.tax_included,
                    sale.tax_total_minor,
                    sale.change_minor,
                ) == ("C-0107", "POS-MAIN", True, 246, 60)
                assert sale.payload["receipt_no"] == 2
                lines = session.scalars(
                    sa.select(SaleLine).where(SaleLine.sale_id == sale_ids[1]).order_by(SaleLine.line_index)
                ).all()
                assert [(line.line_index, line.sku, line.total_minor) for line in lines] == [
                    (0, "4006381333931", 500),
                    (1, "PLU-4131", 350),
                    (2, "9780201633610", 1190),
                ]
                assert session.scalar(sa.select(sa.func.count()).select_from(SaleLine)) == 9
                assert session.scalar(sa.select(sa.func.count()).select_from(SalePayment)) == 6
                stored = session.get(RefundRecord, refund.refund_id)
                assert (stored.scope, stored.cashier_id, stored.reason) == ("lines", refund.cashier_id, refund.reason)
                assert [(line.line_index, line.amount_minor) for line in session.scalars(sa.select(RefundLine))] == [
                    (2, 1190)
                ]
                assert [(p.method, p.amount_minor) for p in session.scalars(sa.select(RefundPayment))] == [
                    ("cash", 1190)
                ]
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_receipt_numbers_used_twice_stop_the_upgrade_until_resolved(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine, "0001")
            with engine.begin() as conn:
                old_sale(conn, 5)
                duplicate = old_sale(conn, 5)
                old_sale(conn, 5, device_id="till-2")  # another device may use the number
            with pytest.raises(RuntimeError, match=r"device till-1 receipt 5 \(2 sales\)"):
                schema.upgrade(engine)
            with engine.begin() as conn:  # what the message asks the operator to do
                conn.execute(OLD_SALES.delete().where(OLD_SALES.c.sale_id == duplicate))
            schema.upgrade(engine)
            with Session(engine) as session:
                assert session.scalar(sa.select(sa.func.count()).select_from(SaleLine)) == 6
                assert (
                    session.scalar(
                        sa.select(sa.func.count()).select_from(SaleRecord).where(SaleRecord.cashier_id.is_(None))
                    )
                    == 0
                )
        finally:
            engine.dispose()
