"""Database engine for the cloud service: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


class UnsupportedDatabaseError(RuntimeError):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def utc(moment: datetime) -> datetime:
    """A stored timestamp with its zone: SQLite gives them back without one; all are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def locked_row(session: Session, model: Any, where: ColumnElement[bool], touch: Any) -> Any:
    """The row of `model` matching `where`, locked until the transaction ends: read a row this
    way before changing it. SQLite ignores FOR UPDATE: there a write (`touch` = column, set to
    itself) first takes its one write lock, so the read sees every change committed before and
    no other change can commit until this transaction ends."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(model).where(where).values({touch: touch}).execution_options(synchronize_session=False))
    return session.scalar(select(model).where(where).with_for_update().execution_options(populate_existing=True))


def upsert_insert(session: Session, table: Table) -> Any:
    """An INSERT that supports `on_conflict_do_nothing` / `on_conflict_do_update` on the
    session's database (the same API on SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabaseError(f"the cloud service supports SQLite and PostgreSQL, not {dialect}")
