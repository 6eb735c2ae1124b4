"""Bring the cloud database schema up to date (the ingest worker and the API call this)."""

from __future__ import annotations

from sqlalchemy import Engine

from cloud_api import schema


def create_schema(engine: Engine) -> None:
    """Run the Alembic migrations to the newest revision.

    Safe to call from several workers starting at once: `schema.upgrade` holds a PostgreSQL
    advisory lock (SQLite: a file lock) around the upgrade, so one process migrates and the
    others find the database already at the newest revision.
    """
    schema.upgrade(engine)
