"""Dialect-specific INSERT ... ON CONFLICT for the two databases the cloud runs on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


class UnsupportedDatabaseError(RuntimeError):
    pass


class ConcurrentChangeError(RuntimeError):
    """Another transaction changed a row this batch relied on; the batch is retried whole."""


def upsert_insert(session: Session, table: Table) -> Any:
    """An INSERT that supports `on_conflict_do_nothing` / `on_conflict_do_update`."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabaseError(f"the ingest supports SQLite and PostgreSQL, not {dialect}")


def insert_new(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> set[Any]:
    """Insert rows whose `key` is not stored yet; return the keys actually inserted.

    Rows go in key order so that concurrent transactions lock keys in the same order and
    cannot deadlock each other. Executed as one cached statement over many parameter sets,
    which SQLAlchemy sends as multi-row INSERT ... RETURNING ("insertmanyvalues").
    """
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda row: row[key])
    column = table.c[key]
    statement = (
        upsert_insert(session, table).on_conflict_do_nothing(index_elements=[column])
        .returning(column)
    )
    return set(session.execute(statement, ordered).scalars())
