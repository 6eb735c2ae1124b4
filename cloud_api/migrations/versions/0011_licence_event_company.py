"""Licence events record the company that held the licence after each transition.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

`licence_events.company_id`: a company's users see only the part of a licence's trail that
happened while their company held it (no other company's devices). Rows written before this
revision get the company that holds the licence now: until this release a licence could only
change company through the defect this release fixes, so that is right for every licence that
did not meet it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("licence_events") as batch:
        batch.add_column(sa.Column("company_id", sa.Integer(), nullable=True))
    events = sa.table("licence_events", sa.column("licence_id"), sa.column("company_id"))
    licences = sa.table("licences", sa.column("id"), sa.column("company_id"))
    op.execute(events.update().values(company_id=sa.select(licences.c.company_id)
                                      .where(licences.c.id == events.c.licence_id).scalar_subquery()))


def downgrade() -> None:
    with op.batch_alter_table("licence_events") as batch:
        batch.drop_column("company_id")
