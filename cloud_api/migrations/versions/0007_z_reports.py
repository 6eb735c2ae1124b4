"""Z reports: the `z_reports` table of cloud_api/reports/models.py.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

One row per Z report a device sent (up/z_report), kept once by `report_id`; the unique index
`uq_z_reports_device_z_no` allows one report per Z number of a device. No change to existing
tables (refunds already carry what the sales query shows of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
CODE = sa.String(64)


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "z_reports",
        _col("report_id", sa.Uuid()), _col("device_id", sa.String(64)), _col("z_no", sa.BigInteger()),
        _col("currency", sa.String(3)), _col("opened_at", UTC), _col("closed_at", UTC),
        _col("closed_by", CODE), _col("first_receipt_no", sa.BigInteger(), True),
        _col("last_receipt_no", sa.BigInteger(), True), _col("sales_count", sa.BigInteger()),
        _col("refunds_count", sa.BigInteger()), _col("sales_total_minor", sa.BigInteger()),
        _col("refunds_total_minor", sa.BigInteger()), _col("tax_total_minor", sa.BigInteger()),
        _col("payments", JSON_DOC), _col("taxes", JSON_DOC), _col("payload", sa.Text()),
        _col("message_id", sa.Uuid()), _col("received_at", UTC),
        sa.PrimaryKeyConstraint("report_id"),
    )
    op.create_index("uq_z_reports_device_z_no", "z_reports", ["device_id", "z_no"], unique=True)
    op.create_index("ix_z_reports_closed_at", "z_reports", ["closed_at"])


def downgrade() -> None:
    op.drop_index("ix_z_reports_closed_at", table_name="z_reports")
    op.drop_index("uq_z_reports_device_z_no", table_name="z_reports")
    op.drop_table("z_reports")
