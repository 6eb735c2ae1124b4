"""Migration 0012: the users' role check accepts the nine `<level>_<grade>` roles, keeps every
user made before it (with the tokens and links that refer to them), and still ties each level
to its tenant columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from cloud_api import schema
from cloud_api.db import make_engine
from tests.cloud.api_support import BACKENDS, private_database

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STAMP = sa.DateTime(timezone=True)
OWNERS = sa.table("owners", sa.column("id"), sa.column("name"), sa.column("created_at", STAMP))
PARTNERS = sa.table(
    "partners", sa.column("id"), sa.column("owner_id"), sa.column("name"), sa.column("created_at", STAMP)
)
COMPANIES = sa.table(
    "companies", sa.column("id"), sa.column("owner_id"), sa.column("name"), sa.column("created_at", STAMP)
)
USERS = sa.table(
    "users",
    *(sa.column(c) for c in ("id", "name", "role", "owner_id", "partner_id", "company_id")),
    sa.column("created_at", STAMP),
)
TOKENS = sa.table(
    "api_tokens", *(sa.column(c) for c in ("id", "user_id", "token_hash", "prefix")), sa.column("created_at", STAMP)
)
LINKS = sa.table(
    "partner_links",
    *(sa.column(c) for c in ("id", "company_id", "partner_id", "state", "open_company_id", "requested_by")),
    sa.column("requested_at", STAMP),
)
PARTNER, COMPANY = 3, 5
# (id, role, partner_id, company_id): one user of each role there was before 0012
OLD_USERS = [
    (1, "owner_admin", None, None),
    (2, "partner_admin", PARTNER, None),
    (3, "company_admin", None, COMPANY),
    (4, "company_viewer", None, COMPANY),
]

EVERY_ROLE = [
    (f"{level}_{grade}", tenant)
    for level, tenant in (("owner", {}), ("partner", {"partner_id": PARTNER}), ("company", {"company_id": COMPANY}))
    for grade in ("admin", "manager", "viewer")
]


def user(user_id: int, role: str, partner_id: int | None = None, company_id: int | None = None) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": f"{role} {user_id}",
        "role": role,
        "owner_id": 1,
        "partner_id": partner_id,
        "company_id": company_id,
        "created_at": AT,
    }


def tenants_at_0011(engine: sa.Engine) -> None:
    """The tenants, users, tokens and a link of a database made before 0012."""
    schema.upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(OWNERS.insert().values(id=1, name="Owner", created_at=AT))
        conn.execute(PARTNERS.insert().values(id=PARTNER, owner_id=1, name="Partner", created_at=AT))
        conn.execute(COMPANIES.insert().values(id=COMPANY, owner_id=1, name="Shop", created_at=AT))
        conn.execute(USERS.insert(), [user(*row) for row in OLD_USERS])
        conn.execute(
            TOKENS.insert(),
            [
                {"id": uid, "user_id": uid, "token_hash": f"h{uid}", "prefix": "kst_", "created_at": AT}
                for uid, *_ in OLD_USERS
            ],
        )
        conn.execute(
            LINKS.insert().values(
                id=1,
                company_id=COMPANY,
                partner_id=PARTNER,
                state="pending",
                open_company_id=COMPANY,
                requested_by=3,
                requested_at=AT,
            )
        )


def rows(engine: sa.Engine, table: sa.TableClause) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(sa.select(*table.c).order_by(table.c.id)))


def insert_user(engine: sa.Engine, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(USERS.insert().values(values))


@pytest.mark.parametrize("backend", BACKENDS)
def test_old_users_stay_and_every_grade_is_accepted(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            tenants_at_0011(engine)
            before = {table.name: rows(engine, table) for table in (USERS, TOKENS, LINKS)}
            schema.upgrade(engine, "0012")
            assert schema.current_revision(engine) == "0012"
            assert {table.name: rows(engine, table) for table in (USERS, TOKENS, LINKS)} == before

            for user_id, (role, tenant) in enumerate(EVERY_ROLE, start=10):
                insert_user(engine, user(user_id, role, **tenant))
            for refused in (
                user(90, "partner_viewer", PARTNER, COMPANY),  # a partner role with a company
                user(91, "partner_manager"),  # a partner role without its partner
                user(92, "owner_viewer", company_id=COMPANY),
                user(93, "company_manager", partner_id=PARTNER),
                user(94, "company_owner", company_id=COMPANY),  # no such role
            ):
                with pytest.raises(sa.exc.IntegrityError):
                    insert_user(engine, refused)
            # the rebuilt table is still the one the tokens refer to
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(TOKENS.insert().values(id=99, user_id=999, token_hash="h99", prefix="kst_", created_at=AT))
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_waits_until_no_user_holds_a_new_role(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            tenants_at_0011(engine)
            schema.upgrade(engine, "0012")
            insert_user(engine, user(20, "partner_viewer", PARTNER))

            refused = pytest.raises(RuntimeError, match=r"user 20 \(partner_viewer\)")
            with refused, schema.migration_transaction(engine) as conn:
                command.downgrade(schema.alembic_config(conn), "0011")
            assert schema.current_revision(engine) == "0012"

            with engine.begin() as conn:
                conn.execute(USERS.delete().where(USERS.c.id == 20))
            with schema.migration_transaction(engine) as conn:
                command.downgrade(schema.alembic_config(conn), "0011")
            assert schema.current_revision(engine) == "0011"
            assert [row[:3] for row in rows(engine, USERS)] == [
                (uid, f"{role} {uid}", role) for uid, role, *_ in OLD_USERS
            ]
            with pytest.raises(sa.exc.IntegrityError):
                insert_user(engine, user(21, "partner_viewer", PARTNER))
        finally:
            engine.dispose()


def test_a_migration_leaving_broken_references_is_refused(tmp_path: Path) -> None:
    """SQLite migrates with its foreign keys off (so tables others refer to can be rebuilt);
    the references are checked before the commit instead."""
    engine = make_engine(f"sqlite:///{tmp_path / 'refs.db'}")
    try:
        schema.upgrade(engine, "0012")
        refused = pytest.raises(RuntimeError, match=r"1 rows referring to missing rows \(api_tokens -> users\)")
        with refused, schema.migration_transaction(engine) as conn:
            conn.execute(TOKENS.insert().values(id=1, user_id=7, token_hash="h", prefix="kst_", created_at=AT))
        assert rows(engine, TOKENS) == []
        with engine.connect() as conn:  # the keys are on again for the next user of the connection
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
