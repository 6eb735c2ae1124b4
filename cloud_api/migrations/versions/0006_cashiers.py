"""Cashiers: the cashier book, allowed devices, details per point of sale, operator codes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Five new tables of cloud_api/cashiers/models.py, no change to existing ones: `cashiers`
(soft-deleted, code unique per company), `cashier_devices`, `cashier_details`,
`operator_codes` (every operator code a company ever used; rows are never deleted, so the
primary key refuses any reuse) and `cashier_roster_locks` (serialises roster changes per
company).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
CODE = sa.String(64)
OPERATOR_CODE = sa.String(4)


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "cashiers",
        _col("id", sa.Integer(), autoincrement=True), _col("company_id", sa.Integer()), _col("code", CODE),
        _col("name", sa.String(200)), _col("operator_code", OPERATOR_CODE), _col("pin_hash", sa.String(200), True),
        _col("pin_set_at", UTC, True), _col("roles", JSON_DOC), _col("enabled", sa.Boolean()),
        _col("all_devices", sa.Boolean()), _col("deleted_at", UTC, True), _col("created_at", UTC),
        _col("updated_at", UTC),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "code", name="uq_cashiers_company_code"),
    )
    op.create_index("ix_cashiers_company_id", "cashiers", ["company_id"])
    op.create_table(
        "cashier_devices",
        _col("cashier_id", sa.Integer()), _col("device_id", sa.String(64)),
        sa.ForeignKeyConstraint(["cashier_id"], ["cashiers.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.PrimaryKeyConstraint("cashier_id", "device_id"),
    )
    op.create_index("ix_cashier_devices_device_id", "cashier_devices", ["device_id"])
    op.create_table(
        "cashier_details",
        _col("cashier_id", sa.Integer()), _col("point_of_sale_id", sa.Integer()), _col("terminal_id", CODE),
        _col("operator_code", OPERATOR_CODE),
        sa.ForeignKeyConstraint(["cashier_id"], ["cashiers.id"]),
        sa.ForeignKeyConstraint(["point_of_sale_id"], ["points_of_sale.id"]),
        sa.PrimaryKeyConstraint("cashier_id", "point_of_sale_id"),
    )
    op.create_table(
        "operator_codes",
        _col("company_id", sa.Integer()), _col("code", OPERATOR_CODE), _col("cashier_id", sa.Integer()),
        _col("point_of_sale_id", sa.Integer(), True), _col("taken_at", UTC),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.ForeignKeyConstraint(["cashier_id"], ["cashiers.id"]),
        sa.ForeignKeyConstraint(["point_of_sale_id"], ["points_of_sale.id"]),
        sa.PrimaryKeyConstraint("company_id", "code"),
    )
    op.create_index("ix_operator_codes_cashier_id", "operator_codes", ["cashier_id"])
    op.create_table(
        "cashier_roster_locks",
        _col("company_id", sa.Integer()), _col("changes", sa.Integer()), _col("changed_at", UTC),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.PrimaryKeyConstraint("company_id"),
    )


def downgrade() -> None:
    op.drop_table("cashier_roster_locks")  # dropping a table drops its indexes
    op.drop_table("operator_codes")
    op.drop_table("cashier_details")
    op.drop_table("cashier_devices")
    op.drop_table("cashiers")
