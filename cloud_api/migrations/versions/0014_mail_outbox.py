"""The mail outbox.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08

New table `mail_outbox` (cloud_api/mail): every mail the cloud sends, queued in the transaction
that made it and delivered by the sender of `kassa-cloud serve`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("claimed_at", UTC, nullable=True),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed')", name="ck_mail_outbox_state"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_mail_outbox_state_next_attempt", "mail_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_state_next_attempt", table_name="mail_outbox")
    op.drop_table("mail_outbox")
