"""Archived points of sale.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10

`points_of_sale.archived_at`: set when a company archives a point of sale it no longer uses
(cloud_api/tenancy/points_of_sale.py); NULL while it is in use. Rows are never deleted: sales
and cashier details keep pointing at them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("points_of_sale") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("points_of_sale") as batch:
        batch.drop_column("archived_at")
