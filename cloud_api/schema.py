"""The cloud database schema, managed by Alembic migrations (`cloud_api/migrations/`).

`upgrade(engine)` brings any database to the newest revision without an alembic.ini: the
migration scripts ship inside the package. Several processes may call it at once: on
PostgreSQL a transaction-scoped advisory lock serialises them (DDL is transactional there, so
the winner's whole upgrade commits before the next one looks); on SQLite an exclusive lock on
a file next to the database does the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, text

from cloud_api.db import Base

# Alembic announces each of its plugins at INFO on every start; only the upgrades matter.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant shared by every kassa-cloud process: "kassa" + "schema" as a 63-bit number.
ADVISORY_LOCK_KEY = 0x6B61737361_0001


def metadata() -> MetaData:
    """The metadata of every table; importing the model modules registers them on `Base`."""
    import cloud_api.accounts.models
    import cloud_api.cashiers.models
    import cloud_api.documents.models
    import cloud_api.ingest.models
    import cloud_api.licences.models
    import cloud_api.mail.models
    import cloud_api.pairing.models
    import cloud_api.pushes.models
    import cloud_api.reports.models
    import cloud_api.tenancy.models  # noqa: F401 - imported for its tables only, like the ones above

    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic `Config` for the packaged migrations (imported here, after the log level
    above is set: Alembic logs its plugins while being imported)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to `revision`; safe when several processes start at once."""
    with _sqlite_file_lock(engine), migration_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        from alembic import command

        command.upgrade(alembic_config(conn), revision)


@contextlib.contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction to migrate in.

    On SQLite the foreign keys are off meanwhile (as SQLite's own recipe for changing a table
    says): batch mode rebuilds a table by copying it and dropping the old one, and with the
    keys on that drop fails as soon as another table refers to a row of it. The keys are
    checked once before the commit instead, and switched on again afterwards.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                yield conn
            return
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")  # only takes effect outside a transaction
        conn.commit()
        try:
            with conn.begin():
                yield conn
                _refuse_broken_references(conn)
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            conn.commit()


def _refuse_broken_references(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({f"{row[0]} -> {row[2]}" for row in broken})
        raise RuntimeError(
            f"the migration left {len(broken)} rows referring to missing rows ({', '.join(tables)}): "
            "fix or delete those rows, then start again"
        )


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(f"{database}.migrate-lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        # The directory is missing or read-only: connecting will fail with the clearer error.
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
