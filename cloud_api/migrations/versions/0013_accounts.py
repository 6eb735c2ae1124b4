"""People with e-mail and password, web sessions, mailed links, the audit, licence documents.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08

Existing users (machine users behind API tokens) keep working: `users.person_id` is NULL for
them. Nothing is backfilled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("email_verified_at", TS, nullable=True),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_people_email"),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_users_person_id_people", "people", ["person_id"], ["id"])
        batch.create_index("ix_users_person_id", ["person_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("people.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
    )
    op.create_index("ix_web_sessions_person_id", "web_sessions", ["person_id"])
    op.create_table(
        "action_links",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("people.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_action_links_token_hash"),
    )
    op.create_index("ix_action_links_person_id", "action_links", ["person_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("org_level", sa.String(8), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(120), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_events_org_at", "audit_events", ["org_level", "org_id", "at"])
    op.create_table(
        "licence_documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("owners.id"), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("companies.id"), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("valid_until", TS, nullable=True),
        sa.Column("firm_name", sa.String(200), nullable=True),
        sa.Column("tax_number", sa.String(20), nullable=True),
        sa.Column("buyer_email", sa.String(254), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_by_user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("number", name="uq_licence_documents_number"),
        sa.UniqueConstraint("created_by_user_id", "request_id", name="uq_licence_documents_request"),
    )
    op.create_index("ix_licence_documents_partner_created", "licence_documents", ["partner_id", "created_at"])
    op.create_index("ix_licence_documents_owner_created", "licence_documents", ["owner_id", "created_at"])
    op.create_index("ix_licence_documents_partner_id_id", "licence_documents", ["partner_id", "id"])
    op.create_table(
        "licence_document_lines",
        sa.Column("document_id", sa.Integer(), sa.ForeignKey("licence_documents.id"), primary_key=True),
        sa.Column("licence_id", sa.String(40), sa.ForeignKey("licences.id"), primary_key=True),
    )
    op.create_index("ix_licence_document_lines_licence_id", "licence_document_lines", ["licence_id"])
    # The partner cabinet's licence list, by id, paged.
    op.create_index("ix_licences_partner_id_id", "licences", ["partner_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_licences_partner_id_id", "licences")
    op.drop_table("licence_document_lines")
    op.drop_table("licence_documents")
    op.drop_table("audit_events")
    op.drop_table("action_links")
    op.drop_table("web_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_person_id")
        batch.drop_constraint("fk_users_person_id_people", type_="foreignkey")
        batch.drop_column("person_id")
    op.drop_table("people")
