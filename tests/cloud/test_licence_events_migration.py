"""Migration 0011 on licence events written before it: each gets the company holding the licence,
so the company's users go on seeing their licences' trails (and nothing of another company's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from cloud_api import schema
from cloud_api.db import make_engine
from tests.cloud.api_support import BACKENDS, private_database

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
UTC = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def table(name: str, *columns: str, dates: tuple[str, ...] = (), json: tuple[str, ...] = ()) -> sa.TableClause:
    return sa.table(
        name,
        *(sa.column(c) for c in columns),
        *(sa.column(c, UTC) for c in dates),
        *(sa.column(c, JSON_DOC) for c in json),
    )


OWNERS = table("owners", "id", "name", dates=("created_at",))
COMPANIES = table("companies", "id", "owner_id", "name", dates=("created_at",))
PARTNERS = table("partners", "id", "owner_id", "name", dates=("created_at",))
LICENCES = table(
    "licences",
    "id",
    "owner_id",
    "partner_id",
    "company_id",
    "state",
    "licence_key",
    "key_lookup",
    "epoch",
    dates=("valid_until", "created_at", "updated_at"),
    json=("entitlements",),
)
EVENTS = table(
    "licence_events", "id", "licence_id", "actor", "action", "from_state", "to_state", "epoch", dates=("at",)
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_get_the_company_holding_the_licence(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine, "0010")
            with engine.begin() as conn:
                conn.execute(OWNERS.insert().values(id=1, name="Owner", created_at=AT))
                conn.execute(PARTNERS.insert().values(id=1, owner_id=1, name="Partner", created_at=AT))
                conn.execute(COMPANIES.insert().values(id=7, owner_id=1, name="Shop", created_at=AT))
                conn.execute(
                    LICENCES.insert(),
                    [
                        {
                            "id": lid,
                            "owner_id": 1,
                            "partner_id": 1,
                            "company_id": company,
                            "state": state,
                            "licence_key": lid,
                            "key_lookup": lid,
                            "epoch": 0,
                            "valid_until": AT + timedelta(days=365),
                            "created_at": AT,
                            "updated_at": AT,
                            "entitlements": {},
                        }
                        for lid, company, state in (("lic-shop", 7, "assigned"), ("lic-stock", None, "sealed"))
                    ],
                )
                conn.execute(
                    EVENTS.insert(),
                    [
                        {
                            "id": n,
                            "licence_id": lid,
                            "actor": "system",
                            "action": action,
                            "from_state": None,
                            "to_state": "x",
                            "epoch": 0,
                            "at": AT + timedelta(minutes=n),
                        }
                        for n, (lid, action) in enumerate(
                            [("lic-shop", "issued"), ("lic-shop", "assigned"), ("lic-stock", "issued")]
                        )
                    ],
                )
            schema.upgrade(engine)
            with engine.connect() as conn:
                rows = sorted(conn.execute(sa.text("SELECT licence_id, action, company_id FROM licence_events")).all())
            assert rows == [("lic-shop", "assigned", 7), ("lic-shop", "issued", 7), ("lic-stock", "issued", None)]
        finally:
            engine.dispose()
