"""Database engine for the cloud service (SQLite by default, PostgreSQL by URL), the declarative
`Base` every table module maps onto, and the column types those modules share.

Portable between SQLite and PostgreSQL: UUIDs use `Uuid` (native on PostgreSQL, 32 hex
characters on SQLite), JSON documents that are queried use JSONB on PostgreSQL, received
sale and refund bodies are kept as text (`ReceivedJson`), every timestamp is UTC. The schema
is built by the Alembic migrations in `cloud_api/migrations` (`schema.upgrade`); every table
module is listed in `schema.metadata`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    ColumnElement,
    CursorResult,
    DateTime,
    Engine,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator


class UnsupportedDatabaseError(RuntimeError):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
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


def rows_matched(session: Session, statement: UpdateBase) -> int:
    """Execute an UPDATE or DELETE (without RETURNING) and return the number of rows it matched.

    `Session.execute` is typed as returning a plain `Result`; for such a statement it is a
    `CursorResult`, the result type that carries `rowcount`."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def table_of(model: type[DeclarativeBase]) -> Table:
    """The Core table a model class maps (its `__table__`, typed for Core statements)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} does not map a plain table")
    return table


def upsert_insert(session: Session, table: Table) -> Any:
    """An INSERT that supports `on_conflict_do_nothing` / `on_conflict_do_update` on the
    session's database (the same API on SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabaseError(f"the cloud service supports SQLite and PostgreSQL, not {dialect}")


# Column types shared by the model modules. Sized by the wire contract: device ids are at most 64
# characters, reasons are dotted names of at most 64, rejection details at most 500.
DEVICE_ID = String(64)
CODE = String(64)  # the contract's codes: cashier ids, point-of-sale ids, SKUs, references
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


class ReceivedJson(TypeDecorator[Any]):
    """A JSON document stored as TEXT on both databases: written as given, read back parsed.

    For the received bodies of sales and refunds, kept for audit. Everything queried about
    them is in columns and child rows, so the database never needs to look inside; JSONB
    made PostgreSQL parse every body on insert (about 60 µs per sale, the largest single
    cost of the ingest). A `str` is taken as JSON text already (the ingest passes the bytes
    it received when it proved them canonical); anything else is serialised.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or type(value) is str:
            return value
        if isinstance(value, str):
            return str.__str__(value)  # a str subclass: plain text for the driver
        try:
            return to_json(value).decode()
        except ValueError:  # e.g. a lone surrogate, which json.dumps escapes
            return json.dumps(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        uuid.UUID: Uuid(),
        datetime: UtcDateTime,
        dict[str, Any]: JsonDocument,
    }
