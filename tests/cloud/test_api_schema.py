"""Alembic migrations: they build exactly the models' schema, run once however many processes
start together, and adopt a database made before Alembic."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from cloud_api import schema
from cloud_api.db import Base, make_engine
from cloud_api.ingest.models import IngestedMessage
from cloud_api.reports.models import SaleRecord
from tests.cloud.api_support import BACKENDS, private_database


def head() -> str:
    return ScriptDirectory.from_config(schema.alembic_config()).get_current_head()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_the_models(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine)
            schema.upgrade(engine)  # a second run changes nothing
            assert schema.current_revision(engine) == head()
            with engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(context, schema.metadata()) == []
                tables = set(inspect(conn).get_table_names())
            assert set(schema.metadata().tables) | {"alembic_version"} == tables
            assert {"sales", "ingested_messages", "devices", "partner_links", "api_tokens"} <= tables
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_starts_migrate_once(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engines = [make_engine(url) for _ in range(4)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(engines))

        def run(engine) -> None:
            try:
                start.wait()
                schema.upgrade(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        try:
            assert errors == []
            assert schema.current_revision(engines[0]) == head()
        finally:
            for engine in engines:
                engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_adopts_a_database_made_before_alembic(backend: str, tmp_path: Path) -> None:
    legacy = [IngestedMessage.__table__, SaleRecord.__table__]
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            Base.metadata.create_all(engine, tables=legacy)  # what the old create_schema made
            schema.upgrade(engine)
            assert schema.current_revision(engine) == head()
            with engine.connect() as conn:
                assert (
                    compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata())
                    == []
                )
        finally:
            engine.dispose()


def test_downgrade_removes_every_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    try:
        schema.upgrade(engine)
        from alembic import command

        with engine.begin() as conn:
            command.downgrade(schema.alembic_config(conn), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
