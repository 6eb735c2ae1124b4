"""Shared by the tests/cloud/test_api_*.py modules: a private database per backend (a SQLite
file, or a fresh PostgreSQL schema dropped afterwards), an API client, and helpers that
build tenants through the API."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.schema import upgrade as upgrade_schema
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Device
from cloud_api.tenancy.tokens import create_owner
from tests.support.databases import postgres_url

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def private_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of `backend`, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'cloud-{uuid.uuid4().hex[:8]}.db'}"
        return
    base = postgres_url()
    schema = f"kassa_api_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def migrated_engine(backend: str, directory: Path) -> Iterator[Engine]:
    with private_database(backend, directory) as url:
        engine = make_engine(url)
        upgrade_schema(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(reply: Any) -> str:
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


@dataclass
class Api:
    """A test client plus the bootstrap owner's token; helpers return created ids/tokens."""

    client: TestClient
    engine: Engine
    owner_token: str

    def call(self, method: str, path: str, token: str, expect: int | None = None, **kw: Any) -> Any:
        reply = self.client.request(method, path, headers=auth(token), **kw)
        if expect is not None:
            assert reply.status_code == expect, (method, path, reply.status_code, reply.text)
        return reply

    def partner(self, name: str = "Partner") -> tuple[int, str]:
        """A partner and a partner_admin token."""
        pid = self.call("POST", "/partners", self.owner_token, 201, json={"name": name}).json()["id"]
        token = self.user("partner_admin", partner_id=pid)
        return pid, token

    def company(self, name: str = "Company") -> tuple[int, str]:
        """A company and a company_admin token."""
        cid = self.call("POST", "/companies", self.owner_token, 201, json={"name": name}).json()["id"]
        return cid, self.user("company_admin", company_id=cid)

    def user(self, role: str, token: str | None = None, **tenant: int) -> str:
        body = {"name": f"{role} user", "role": role, **tenant}
        return self.call("POST", "/users", token or self.owner_token, 201, json=body).json()["token"]

    def link(self, company_token: str, company_id: int, partner_token: str, partner_id: int) -> int:
        """An active link: the company asks, the partner accepts."""
        link = self.call(
            "POST", f"/companies/{company_id}/link-requests", company_token, 201, json={"partner_id": partner_id}
        ).json()
        self.call("POST", f"/links/{link['id']}/accept", partner_token, 200)
        return link["id"]


def add_device(
    api: Api, device_id: str, company_id: int, pos_id: int | None = None, public_key: str | None = None
) -> None:
    """Pairing is not built yet: devices are put in the table directly."""
    with Session(api.engine) as session:
        session.add(
            Device(
                device_id=device_id,
                company_id=company_id,
                point_of_sale_id=pos_id,
                public_key=public_key,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()


@contextlib.contextmanager
def api_for(backend: str, directory: Path) -> Iterator[Api]:
    with migrated_engine(backend, directory) as engine:
        with Session(engine, expire_on_commit=False) as session:
            _owner, _admin, token = create_owner(session, "Owner")
        app = create_app(CloudSettings(database_url=str(engine.url)), engine)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, engine, token)


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One migrated database per test module and backend; tests make their own tenants in it."""
    with api_for(request.param, tmp_path_factory.mktemp("api")) as value:
        yield value
