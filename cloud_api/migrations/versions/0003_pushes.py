"""Desired-state documents and commands pushed to devices, with their replies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Three tables of cloud_api/pushes/models.py: `desired_state` (the document and version per
device and domain, and what was published), `device_commands` (commands and their resend
schedule; replies stay in `command_replies`), `publisher_leases` (one publisher at a time).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "desired_state",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("doc", JSON_DOC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("published_version", sa.BigInteger(), nullable=False),
        sa.Column("published_at", UTC, nullable=True),
        sa.Column("publish_pending", sa.Boolean(), nullable=False),
        sa.CheckConstraint("version >= 1 AND published_version >= 0 AND published_version <= version",
                           name="ck_desired_state_versions"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("device_id", "domain"),
    )
    op.create_index("ix_desired_state_publish_pending", "desired_state", ["publish_pending"])
    op.create_table(
        "device_commands",
        sa.Column("command_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("args", JSON_DOC, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", UTC, nullable=True),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("closed_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.PrimaryKeyConstraint("command_id"),
    )
    op.create_index("ix_device_commands_device_created", "device_commands", ["device_id", "created_at"])
    op.create_index("ix_device_commands_open_due", "device_commands", ["open", "next_attempt_at"])
    op.create_table(
        "publisher_leases",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("acquired_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("publisher_leases")
    op.drop_table("device_commands")  # dropping a table drops its indexes
    op.drop_table("desired_state")
