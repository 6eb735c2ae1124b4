"""Initial schema: the ingest tables and the tenancy tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Databases made before Alembic (by `Base.metadata.create_all`) already hold the ingest tables:
a table that exists is kept as it is (with its indexes), so such a database is adopted by
this revision instead of failing on "table already exists".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(64)
NAME = sa.String(200)


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def _table(existing: set[str], name: str, *items: sa.schema.SchemaItem, indexes: Sequence[tuple[str, list[str], bool]] = ()) -> None:
    if name in existing:
        return
    op.create_table(name, *items)
    for index_name, columns, unique in indexes:
        op.create_index(index_name, name, columns, unique=unique)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    t = functools.partial(_table, existing)

    # ---------------------------------------------------------------- ingest
    t("command_replies",
      _col("correlation_id", sa.Uuid()), _col("device_id", DEVICE_ID), _col("ok", sa.Boolean()),
      _col("reply", JSON_DOC), _col("message_id", sa.Uuid()), _col("received_at", UTC),
      sa.PrimaryKeyConstraint("correlation_id"))
    t("device_events",
      _col("message_id", sa.Uuid()), _col("device_id", DEVICE_ID), _col("kind", sa.String(64)),
      _col("cashier_id", sa.String(64), True), _col("details", JSON_DOC), _col("occurred_at", UTC),
      sa.PrimaryKeyConstraint("message_id"),
      indexes=[("ix_device_events_device_id", ["device_id"], False)])
    t("device_presence",
      _col("device_id", DEVICE_ID), _col("state", sa.String(16)), _col("boot_id", sa.Uuid(), True),
      _col("status_message_id", sa.Uuid()), _col("status_at", UTC), _col("last_seen_at", UTC),
      sa.PrimaryKeyConstraint("device_id"))
    t("device_reports",
      _col("device_id", DEVICE_ID), _col("kind", sa.String(32)), _col("seq", sa.BigInteger()),
      _col("report", JSON_DOC), _col("message_id", sa.Uuid()), _col("reported_at", UTC),
      sa.PrimaryKeyConstraint("device_id", "kind"))
    t("device_streams",
      _col("device_id", DEVICE_ID), _col("high_water", sa.BigInteger()),
      _col("max_seq", sa.BigInteger()), _col("last_seen_at", UTC, True),
      _col("last_boot_id", sa.Uuid(), True), sa.PrimaryKeyConstraint("device_id"))
    t("ingested_messages",
      _col("message_id", sa.Uuid()), _col("device_id", DEVICE_ID), _col("seq", sa.BigInteger()),
      _col("type", sa.String(32)), _col("boot_id", sa.Uuid(), True), _col("created_at", UTC),
      _col("clock_trusted", sa.Boolean()), _col("received_at", UTC), _col("outcome", sa.String(16)),
      _col("reject_reason", sa.String(64), True), _col("reject_detail", sa.String(500), True),
      sa.PrimaryKeyConstraint("message_id"),
      indexes=[("ix_ingested_messages_device_seq", ["device_id", "seq"], False)])
    t("refunds",
      _col("refund_id", sa.Uuid()), _col("device_id", DEVICE_ID), _col("original_sale_id", sa.Uuid()),
      _col("original_device_id", DEVICE_ID), _col("currency", sa.String(3)),
      _col("amount_minor", sa.BigInteger()), _col("refunded_at", UTC), _col("payload", JSON_DOC),
      _col("message_id", sa.Uuid()), sa.PrimaryKeyConstraint("refund_id"),
      indexes=[("ix_refunds_original_sale_id", ["original_sale_id"], False)])
    t("sales",
      _col("sale_id", sa.Uuid()), _col("device_id", DEVICE_ID), _col("receipt_number", sa.BigInteger()),
      _col("currency", sa.String(3)), _col("total_minor", sa.BigInteger()), _col("sold_at", UTC),
      _col("payload", JSON_DOC), _col("message_id", sa.Uuid()), sa.PrimaryKeyConstraint("sale_id"),
      indexes=[("ix_sales_device_receipt", ["device_id", "receipt_number"], False)])
    t("sequence_gaps",
      _col("id", sa.Integer(), autoincrement=True), _col("device_id", DEVICE_ID),
      _col("first_missing", sa.BigInteger()), _col("last_missing", sa.BigInteger()),
      _col("detected_at", UTC), _col("closed_at", UTC, True), sa.PrimaryKeyConstraint("id"),
      indexes=[("ix_sequence_gaps_device_open", ["device_id", "closed_at"], False)])

    # ---------------------------------------------------------------- tenancy
    t("owners",
      _col("id", sa.Integer(), autoincrement=True), _col("name", NAME), _col("created_at", UTC),
      sa.PrimaryKeyConstraint("id"))
    for name in ("companies", "partners"):
        t(name,
          _col("id", sa.Integer(), autoincrement=True), _col("owner_id", sa.Integer()),
          _col("name", NAME), _col("created_at", UTC),
          sa.ForeignKeyConstraint(["owner_id"], ["owners.id"]), sa.PrimaryKeyConstraint("id"),
          indexes=[(f"ix_{name}_owner_id", ["owner_id"], False)])
    t("points_of_sale",
      _col("id", sa.Integer(), autoincrement=True), _col("company_id", sa.Integer()),
      _col("name", NAME), _col("code", sa.String(64)), _col("created_at", UTC),
      sa.ForeignKeyConstraint(["company_id"], ["companies.id"]), sa.PrimaryKeyConstraint("id"),
      sa.UniqueConstraint("company_id", "code", name="uq_points_of_sale_company_code"),
      indexes=[("ix_points_of_sale_company_id", ["company_id"], False)])
    t("users",
      _col("id", sa.Integer(), autoincrement=True), _col("name", NAME), _col("role", sa.String(32)),
      _col("owner_id", sa.Integer()), _col("partner_id", sa.Integer(), True),
      _col("company_id", sa.Integer(), True), _col("created_at", UTC),
      sa.CheckConstraint(
          "(role = 'owner_admin' AND partner_id IS NULL AND company_id IS NULL)"
          " OR (role = 'partner_admin' AND partner_id IS NOT NULL AND company_id IS NULL)"
          " OR (role IN ('company_admin', 'company_viewer')"
          " AND partner_id IS NULL AND company_id IS NOT NULL)",
          name="ck_users_role_level"),
      sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
      sa.ForeignKeyConstraint(["owner_id"], ["owners.id"]),
      sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
      sa.PrimaryKeyConstraint("id"),
      indexes=[("ix_users_company_id", ["company_id"], False),
               ("ix_users_owner_id", ["owner_id"], False),
               ("ix_users_partner_id", ["partner_id"], False)])
    t("api_tokens",
      _col("id", sa.Integer(), autoincrement=True), _col("user_id", sa.Integer()),
      _col("token_hash", sa.String(64)), _col("prefix", sa.String(16)),
      _col("label", NAME, True), _col("created_at", UTC), _col("last_used_at", UTC, True),
      _col("revoked_at", UTC, True),
      sa.ForeignKeyConstraint(["user_id"], ["users.id"]), sa.PrimaryKeyConstraint("id"),
      sa.UniqueConstraint("token_hash"),
      indexes=[("ix_api_tokens_user_id", ["user_id"], False)])
    t("devices",
      _col("device_id", DEVICE_ID), _col("company_id", sa.Integer()),
      _col("point_of_sale_id", sa.Integer(), True), _col("public_key", sa.Text(), True),
      _col("pairing_code", sa.String(64), True), _col("created_at", UTC),
      sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
      sa.ForeignKeyConstraint(["point_of_sale_id"], ["points_of_sale.id"]),
      sa.PrimaryKeyConstraint("device_id"), sa.UniqueConstraint("pairing_code"),
      indexes=[("ix_devices_company_id", ["company_id"], False),
               ("ix_devices_point_of_sale_id", ["point_of_sale_id"], False)])
    t("partner_links",
      _col("id", sa.Integer(), autoincrement=True), _col("company_id", sa.Integer()),
      _col("partner_id", sa.Integer()), _col("state", sa.String(16)),
      _col("open_company_id", sa.Integer(), True), _col("message", sa.String(500), True),
      _col("requested_by", sa.Integer()), _col("requested_at", UTC),
      _col("decided_at", UTC, True), _col("closed_at", UTC, True),
      _col("closed_by", sa.Integer(), True),
      sa.ForeignKeyConstraint(["closed_by"], ["users.id"]),
      sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
      sa.ForeignKeyConstraint(["open_company_id"], ["companies.id"]),
      sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
      sa.ForeignKeyConstraint(["requested_by"], ["users.id"]),
      sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("open_company_id"),
      indexes=[("ix_partner_links_company_id", ["company_id"], False),
               ("ix_partner_links_partner_id", ["partner_id"], False)])


TABLES_NEWEST_FIRST = [
    "partner_links", "devices", "api_tokens", "users", "points_of_sale", "partners", "companies",
    "owners", "sequence_gaps", "sales", "refunds", "ingested_messages", "device_streams",
    "device_reports", "device_presence", "device_events", "command_replies",
]


def downgrade() -> None:
    for name in TABLES_NEWEST_FIRST:
        op.drop_table(name)  # dropping a table drops its indexes
