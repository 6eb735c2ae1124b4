"""Migration 0009 on cashier data written before it, when every operator code was used once
in a company: every registry row keeps its owner and first use, details sets keep their
codes, and the new rules apply to the old codes at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from cloud_api import schema
from cloud_api.api.errors import ApiError
from cloud_api.cashiers import service
from cloud_api.db import make_engine
from tests.cloud.api_support import BACKENDS, private_database

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
UTC = sa.DateTime(timezone=True)
# The tables as revision 0008 has them.
OWNERS = sa.table("owners", sa.column("id"), sa.column("name"), sa.column("created_at", UTC))
COMPANIES = sa.table(
    "companies", sa.column("id"), sa.column("owner_id"), sa.column("name"), sa.column("created_at", UTC)
)
POINTS_OF_SALE = sa.table(
    "points_of_sale",
    sa.column("id"),
    sa.column("company_id"),
    sa.column("name"),
    sa.column("code"),
    sa.column("created_at", UTC),
)
CASHIERS = sa.table(
    "cashiers",
    *(
        sa.column(name)
        for name in ("id", "company_id", "code", "name", "operator_code", "pin_hash", "enabled", "all_devices")
    ),
    sa.column("roles", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    *(sa.column(name, UTC) for name in ("pin_set_at", "deleted_at", "created_at", "updated_at")),
)
DETAILS = sa.table(
    "cashier_details",
    sa.column("cashier_id"),
    sa.column("point_of_sale_id"),
    sa.column("terminal_id"),
    sa.column("operator_code"),
)
CODES = sa.table(
    "operator_codes",
    sa.column("company_id"),
    sa.column("code"),
    sa.column("cashier_id"),
    sa.column("point_of_sale_id"),
    sa.column("taken_at", UTC),
)
MAIN, AIRPORT = 1, 2
ANNA, GONE, BEN = 1, 2, 3


def _cashier(id_: int, code: str, operator_code: str, deleted: bool = False) -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": 1,
        "code": code,
        "name": code.title(),
        "operator_code": operator_code,
        "pin_hash": None,
        "pin_set_at": None,
        "roles": ["cashier"],
        "enabled": True,
        "all_devices": False,
        "deleted_at": AT if deleted else None,
        "created_at": AT,
        "updated_at": AT,
    }


def _old_company(conn: sa.Connection) -> None:
    """Anna uses 1000 (own, was 0999), 1001 and 1002 (details; 1003 was replaced); GONE is deleted."""
    conn.execute(OWNERS.insert().values(id=1, name="Owner", created_at=AT))
    conn.execute(COMPANIES.insert().values(id=1, owner_id=1, name="Old Co", created_at=AT))
    conn.execute(
        POINTS_OF_SALE.insert(),
        [
            {"id": MAIN, "company_id": 1, "name": "Main", "code": "MAIN", "created_at": AT},
            {"id": AIRPORT, "company_id": 1, "name": "Airport", "code": "AIRPORT", "created_at": AT},
        ],
    )
    conn.execute(CASHIERS.insert(), [_cashier(ANNA, "ANNA", "1000"), _cashier(GONE, "GONE", "2000", deleted=True)])
    conn.execute(
        DETAILS.insert(),
        [
            {"cashier_id": ANNA, "point_of_sale_id": MAIN, "terminal_id": "T-1", "operator_code": "1001"},
            {"cashier_id": ANNA, "point_of_sale_id": AIRPORT, "terminal_id": "SU-7", "operator_code": "1002"},
            {"cashier_id": GONE, "point_of_sale_id": MAIN, "terminal_id": "T-2", "operator_code": "2001"},
        ],
    )
    conn.execute(
        CODES.insert(),
        [
            {
                "company_id": 1,
                "code": code,
                "cashier_id": owner,
                "point_of_sale_id": pos,
                "taken_at": AT + timedelta(minutes=n),
            }
            for n, (code, owner, pos) in enumerate(
                [
                    ("0999", ANNA, None),
                    ("1000", ANNA, None),
                    ("1003", ANNA, MAIN),
                    ("1001", ANNA, MAIN),
                    ("1002", ANNA, AIRPORT),
                    ("2000", GONE, None),
                    ("2001", GONE, MAIN),
                ]
            )
        ],
    )
    if conn.dialect.name == "postgresql":  # rows made later must not get the ids given above
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('cashiers', 'id'), 100)"))


def _rows(engine: sa.Engine, table: sa.TableClause) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(sa.select(*table.c)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_codes_keep_their_owner_and_history(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine, "0008")
            with engine.begin() as conn:
                _old_company(conn)
            registry, details = _rows(engine, CODES), _rows(engine, DETAILS)
            schema.upgrade(engine)

            with engine.connect() as conn:  # (the whole schema: test_api_schema.py)
                diffs = compare_metadata(
                    MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata()
                )
            assert [d for d in diffs if "operator_codes" in repr(d) or "cashier_details" in repr(d)] == []
            assert _rows(engine, CODES) == registry
            assert _rows(engine, DETAILS) == details
            with Session(engine) as session:
                # the set replaced before 0009 gave its code back to Anna, not to anyone else
                service.put_details(session, 1, ANNA, AIRPORT, "SU-7", "1003", session_label="SU direct")
                service.put_details(session, 1, ANNA, MAIN, "T-1")  # Anna's own code
                ben = service.create_cashier(
                    session, 1, service.NewCashier(name="Ben", code="BEN", operator_code="3000")
                ).id
                for code, error in (
                    ("1001", "cashier.operator_code_used_before"),
                    ("2000", "cashier.operator_code_used_before"),
                    ("2001", "cashier.operator_code_used_before"),
                    ("1003", "cashier.operator_code_taken"),
                ):
                    with pytest.raises(ApiError) as refused:
                        service.update_cashier(session, 1, ben, service.CashierChanges(operator_code=code))
                    assert refused.value.code == error, code
            after = _rows(engine, CODES)
            assert [row for row in after if row[1] != "3000"] == registry  # nothing burned, nothing moved
            assert [row[2] for row in after if row[1] == "3000"] == [ben]

            with engine.begin() as conn:  # back to 0008: a set without a code names the cashier's own again
                command.downgrade(schema.alembic_config(conn), "0008")
            assert [row for row in _rows(engine, DETAILS) if row[0] == ANNA] == [
                (ANNA, MAIN, "T-1", "1000"),
                (ANNA, AIRPORT, "SU-7", "1003"),
            ]
            assert len(_rows(engine, CODES)) == len(registry) + 1
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_code_of_two_cashiers_stops_the_upgrade_until_resolved(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine, "0008")
            with engine.begin() as conn:
                _old_company(conn)
                # written by hand: Ben uses Anna's 1001, and 4000 never reached the registry
                conn.execute(CASHIERS.insert().values(_cashier(BEN, "BEN", "4000")))
                conn.execute(
                    DETAILS.insert().values(
                        cashier_id=BEN, point_of_sale_id=AIRPORT, terminal_id="T", operator_code="1001"
                    )
                )
            with pytest.raises(RuntimeError, match=r"used by several cashiers \(company 1 code 1001\)"):
                schema.upgrade(engine)
            with engine.begin() as conn:  # what the message asks for
                conn.execute(DETAILS.update().where(DETAILS.c.cashier_id == BEN).values(operator_code="4001"))
            schema.upgrade(engine)
            owners = {code: owner for _company, code, owner, _pos, _at in _rows(engine, CODES)}
            assert (owners["1001"], owners["4000"], owners["4001"]) == (ANNA, BEN, BEN)
        finally:
            engine.dispose()
