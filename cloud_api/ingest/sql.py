"""Dialect-specific SQL for the two databases the cloud runs on.

`insert_new` (on `cloud_api.db.upsert_insert`) builds SQLAlchemy Core statements (fine for a few rows).
`insert_rows` and `select_where_in` are for the hot path, hundreds of rows per batch: they
send one statement per table through `Connection.exec_driver_sql` (so errors are still
SQLAlchemy's, and a lost connection is still invalidated) with the values already converted
by each column's own bind processor, skipping SQLAlchemy's per-row parameter handling,
which cost more than the database work.

- SQLite: one multi-row `INSERT ... VALUES (...), (...) [ON CONFLICT DO NOTHING RETURNING]`;
  `IN (?, ?, ...)` for look-ups.
- PostgreSQL: `INSERT ... SELECT * FROM unnest(%s::type[], ...)`, one array per column, so
  the statement text never changes with the number of rows; `= ANY(%s::type[])` for look-ups.
  `copy_rows` (plain inserts of many narrow rows: sales, their lines and payments) uses
  `COPY ... FROM STDIN` in binary format instead, which psycopg encodes in C: the arrays
  above are built element by element in Python (measured: ~3.3 against ~1.4 µs of
  client CPU per 9-column row, and less database time).
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, overload

from pydantic_core import to_json
from sqlalchemy import Column, Table
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cloud_api.db import UnsupportedDatabaseError, upsert_insert
from cloud_api.ingest.up import JsonText


class ConcurrentChangeError(RuntimeError):
    """Another transaction changed a row this batch relied on; the batch is retried whole."""


def insert_new(session: Session, table: Table, rows: Sequence[dict[str, Any]], key: str) -> set[Any]:
    """Insert rows whose `key` is not stored yet; return the keys actually inserted.

    Rows go in key order so that concurrent transactions lock keys in the same order and
    cannot deadlock each other. Executed as one cached statement over many parameter sets,
    which SQLAlchemy sends as multi-row INSERT ... RETURNING ("insertmanyvalues").
    """
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda row: row[key])
    column = table.c[key]
    statement = upsert_insert(session, table).on_conflict_do_nothing(index_elements=[column]).returning(column)
    return set(session.execute(statement, ordered).scalars())


# --------------------------------------------------------------------------- hot path
# SQLite accepts at most 32766 host parameters per statement (since 3.32).
_SQLITE_MAX_PARAMETERS = 32_000


def _to_json_text(value: Any) -> str:
    if type(value) is JsonText:
        return str.__str__(value)
    # The JSON type's own processor uses json.dumps, ~4x slower; the document is the same.
    try:
        return to_json(value).decode()
    except ValueError:  # e.g. a lone surrogate, which json.dumps escapes
        return json.dumps(value)


def _dialect(session: Session) -> Dialect:
    dialect = session.get_bind().dialect
    if dialect.name not in ("sqlite", "postgresql"):
        raise UnsupportedDatabaseError(f"the ingest supports SQLite and PostgreSQL, not {dialect.name}")
    return dialect


# Per dialect (i.e. per engine) and column: the function turning a value into what the
# DBAPI driver is given.
_converters: weakref.WeakKeyDictionary[Dialect, dict[Column, Callable[[Any], Any] | None]] = weakref.WeakKeyDictionary()


def _converter(column: Column, dialect: Dialect) -> Callable[[Any], Any] | None:
    known = _converters.setdefault(dialect, {})
    try:
        return known[column]
    except KeyError:
        pass
    convert: Callable[[Any], Any] | None
    if isinstance(column.type, sqltypes.JSON):
        convert = _to_json_text
    else:
        convert = column.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None and isinstance(column.type, sqltypes.DateTime):
            convert = _remembered(convert)
    known[column] = convert
    return convert


def _remembered(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` with a memory: one timestamp is often written to several tables (SQLite
    formats each in Python)."""
    memory: dict[Any, Any] = {}

    def cached(value: Any) -> Any:
        try:
            return memory[value]
        except KeyError:
            if len(memory) >= 4096:
                memory.clear()
            result = memory[value] = convert(value)
            return result

    return cached


def _result_converter(column: Column, dialect: Dialect) -> Callable[[Any], Any] | None:
    return column.type.dialect_impl(dialect).result_processor(dialect, None)


