"""INSERT ... ON CONFLICT for the two databases the cloud runs on (same API on both)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


class UnsupportedDatabaseError(RuntimeError):
    pass


def insert_on_conflict(session: Session, table: Table) -> Any:
    """An INSERT with `on_conflict_do_nothing` / `on_conflict_do_update` for the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabaseError(f"pushes support SQLite and PostgreSQL, not {dialect}")
