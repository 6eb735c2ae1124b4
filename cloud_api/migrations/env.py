"""Alembic environment of the cloud service.

Normally run through `cloud_api.schema.upgrade(engine)`, which passes an open connection in
`config.attributes["connection"]`. Run by hand (`alembic -c cloud_api/alembic.ini ...`) it
connects to `KASSA_CLOUD_DATABASE_URL`, else the `sqlalchemy.url` of the ini file.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from cloud_api.db import make_engine
from cloud_api.schema import metadata, migration_transaction

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata(),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        url = os.environ.get("KASSA_CLOUD_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
        context.configure(url=url, target_metadata=metadata(), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = os.environ.get("KASSA_CLOUD_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: set KASSA_CLOUD_DATABASE_URL or sqlalchemy.url in the ini file")
    engine = make_engine(url)
    try:
        with migration_transaction(engine) as conn:
            run(conn)
    finally:
        engine.dispose()


main()
