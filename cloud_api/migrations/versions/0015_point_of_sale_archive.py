"""Archived points of sale.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08

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
    # A plain ADD COLUMN (SQLite has one): no table rebuild, so the rows pointing at points of
    # sale (devices, cashier details, sales) are never in the way.
    op.add_column("points_of_sale", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a rebuild: a rebuild drops the table that
    # devices and cashier details point at, which SQLite refuses while foreign keys are on.
    op.drop_column("points_of_sale", "archived_at")
