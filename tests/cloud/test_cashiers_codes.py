"""Operator codes: unique in the company and never reused, enforced by the database's
`operator_codes` primary key, also when requests race (PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.cashiers import codes
from cloud_api.cashiers.models import Cashier, OperatorCodeUse
from tests.cloud.api_support import Api, api_for, error_code
from tests.cloud.cashiers_support import Shop, new_shop


def test_an_operator_code_is_unique_in_the_company(api: Api) -> None:
    shop = new_shop(api, "Codes Co", devices=1)
    anna = shop.create(code="A", operator_code="1000")
    ben = shop.create(code="B", operator_code="1001")
    main = shop.pos_ids["MAIN"]
    shop.call("PUT", f"{shop.path}/{ben['id']}/details/{main}", 200, json={"terminal_id": "T", "operator_code": "1002"})

    taken = [shop.create(None, code="C", operator_code="1000"),  # another cashier's own code
             shop.create(None, code="C", operator_code="1002"),  # another cashier's details code
             shop.call("PATCH", f"{shop.path}/{anna['id']}", json={"operator_code": "1001"}),
             shop.call("PUT", f"{shop.path}/{anna['id']}/details/{main}", json={"terminal_id": "T", "operator_code": "1001"}),
             # a cashier's details may not reuse its own operator code either
             shop.call("PUT", f"{shop.path}/{anna['id']}/details/{main}", json={"terminal_id": "T", "operator_code": "1000"})]
    for reply in taken:
        assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_taken"), reply.text
    assert "cashier B" in taken[0].json()["error"]["message"] or "cashier A" in taken[0].json()["error"]["message"]
    # nothing of the refused requests stayed behind
    assert [c["code"] for c in shop.call("GET", shop.path, 200).json()] == ["A", "B"]
    assert shop.call("GET", f"{shop.path}/{anna['id']}", 200).json()["details"] == []
    # other companies have their own codes
    assert new_shop(api, "Codes Other Co", devices=0).create(operator_code="1000")["operator_code"] == "1000"


def test_an_operator_code_is_never_reused(api: Api) -> None:
    shop = new_shop(api, "Reuse Co", devices=1)
    main = shop.pos_ids["MAIN"]
    gone = shop.create(code="GONE", operator_code="2000")
    shop.call("PUT", f"{shop.path}/{gone['id']}/details/{main}", 200, json={"terminal_id": "T", "operator_code": "2001"})
    shop.call("DELETE", f"{shop.path}/{gone['id']}", 204)
    keeper = shop.create(code="KEEP", operator_code="2002")
    shop.call("PUT", f"{shop.path}/{keeper['id']}/details/{main}", 200, json={"terminal_id": "T", "operator_code": "2003"})
    # a changed code and a replaced details code are released, but never given out again
    shop.call("PATCH", f"{shop.path}/{keeper['id']}", 200, json={"operator_code": "2004"})
    shop.call("PUT", f"{shop.path}/{keeper['id']}/details/{main}", 200, json={"terminal_id": "T", "operator_code": "2005"})
    shop.call("DELETE", f"{shop.path}/{keeper['id']}/details/{main}", 204)

    for used in ("2000", "2001", "2002", "2003", "2005"):
        reply = shop.create(None, operator_code=used)
        assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_used_before"), used
        assert "never reused" in reply.json()["error"]["message"]
    reply = shop.call("PATCH", f"{shop.path}/{keeper['id']}", json={"operator_code": "2002"})  # its own old code
    assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_used_before")
    # setting the code it has is no change
    assert shop.call("PATCH", f"{shop.path}/{keeper['id']}", 200, json={"operator_code": "2004"}).json()["operator_code"] == "2004"
    with Session(api.engine) as session:
        used = session.scalars(select(OperatorCodeUse.code).where(OperatorCodeUse.company_id == shop.company_id)
                               .order_by(OperatorCodeUse.code)).all()
    assert used == ["2000", "2001", "2002", "2003", "2004", "2005"]


def _race(shop: Shop, bodies: list[dict]) -> list:
    """Send the create requests at the same moment from as many threads."""
    start = threading.Barrier(len(bodies))
    replies: list = [None] * len(bodies)

    def send(index: int) -> None:
        start.wait()
        replies[index] = shop.create(None, **bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return replies


@pytest.mark.postgres
def test_concurrent_requests_for_one_operator_code_on_postgresql(tmp_path: Path) -> None:
    with api_for("postgresql", tmp_path) as api:
        shop = new_shop(api, "Race Co", devices=2)
        for round_ in range(5):
            code = f"70{round_:02d}"
            replies = _race(shop, [{"code": f"R{round_}-{n}", "operator_code": code, "devices": "all"} for n in range(4)])
            outcomes = Counter((reply.status_code, error_code(reply) if reply.status_code != 201 else "") for reply in replies)
            assert outcomes == {(201, ""): 1, (409, "cashier.operator_code_taken"): 3}, [r.text for r in replies]
        # different codes racing all win, and every device's roster lists every winner
        replies = _race(shop, [{"code": f"W-{n}", "operator_code": f"80{n:02d}", "devices": "all"} for n in range(4)])
        assert [reply.status_code for reply in replies] == [201] * 4
        for device in shop.devices:
            assert len(shop.listed(device)) == 9
            assert shop.versions()[device] == 9  # one version per created cashier, none lost


@pytest.mark.postgres
def test_the_database_itself_refuses_a_second_use(tmp_path: Path) -> None:
    """Without the service's lock: two transactions inserting one code, one commits, one fails."""
    with api_for("postgresql", tmp_path) as api:
        shop = new_shop(api, "Raw Race Co", devices=0)
        first = shop.create(operator_code="9000")
        second = shop.create(operator_code="9001")
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def take(cashier_id: int) -> None:
            with Session(api.engine) as session:
                start.wait()
                try:
                    codes.take_operator_code(session, shop.company_id, "9999", cashier_id)
                    session.commit()
                    outcomes.append("won")
                except IntegrityError:
                    session.rollback()
                    outcomes.append("refused")

        threads = [threading.Thread(target=take, args=(c["id"],)) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes) == ["refused", "won"]
        with Session(api.engine) as session:
            error = codes.explain_conflict(session, shop.company_id, ["9999"])
            assert error.code == "cashier.operator_code_used_before"  # registered, but no cashier uses it
            assert session.scalar(select(Cashier.operator_code).where(Cashier.id == first["id"])) == "9000"
            assert datetime.now(timezone.utc) > session.get(OperatorCodeUse, (shop.company_id, "9999")).taken_at.replace(tzinfo=timezone.utc)
