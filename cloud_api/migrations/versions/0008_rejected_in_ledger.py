"""Rejected messages in the ledger: the seq of a message refused unread counts as delivered.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

`ingested_messages` also records up messages refused before they could be read as a valid
envelope (`schema`, `wrong_device`, ...): of those only the topic's device, the id, and the
seq of a version-1 up envelope are known, so `seq`, `type`, `created_at` and `clock_trusted`
become nullable. The partial index `ix_ingested_messages_rejected` (rejected rows only) serves
a device's rejection count and list. On PostgreSQL this is instant; on SQLite the table is
rebuilt (a copy of the ledger). Downgrading deletes the rows only this revision can hold
(messages refused unread): a redelivery of one is refused again, as before 0008.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ingested_messages"
REJECTED_INDEX = "ix_ingested_messages_rejected"
REJECTED = sa.text("outcome = 'rejected'")
UNREAD_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [("seq", sa.BigInteger()), ("type", sa.String(32)),
                  ("created_at", sa.DateTime(timezone=True)), ("clock_trusted", sa.Boolean())]


def _drop_rejected_index() -> None:
    # Dropped before a SQLite table rebuild, which might not carry the index's WHERE over.
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(TABLE)}
    if REJECTED_INDEX in indexes:
        op.drop_index(REJECTED_INDEX, table_name=TABLE)


def upgrade() -> None:
    _drop_rejected_index()  # present when the table was made from the models (adopted)
    columns = {column["name"]: column for column in sa.inspect(op.get_bind()).get_columns(TABLE)}
    required = [(name, type_) for name, type_ in UNREAD_COLUMNS if not columns[name]["nullable"]]
    if required:
        with op.batch_alter_table(TABLE) as batch:
            for name, type_ in required:
                batch.alter_column(name, existing_type=type_, nullable=True)
    op.create_index(REJECTED_INDEX, TABLE, ["device_id", "received_at"],
                    sqlite_where=REJECTED, postgresql_where=REJECTED)


def downgrade() -> None:
    _drop_rejected_index()
    op.execute(sa.text(f"DELETE FROM {TABLE} WHERE "
                       + " OR ".join(f"{name} IS NULL" for name, _ in UNREAD_COLUMNS)))
    with op.batch_alter_table(TABLE) as batch:
        for name, type_ in UNREAD_COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
