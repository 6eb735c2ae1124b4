"""Operator codes: a code belongs to the first cashier that uses it, for ever. That cashier
may use it again anywhere (its own code, any of its details sets); no other cashier of the
company ever gets it, also after the owner is deleted. The database's `operator_codes`
primary key gives each code one owner, also when requests race (PostgreSQL), and a foreign
key keeps a details set to codes of its own cashier."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.contract.roster import RosterDoc
from cloud_api.api.errors import ApiError
from cloud_api.cashiers import codes
from cloud_api.cashiers.models import Cashier, CashierDetailsSet, OperatorCodeUse
from tests.cloud.api_support import Api, api_for, error_code
from tests.cloud.cashiers_support import new_shop


def test_a_code_in_use_is_refused_for_another_cashier(api: Api) -> None:
    shop = new_shop(api, "Codes Co", devices=1)
    anna = shop.create(code="A", operator_code="1000")
    ben = shop.create(code="B", operator_code="1001")
    shop.put_details(ben["id"], "MAIN", terminal_id="T", operator_code="1002")

    taken = [
        shop.create(None, code="C", operator_code="1000"),  # another cashier's own code
        shop.create(None, code="C", operator_code="1002"),  # another cashier's details code
        shop.call("PATCH", f"{shop.path}/{anna['id']}", json={"operator_code": "1001"}),
        shop.put_details(anna["id"], "MAIN", None, terminal_id="T", operator_code="1001"),
        shop.put_details(anna["id"], "MAIN", None, terminal_id="T", operator_code="1002"),
    ]
    for reply in taken:
        assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_taken"), reply.text
    assert "in use by cashier A" in taken[0].json()["error"]["message"]
    assert "in use by cashier B" in taken[1].json()["error"]["message"]
    # nothing of the refused requests stayed behind
    assert [c["code"] for c in shop.call("GET", shop.path, 200).json()] == ["A", "B"]
    assert shop.call("GET", f"{shop.path}/{anna['id']}", 200).json()["details"] == []
    assert {code: owner for code, (owner, _at) in shop.registry().items()} == {
        "1000": anna["id"],
        "1001": ben["id"],
        "1002": ben["id"],
    }
    # other companies have their own codes
    assert new_shop(api, "Codes Other Co", devices=0).create(operator_code="1000")["operator_code"] == "1000"


def test_one_code_across_two_details_sets_of_the_same_cashier(api: Api) -> None:
    shop = new_shop(api, "Two Sets Co", devices=1)
    dora = shop.create(code="DORA", operator_code="3000", devices="all")
    shop.put_details(dora["id"], "MAIN", terminal_id="T-1", operator_code="3001", session_label="Counter 1")
    shown = shop.put_details(dora["id"], "AIRPORT", terminal_id="SU-7", operator_code="3001", session_label="SU direct")
    assert [(d["point_of_sale_code"], d["operator_code"], d["session_label"]) for d in shown["details"]] == [
        ("AIRPORT", "3001", "SU direct"),
        ("MAIN", "3001", "Counter 1"),
    ]
    # the cashier's own code may be named in a set too
    shop.put_details(dora["id"], "MAIN", terminal_id="T-1", operator_code="3000")

    listed = shop.listed(shop.devices[0])["DORA"]
    assert [(d["point_of_sale"], d["operator_code"]) for d in listed["details"]] == [
        ("AIRPORT", "3001"),
        ("MAIN", "3000"),
    ]
    RosterDoc.model_validate(shop.rosters()[shop.devices[0]][1])
    # one registry row per code, both the cashier's
    assert {code: owner for code, (owner, _at) in shop.registry().items()} == {"3000": dora["id"], "3001": dora["id"]}
    other = shop.create(code="OTHER", operator_code="3002")
    refused = shop.put_details(other["id"], "AIRPORT", None, terminal_id="SU-8", operator_code="3001")
    assert (refused.status_code, error_code(refused)) == (409, "cashier.operator_code_taken")


def test_a_deleted_cashiers_codes_are_refused_for_a_new_cashier(api: Api) -> None:
    shop = new_shop(api, "Deleted Co", devices=1)
    gone = shop.create(code="GONE", operator_code="2000")
    shop.put_details(gone["id"], "MAIN", terminal_id="T", operator_code="2001")
    shop.call("DELETE", f"{shop.path}/{gone['id']}", 204)
    keeper = shop.create(code="KEEP", operator_code="2002")

    for used in ("2000", "2001"):
        replies = [
            shop.create(None, code="NEW", operator_code=used),
            shop.call("PATCH", f"{shop.path}/{keeper['id']}", json={"operator_code": used}),
            shop.put_details(keeper["id"], "MAIN", None, terminal_id="T", operator_code=used),
        ]
        for reply in replies:
            assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_used_before"), (
                used,
                reply.text,
            )
            assert "since deleted" in reply.json()["error"]["message"]
            assert "never reused" in reply.json()["error"]["message"]
    assert shop.registry()["2000"][0] == shop.registry()["2001"][0] == gone["id"]


def test_replacing_details_keeps_the_code_usable_by_its_cashier(api: Api) -> None:
    shop = new_shop(api, "Replace Co", devices=1)
    eve = shop.create(code="EVE", operator_code="4000")
    other = shop.create(code="OTHER", operator_code="4100")
    shop.put_details(eve["id"], "MAIN", terminal_id="T-1", operator_code="4001")
    first_use = shop.registry()["4001"][1]
    shop.put_details(eve["id"], "MAIN", terminal_id="T-1", operator_code="4002")  # replaced: 4001 is not burned

    # still Eve's: no one else gets it ...
    for reply in (
        shop.create(None, code="NEW", operator_code="4001"),
        shop.call("PATCH", f"{shop.path}/{other['id']}", json={"operator_code": "4001"}),
        shop.put_details(other["id"], "AIRPORT", None, terminal_id="T-9", operator_code="4001"),
    ):
        assert (reply.status_code, error_code(reply)) == (409, "cashier.operator_code_used_before"), reply.text
        assert "by cashier EVE and stays theirs" in reply.json()["error"]["message"]
    # ... and Eve may use it again, in another set or back in the same one, also after a removal
    shop.put_details(eve["id"], "AIRPORT", terminal_id="SU-7", operator_code="4001")
    shop.call("DELETE", f"{shop.path}/{eve['id']}/details/{shop.pos_ids['AIRPORT']}", 204)
    again = shop.put_details(eve["id"], "MAIN", terminal_id="T-2", operator_code="4001")
    assert [(d["terminal_id"], d["operator_code"]) for d in again["details"]] == [("T-2", "4001")]
    # a changed own code is not burned either: the old one stays the cashier's to take back
    assert (
        shop.call("PATCH", f"{shop.path}/{eve['id']}", 200, json={"operator_code": "4002"}).json()["operator_code"]
        == "4002"
    )
    assert (
        shop.call("PATCH", f"{shop.path}/{eve['id']}", 200, json={"operator_code": "4000"}).json()["operator_code"]
        == "4000"
    )

    registry = shop.registry()
    assert {code: owner for code, (owner, _at) in registry.items()} == {
        "4000": eve["id"],
        "4001": eve["id"],
        "4002": eve["id"],
        "4100": other["id"],
    }
    assert registry["4001"][1] == first_use  # using a code again keeps its first use


def test_the_database_refuses_a_details_set_with_another_cashiers_code(api: Api) -> None:
    """The foreign key (cashier_id, operator_code) -> operator_codes, without the service."""
    shop = new_shop(api, "Foreign Key Co", devices=0)
    anna = shop.create(code="FA", operator_code="5000")
    ben = shop.create(code="FB", operator_code="5001")
    with Session(api.engine) as session:
        with pytest.raises(IntegrityError):
            session.execute(
                insert(CashierDetailsSet).values(
                    cashier_id=ben["id"], point_of_sale_id=shop.pos_ids["MAIN"], terminal_id="T", operator_code="5000"
                )
            )
        session.rollback()
        # its own code, or none (the cashier's own), is accepted
        for pos, code in (("MAIN", "5001"), ("AIRPORT", None)):
            session.execute(
                insert(CashierDetailsSet).values(
                    cashier_id=ben["id"], point_of_sale_id=shop.pos_ids[pos], terminal_id="T", operator_code=code
                )
            )
        session.commit()
    assert shop.registry()["5000"][0] == anna["id"]


def _race(calls: list[Callable[[], Any]]) -> list:
    """Run the calls at the same moment from as many threads; their results in order."""
    start = threading.Barrier(len(calls))
    replies: list = [None] * len(calls)

    def send(index: int) -> None:
        start.wait()
        replies[index] = calls[index]()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return replies


def _outcomes(replies: list) -> Counter:
    return Counter((reply.status_code, error_code(reply) if reply.status_code >= 400 else "") for reply in replies)


@pytest.mark.postgres
def test_concurrent_requests_for_one_operator_code_on_postgresql(tmp_path: Path) -> None:
    with api_for("postgresql", tmp_path) as api:
        shop = new_shop(api, "Race Co", devices=2)
        for round_ in range(5):
            code = f"70{round_:02d}"
            replies = _race(
                [
                    lambda n=n, code=code, round_=round_: shop.create(
                        None, code=f"R{round_}-{n}", operator_code=code, devices="all"
                    )
                    for n in range(4)
                ]
            )
            assert _outcomes(replies) == {(201, ""): 1, (409, "cashier.operator_code_taken"): 3}, [
                r.text for r in replies
            ]
        # different codes racing all win, and every device's roster lists every winner
        replies = _race(
            [lambda n=n: shop.create(None, code=f"W-{n}", operator_code=f"80{n:02d}", devices="all") for n in range(4)]
        )
        assert [reply.status_code for reply in replies] == [201] * 4
        for device in shop.devices:
            assert len(shop.listed(device)) == 9
            assert shop.versions()[device] == 9  # one version per created cashier, none lost
        # four cashiers' details naming one new code: one gets it, for ever
        cashiers = [shop.create(code=f"D-{n}", operator_code=f"81{n:02d}") for n in range(4)]
        replies = _race(
            [
                lambda c=c: shop.put_details(c["id"], "MAIN", None, terminal_id="T", operator_code="8200")
                for c in cashiers
            ]
        )
        assert _outcomes(replies) == {(200, ""): 1, (409, "cashier.operator_code_taken"): 3}, [r.text for r in replies]
        winner = next(c for c, reply in zip(cashiers, replies, strict=True) if reply.status_code == 200)
        assert shop.registry()["8200"][0] == winner["id"]


@pytest.mark.postgres
def test_the_database_itself_gives_a_code_one_owner(tmp_path: Path) -> None:
    """Without the service's lock: two transactions taking one code for two cashiers; one
    commits it, the other waits on the primary key and is then refused."""
    with api_for("postgresql", tmp_path) as api:
        shop = new_shop(api, "Raw Race Co", devices=0)
        first = shop.create(operator_code="9000")
        second = shop.create(operator_code="9001")
        start = threading.Barrier(2)
        outcomes: dict[int, str] = {}

        def take(cashier_id: int) -> None:
            with Session(api.engine) as session:
                start.wait()
                try:
                    codes.take_operator_code(session, shop.company_id, "9999", cashier_id)
                    session.commit()
                    outcomes[cashier_id] = "won"
                except ApiError as refused:
                    session.rollback()
                    outcomes[cashier_id] = refused.code

        threads = [threading.Thread(target=take, args=(c["id"],)) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # registered to the winner, who does not use it (yet): "used before", not "in use"
        assert sorted(outcomes.values()) == ["cashier.operator_code_used_before", "won"]
        winner = next(cashier_id for cashier_id, outcome in outcomes.items() if outcome == "won")
        with Session(api.engine) as session:
            row = session.get(OperatorCodeUse, (shop.company_id, "9999"))
            assert row.cashier_id == winner
            assert datetime.now(UTC) > row.taken_at.replace(tzinfo=UTC)
            assert session.scalar(select(Cashier.operator_code).where(Cashier.id == first["id"])) == "9000"
