"""The licence book: licences and their audit trail.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Two new tables, no change to existing ones: `licences` (one row per licence, its state is the
truth) and `licence_events` (one row per transition).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(64)
LICENCE_ID = sa.String(40)
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "licences",
        _col("id", LICENCE_ID), _col("owner_id", sa.Integer()), _col("partner_id", sa.Integer()),
        _col("company_id", sa.Integer(), True), _col("state", sa.String(16)), _col("licence_key", sa.String(32)),
        _col("key_lookup", sa.String(64)), _col("key_revealed_at", UTC, True), _col("entitlements", JSON_DOC),
        _col("valid_until", UTC), _col("device_id", DEVICE_ID, True), _col("epoch", sa.Integer()),
        _col("lease_token", sa.Text(), True), _col("lease_issued_at", UTC, True), _col("lease_expires_at", UTC, True),
        _col("releasing_from_device_id", DEVICE_ID, True), _col("releasing_from_epoch", sa.Integer(), True),
        _col("releasing_to_device_id", DEVICE_ID, True), _col("release_deadline", UTC, True),
        _col("created_at", UTC), _col("updated_at", UTC),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.ForeignKeyConstraint(["releasing_from_device_id"], ["devices.device_id"]),
        sa.ForeignKeyConstraint(["releasing_to_device_id"], ["devices.device_id"]),
        sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("key_lookup"),
    )
    op.create_index("ix_licences_owner_id", "licences", ["owner_id"])
    op.create_index("ix_licences_partner_id", "licences", ["partner_id"])
    op.create_index("ix_licences_company_id", "licences", ["company_id"])
    op.create_index("ix_licences_device_id", "licences", ["device_id"])
    op.create_index("ix_licences_releasing_to_device_id", "licences", ["releasing_to_device_id"])
    op.create_index("ix_licences_state_release_deadline", "licences", ["state", "release_deadline"])
    op.create_table(
        "licence_events",
        _col("id", sa.Integer(), autoincrement=True), _col("licence_id", LICENCE_ID), _col("at", UTC),
        _col("actor", sa.String(80)), _col("action", sa.String(32)), _col("from_state", sa.String(16), True),
        _col("to_state", sa.String(16)), _col("from_device_id", DEVICE_ID, True), _col("to_device_id", DEVICE_ID, True),
        _col("epoch", sa.Integer()), _col("detail", sa.String(500), True),
        sa.ForeignKeyConstraint(["licence_id"], ["licences.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_licence_events_licence_id_at", "licence_events", ["licence_id", "at"])
    op.create_index("ix_licence_events_licence_action_at", "licence_events", ["licence_id", "action", "at"])


def downgrade() -> None:
    op.drop_table("licence_events")  # dropping a table drops its indexes
    op.drop_table("licences")
