"""Driving the cabinets through their real pages: a cloud app on a private database, people
created through the service layer, and a browser-like client that signs in with the real form
(CSRF token and cookies included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloud_api.accounts.models import Person
from cloud_api.accounts.passwords import hash_password
from cloud_api.app import create_app
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Company, Owner, Partner, User
from cloud_api.tenancy.tokens import create_owner
from tests.cloud.api_support import migrated_engine

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A TestClient that keeps cookies and the page's CSRF token, like a browser would."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app, follow_redirects=False)
        self.csrf = ""

    def get(self, url: str, **kwargs: Any) -> Any:
        reply = self.client.get(url, **kwargs)
        found = _CSRF.search(reply.text) if reply.headers.get("content-type", "").startswith("text/html") else None
        if found:
            self.csrf = found.group(1)
        return reply

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        if csrf and not self.csrf:
            self.get("/signin")
        fields = {**(data or {}), **({"csrf_token": self.csrf} if csrf else {})}
        return self.client.post(url, data=fields, **kwargs)

    def follow(self, reply: Any) -> Any:
        """GET the page a 303 points to."""
        assert reply.status_code == 303, (reply.status_code, reply.text[:500])
        return self.get(reply.headers["location"])

    def sign_in(self, email: str, password: str = PASSWORD, *, choose: int | None = None) -> Any:
        self.get("/signin")
        reply = self.post("/signin", {"email": email, "password": password})
        assert reply.status_code == 303, reply.text[:800]
        if choose is not None:
            self.get("/choose")
            reply = self.post("/choose", {"membership": str(choose)})
            assert reply.status_code == 303
        return self.follow(reply)


@dataclass
class Cloud:
    """An app on its own database, with an owner; helpers make people with memberships."""

    app: Any
    engine: Engine
    owner_id: int
    owner_token: str

    def browser(self) -> Browser:
        return Browser(self.app)

    def person(self, email: str, *, verified: bool = True, password: str = PASSWORD) -> int:
        with Session(self.engine) as db:
            person = db.scalar(select(Person).where(Person.email == email))
            if person is None:
                person = Person(
                    email=email,
                    name=email.split("@")[0].title(),
                    password_hash=hash_password(password),
                    email_verified_at=datetime.now(UTC) if verified else None,
                    failed_signins=0,
                    created_at=datetime.now(UTC),
                )
                db.add(person)
                db.commit()
            return person.id

    def member(self, email: str, role: str, *, partner_id: int | None = None, company_id: int | None = None) -> int:
        """A membership (users row) of `email` with `role`; returns the user id."""
        person_id = self.person(email)
        with Session(self.engine) as db:
            user = User(
                name=email,
                role=role,
                owner_id=self.owner_id,
                partner_id=partner_id,
                company_id=company_id,
                person_id=person_id,
                created_at=datetime.now(UTC),
            )
            db.add(user)
            db.commit()
            return user.id

    def partner(self, name: str) -> int:
        with Session(self.engine) as db:
            partner = Partner(owner_id=self.owner_id, name=name, created_at=datetime.now(UTC))
            db.add(partner)
            db.commit()
            return partner.id

    def company(self, name: str) -> int:
        with Session(self.engine) as db:
            company = Company(owner_id=self.owner_id, name=name, created_at=datetime.now(UTC))
            db.add(company)
            db.commit()
            return company.id

    def db(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


def make_cloud(engine: Engine, url: str, **settings: Any) -> Cloud:
    settings.setdefault("public_url", "http://cabinet.test")
    return make_cloud_on(engine, create_app(CloudSettings(database_url=url, **settings), engine))


def make_cloud_on(engine: Engine, app: Any) -> Cloud:
    """A Cloud around an app already made (a live server's), with its owner created."""
    with Session(engine) as db:
        owner, _admin, token = create_owner(db, "Kassa Cloud")
        owner_id = owner.id
    return Cloud(app, engine, owner_id, token)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    """A cloud on SQLite (the cabinets' rules are the same on PostgreSQL; the API tests cover both)."""
    with migrated_engine("sqlite", tmp_path) as engine:
        yield make_cloud(engine, str(engine.url))


def mailed_link(body: str, path: str) -> str:
    """The path of the first link to `path` in a mail body ("/invite/<token>")."""
    found = re.search(rf"https?://[^/\s]+({re.escape(path)}/[A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


def owner_of(cloud: Cloud) -> Owner:
    with cloud.db() as db:
        return db.get_one(Owner, cloud.owner_id)