def _array_type(column: Column, dialect: Dialect) -> str:
    return f"{column.type.compile(dialect=dialect)}[]"


def _convert_columns(columns: Sequence[Column], rows: Sequence[Sequence[Any]], dialect: Dialect) -> list[list[Any]]:
    """Column-wise values, each through its column's bind processor."""
    converted = []
    for index, column in enumerate(columns):
        convert = _converter(column, dialect)
        values = [row[index] for row in rows]
        if convert is not None:
            values = _convert_values(convert, values)
        converted.append(values)
    return converted


def _convert_values(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    # A value repeated as the same object (the batch's receipt time, a device's boot id) is
    # converted once.
    out = []
    last = last_out = None
    for value in values:
        if value is not last:
            last, last_out = value, None if value is None else convert(value)
        out.append(last_out)
    return out


@overload
def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, conflict_key: str
) -> set[Any]: ...


@overload
def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict_key: None = None,
) -> None: ...


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict_key: str | None = None,
) -> set[Any] | None:
    """INSERT rows (tuples in `columns` order) in one statement per table.

    With `conflict_key`: ON CONFLICT (key) DO NOTHING, returning the keys inserted. Without:
    a plain INSERT (an IntegrityError on a duplicate key) returning None. Rows are inserted
    in the given order; callers sort them by key so that concurrent transactions lock keys
    in the same order.
    """
    if not rows:
        return set() if conflict_key is not None else None
    dialect = _dialect(session)
    preparer = dialect.identifier_preparer
    cols = [table.c[name] for name in columns]
    names = ", ".join(preparer.quote(name) for name in columns)
    head = f"INSERT INTO {preparer.format_table(table)} ({names}) "
    tail = ""
    key_column = None
    if conflict_key is not None:
        key_column = table.c[conflict_key]
        key = preparer.quote(conflict_key)
        tail = f" ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
    values = _convert_columns(cols, rows, dialect)
    connection = session.connection()
    results: list[Any] = []
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{_array_type(column, dialect)}" for column in cols)
        statement = f"{head}SELECT * FROM unnest({arrays}){tail}"
        result = connection.exec_driver_sql(statement, tuple(values))
        if key_column is not None:
            results = [row[0] for row in result]
    else:
        per_row = len(cols)
        chunk = max(1, _SQLITE_MAX_PARAMETERS // per_row)
        placeholder = "(" + ", ".join("?" * per_row) + ")"
        flat_rows = list(zip(*values, strict=True))
        for start in range(0, len(flat_rows), chunk):
            part = flat_rows[start : start + chunk]
            statement = f"{head}VALUES {', '.join([placeholder] * len(part))}{tail}"
            params = tuple(chain.from_iterable(part))
            result = connection.exec_driver_sql(statement, params)
            if key_column is not None:
                results.extend(row[0] for row in result)
    if conflict_key is None:
        return None
    # The keys as given: the database's spelling of each (hex text on SQLite) maps back.
    key_index = list(columns).index(conflict_key)
    given = dict(zip(values[key_index], (row[key_index] for row in rows), strict=True))
    return {given[value] for value in results}


def copy_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain INSERT of rows (tuples in `columns` order): COPY on PostgreSQL, `insert_rows`
    on SQLite. A duplicate key raises IntegrityError, as an INSERT would; rows go in the
    given order (see insert_rows)."""
    if not rows:
        return
    dialect = _dialect(session)
    if dialect.name != "postgresql":
        insert_rows(session, table, columns, rows)
        return
    preparer = dialect.identifier_preparer
    cols = [table.c[name] for name in columns]
    statement = (
        f"COPY {preparer.format_table(table)} "
        f"({', '.join(preparer.quote(name) for name in columns)}) FROM STDIN (FORMAT BINARY)"
    )
    if any(_converter(column, dialect) is not None for column in cols):
        rows = list(zip(*_convert_columns(cols, rows, dialect), strict=True))
    connection = session.connection()
    driver_connection = connection.connection.driver_connection
    if driver_connection is None:  # only a connection already closed has none
        raise RuntimeError("COPY needs the DBAPI connection, which is closed")
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_copy_type(column, dialect) for column in cols])
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as exc:
        # What SQLAlchemy would raise for a statement it ran (IntegrityError, OperationalError,
        # ...), with a lost connection invalidated so the pool replaces it.
        lost = dialect.is_disconnect(exc, driver_connection, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc


def _copy_type(column: Column, dialect: Dialect) -> str:
    # The type's SQL name without its length ("VARCHAR(64)" -> "varchar"), as psycopg knows it.
    return re.sub(r"\(.*\)", "", column.type.compile(dialect=dialect)).strip().lower()


def update_rows(
    session: Session,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    keep_when_null: Iterable[str] = (),
) -> None:
    """UPDATE table SET column = value ... WHERE key = row's key, for every row in one go.

    `columns` names the key first, then the columns to set; a column in `keep_when_null`
    keeps its stored value where the row holds None.
    """
    if not rows:
        return
    dialect = _dialect(session)
    preparer = dialect.identifier_preparer
    cols = [table.c[name] for name in columns]
    keep = set(keep_when_null)
    values = _convert_columns(cols, rows, dialect)
    name = preparer.format_table(table)
    quoted_key = preparer.quote(key)
    if columns[0] != key:
        raise ValueError("the key comes first")
    connection = session.connection()
    if dialect.name == "postgresql":

        def value(column: str) -> str:
            new = f"v.{preparer.quote(column)}"
            return f"COALESCE({new}, {name}.{preparer.quote(column)})" if column in keep else new

        sets = ", ".join(f"{preparer.quote(column)} = {value(column)}" for column in columns[1:])
        arrays = ", ".join(f"%b::{_array_type(column, dialect)}" for column in cols)
        aliases = ", ".join(preparer.quote(column) for column in columns)
        connection.exec_driver_sql(
            f"UPDATE {name} SET {sets} FROM unnest({arrays}) AS v({aliases}) "
            f"WHERE {name}.{quoted_key} = v.{quoted_key}",
            tuple(values),
        )
        return

    def assign(column: str) -> str:
        quoted = preparer.quote(column)
        return f"{quoted} = COALESCE(?, {quoted})" if column in keep else f"{quoted} = ?"

    sets = ", ".join(assign(column) for column in columns[1:])
    parameters = [(*row[1:], row[0]) for row in zip(*values, strict=True)]
    connection.exec_driver_sql(f"UPDATE {name} SET {sets} WHERE {quoted_key} = ?", parameters)


def select_where_in(
    session: Session,
    table: Table,
    columns: Sequence[str],
    conditions: Sequence[tuple[str, Iterable[Any]]],
) -> list[tuple[Any, ...]]:
    """SELECT `columns` FROM table WHERE c1 IN (values1) AND c2 IN (values2) ...

    One statement (on SQLite, one per chunk of the first condition's values when there are
    more than a statement may bind), values converted by the columns' bind processors and
    results by their result processors. An empty value list matches nothing.
    """
    dialect = _dialect(session)
    distinct = [(name, list(dict.fromkeys(values))) for name, values in conditions]
    if dialect.name == "sqlite":
        bound = sum(len(values) for _, values in distinct)
        if bound > _SQLITE_MAX_PARAMETERS and len(distinct[0][1]) > 1:
            (name, first), rest = distinct[0], distinct[1:]
            half = len(first) // 2
            return [
                row
                for part in (first[:half], first[half:])
                for row in select_where_in(session, table, columns, [(name, part), *rest])
            ]
    preparer = dialect.identifier_preparer
    clauses = []
    params: list[Any] = []
    for name, values in distinct:
        column = table.c[name]
        if not values:
            return []
        convert = _converter(column, dialect)
        if convert is not None:
            values = _convert_values(convert, values)
        if dialect.name == "postgresql":
            clauses.append(f"{preparer.quote(name)} = ANY(%b::{_array_type(column, dialect)})")
            params.append(values)
        else:
            clauses.append(f"{preparer.quote(name)} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    selected = [table.c[name] for name in columns]
    statement = (
        f"SELECT {', '.join(preparer.quote(name) for name in columns)} "
        f"FROM {preparer.format_table(table)} WHERE {' AND '.join(clauses)}"
    )
    rows = session.connection().exec_driver_sql(statement, tuple(params)).fetchall()
    converters = [_result_converter(column, dialect) for column in selected]
    if not any(converters):
        return [tuple(row) for row in rows]
    return [
        tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(converters, row, strict=True)
        )
        for row in rows
    ]
