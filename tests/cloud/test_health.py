from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.settings import CloudSettings
from tests.support.databases import postgres_url


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_healthz_reports_database(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}" if backend == "sqlite" else postgres_url()
    engine = make_engine(url)
    client = TestClient(create_app(CloudSettings(database_url=url), engine))
    reply = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "database": backend}


def test_healthz_unhealthy_when_database_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'cloud.db'}"
    client = TestClient(create_app(CloudSettings(database_url=url), make_engine(url)))
    reply = client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json()["status"] == "unhealthy"
