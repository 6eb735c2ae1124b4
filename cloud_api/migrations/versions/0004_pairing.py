"""Device pairing by code: pending registrations and issued client certificates.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Two new tables, no change to existing ones: `pairing_registrations` (one row per registration,
with the certificate once claimed) and `pairing_events` (the audit trail).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(64)
CODE = sa.String(16)


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "pairing_registrations",
        _col("id", sa.Integer(), autoincrement=True), _col("device_id", DEVICE_ID), _col("pairing_code", CODE),
        _col("open_device_id", DEVICE_ID, True), _col("open_code", CODE, True), _col("state", sa.String(16)),
        _col("identity_key", sa.String(64)), _col("csr_pem", sa.Text()), _col("registered_from", sa.String(64), True),
        _col("created_at", UTC), _col("expires_at", UTC), _col("last_poll_at", UTC, True), _col("claimed_at", UTC, True),
        _col("claimed_by", sa.Integer(), True), _col("company_id", sa.Integer(), True),
        _col("point_of_sale_id", sa.Integer(), True), _col("certificate_pem", sa.Text(), True),
        _col("certificate_serial", sa.String(40), True), _col("certificate_not_after", UTC, True),
        _col("delivered_at", UTC, True),
        sa.ForeignKeyConstraint(["claimed_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.ForeignKeyConstraint(["point_of_sale_id"], ["points_of_sale.id"]),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("open_device_id"), sa.UniqueConstraint("open_code"),
    )
    op.create_index("ix_pairing_registrations_device_id", "pairing_registrations", ["device_id"])
    op.create_index("ix_pairing_registrations_pairing_code", "pairing_registrations", ["pairing_code"])
    op.create_index("ix_pairing_registrations_company_id", "pairing_registrations", ["company_id"])
    op.create_table(
        "pairing_events",
        _col("id", sa.Integer(), autoincrement=True), _col("at", UTC), _col("event", sa.String(32)),
        _col("device_id", DEVICE_ID, True), _col("registration_id", sa.Integer(), True), _col("user_id", sa.Integer(), True),
        _col("company_id", sa.Integer(), True), _col("point_of_sale_id", sa.Integer(), True),
        _col("client", sa.String(64), True), _col("detail", sa.String(500), True),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.ForeignKeyConstraint(["point_of_sale_id"], ["points_of_sale.id"]),
        sa.ForeignKeyConstraint(["registration_id"], ["pairing_registrations.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pairing_events_device_id", "pairing_events", ["device_id"])
    op.create_index("ix_pairing_events_company_event_at", "pairing_events", ["company_id", "event", "at"])


def downgrade() -> None:
    op.drop_table("pairing_events")  # dropping a table drops its indexes
    op.drop_table("pairing_registrations")
