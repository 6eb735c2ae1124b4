"""Cashier book through the HTTP API: CRUD, roles, PINs, details, validation, tenancy, the
login audit and the roster view (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.contract.roster import verify_pin
from cloud_api.cashiers.models import Cashier
from cloud_api.db import Base
from cloud_api.ingest.models import DeviceEvent
from cloud_api.schema import metadata
from tests.cloud.api_support import Api, error_code
from tests.cloud.cashiers_support import new_shop

PIN = "918273645546"  # 12 digits: no timestamp or id in the database holds such a run by chance


def test_create_read_update_list_and_delete(api: Api) -> None:
    shop = new_shop(api, "Crud Co")
    anna = shop.create(
        code="ANNA-1",
        name="Anna",
        operator_code="0427",
        roles=["refund", "cashier", "refund"],
        devices=[shop.devices[0]],
    )
    assert {
        k: anna[k] for k in ("code", "name", "operator_code", "roles", "enabled", "pin_set", "devices", "details")
    } == {
        "code": "ANNA-1",
        "name": "Anna",
        "operator_code": "0427",
        "roles": ["cashier", "refund"],
        "enabled": True,
        "pin_set": False,
        "devices": [shop.devices[0]],
        "details": [],
    }
    generated = shop.create(name="Ben", operator_code="0428")
    assert generated["code"] == "C-0002" and generated["devices"] == [] and generated["roles"] == ["cashier"]

    path = f"{shop.path}/{anna['id']}"
    assert shop.call("GET", path, 200).json() == anna
    changed = shop.call(
        "PATCH", path, 200, json={"name": "Anna B.", "roles": ["admin", "void", "no_sale"], "enabled": False}
    ).json()
    assert (changed["name"], changed["roles"], changed["enabled"]) == ("Anna B.", ["admin", "no_sale", "void"], False)
    assert changed["operator_code"] == "0427" and changed["updated_at"] >= anna["updated_at"]
    assert [c["code"] for c in shop.call("GET", shop.path, 200).json()] == ["ANNA-1", "C-0002"]

    assert shop.call("DELETE", path, 204).content == b""
    assert error_code(shop.call("GET", path, 404)) == "cashier.not_found"
    assert error_code(shop.call("DELETE", path, 404)) == "cashier.not_found"
    assert error_code(shop.call("PATCH", path, 404, json={"name": "X"})) == "cashier.not_found"
    assert [c["code"] for c in shop.call("GET", shop.path, 200).json()] == ["C-0002"]
    # the code of a deleted cashier stays taken
    assert error_code(shop.create(409, code="ANNA-1", operator_code="0999")) == "cashier.code_taken"


def test_bad_input_gets_a_clear_error(api: Api) -> None:
    shop = new_shop(api, "Bad Input Co", devices=1)
    cases = [
        ({"operator_code": "042"}, "cashier.operator_code_format"),
        ({"operator_code": "04277"}, "cashier.operator_code_format"),
        ({"operator_code": "04a7"}, "cashier.operator_code_format"),
        ({"operator_code": "٠٤٢٧"}, "cashier.operator_code_format"),  # Arabic-Indic digits are not 0-9
        ({"operator_code": "0427", "code": "has space"}, "cashier.code_format"),
        ({"operator_code": "0427", "pin": "12a4"}, "cashier.pin_format"),
        ({"operator_code": "0427", "pin": "123"}, "cashier.pin_format"),
        ({"operator_code": "0427", "devices": ["no-such-till"]}, "cashier.unknown_device"),
        ({"operator_code": "0427", "roles": []}, "invalid_request"),
        ({"operator_code": "0427", "roles": ["boss"]}, "invalid_request"),
        ({"operator_code": "0427", "name": ""}, "invalid_request"),
        ({"operator_code": "0427", "surprise": 1}, "invalid_request"),
    ]
    for body, code in cases:
        reply = shop.create(None, **body)
        assert (reply.status_code, error_code(reply)) == (422, code), body
        assert "12a4" not in reply.text
    assert shop.call("GET", shop.path, 200).json() == []
    cashier = shop.create(operator_code="0427")
    for body in ({"pin": "12"}, {"pin": "1234567890123"}, {"pin": 1234}, {}):
        reply = shop.call("PUT", f"{shop.path}/{cashier['id']}/pin", json=body)
        assert reply.status_code == 422 and error_code(reply) in ("cashier.pin_format", "invalid_request"), body
    reply = shop.call(
        "PUT",
        f"{shop.path}/{cashier['id']}/details/{shop.pos_ids['MAIN']}",
        json={"terminal_id": "T 1", "operator_code": "5555"},
    )
    assert (reply.status_code, error_code(reply)) == (422, "cashier.terminal_id_format")


def test_pin_is_hashed_and_never_shown_or_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud_api")
    caplog.set_level(logging.DEBUG, logger="broker")
    shop = new_shop(api, "Pin Co", devices=1)
    cashier = shop.create(operator_code="1111", pin=PIN, devices="all")
    assert cashier["pin_set"] is True and cashier["pin_set_at"] is not None
    path = f"{shop.path}/{cashier['id']}"
    first_hash = _pin_hash(api, cashier["id"])
    assert verify_pin(PIN, first_hash) and not verify_pin("000000", first_hash)

    new_pin = "5050"
    assert shop.call("PUT", f"{path}/pin", 204, json={"pin": new_pin}).content == b""
    second_hash = _pin_hash(api, cashier["id"])
    assert second_hash != first_hash and verify_pin(new_pin, second_hash) and not verify_pin(PIN, second_hash)
    replies = [
        shop.call("GET", path, 200).text,
        shop.call("GET", shop.path, 200).text,
        shop.call("GET", f"/companies/{shop.company_id}/devices/{shop.devices[0]}/roster", 200).text,
    ]
    roster = shop.call("GET", f"/companies/{shop.company_id}/devices/{shop.devices[0]}/roster", 200).json()
    assert roster["cashiers"][0]["pin_set"] is True
    # the pushed document carries the hash (the device checks PINs offline), nothing else does
    assert shop.listed(shop.devices[0])[cashier["code"]]["pin_hash"] == second_hash
    for text in [*replies, caplog.text]:
        assert PIN not in text and second_hash not in text and first_hash not in text
        assert second_hash.split("$")[-1] not in text
    assert "PIN of cashier" in caplog.text  # the change is logged, without the PIN
    assert _everything_stored(api).count(PIN) == 0

    assert shop.call("DELETE", f"{path}/pin", 204)
    assert shop.call("GET", path, 200).json()["pin_set"] is False
    assert shop.listed(shop.devices[0])[cashier["code"]]["pin_hash"] is None


def test_details_per_point_of_sale(api: Api) -> None:
    shop = new_shop(api, "Details Co", devices=1)
    cashier = shop.create(operator_code="2000", devices="all")
    main, airport = shop.pos_ids["MAIN"], shop.pos_ids["AIRPORT"]
    path = f"{shop.path}/{cashier['id']}/details"
    shop.call("PUT", f"{path}/{main}", 200, json={"terminal_id": "T-100", "operator_code": "2001"})
    shown = shop.call("PUT", f"{path}/{airport}", 200, json={"terminal_id": "SU-7", "operator_code": "2002"}).json()
    assert [(d["point_of_sale_code"], d["terminal_id"], d["operator_code"]) for d in shown["details"]] == [
        ("AIRPORT", "SU-7", "2002"),
        ("MAIN", "T-100", "2001"),
    ]
    # the same set again with a new terminal id keeps its operator code
    again = shop.call("PUT", f"{path}/{main}", 200, json={"terminal_id": "T-101", "operator_code": "2001"}).json()
    assert [d["terminal_id"] for d in again["details"]] == ["SU-7", "T-101"]
    listed = shop.listed(shop.devices[0])[cashier["code"]]["details"]
    assert listed == [
        {"point_of_sale": "AIRPORT", "terminal_id": "SU-7", "operator_code": "2002"},
        {"point_of_sale": "MAIN", "terminal_id": "T-101", "operator_code": "2001"},
    ]

    assert shop.call("DELETE", f"{path}/{airport}", 204)
    assert error_code(shop.call("DELETE", f"{path}/{airport}", 404)) == "cashier.details_not_found"
    assert [d["point_of_sale"] for d in shop.listed(shop.devices[0])[cashier["code"]]["details"]] == ["MAIN"]
    other = new_shop(api, "Details Other Co", devices=0)
    assert (
        error_code(
            shop.call("PUT", f"{path}/{other.pos_ids['MAIN']}", 404, json={"terminal_id": "T", "operator_code": "2003"})
        )
        == "not_found"
    )


def test_tenants_and_roles(api: Api) -> None:
    shop = new_shop(api, "Tenant Co", devices=1)
    cashier = shop.create(operator_code="3000")
    path = f"{shop.path}/{cashier['id']}"
    stranger = new_shop(api, "Stranger Co", devices=1)
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"name": "X"}),
        ("DELETE", path, None),
        ("PUT", f"{path}/pin", {"pin": "1234"}),
        ("GET", f"{path}/events", None),
        ("PUT", f"{path}/devices", {"devices": "all"}),
        ("GET", shop.path, None),
        ("POST", shop.path, {"name": "X", "operator_code": "3001"}),
        ("GET", f"/companies/{shop.company_id}/devices/{shop.devices[0]}/roster", None),
    ]:
        reply = shop.call(method, url, token=stranger.admin, json=body)
        assert (reply.status_code, error_code(reply)) == (404, "not_found"), (method, url)
    # a cashier id of another company is not found in one's own company
    assert error_code(stranger.call("GET", f"{stranger.path}/{cashier['id']}", 404)) == "cashier.not_found"

    viewer = api.user("company_viewer", shop.admin, company_id=shop.company_id)
    assert shop.call("GET", path, 200, token=viewer).json()["id"] == cashier["id"]
    assert shop.call("GET", shop.path, 200, token=viewer)
    for method, url, body in [
        ("PATCH", path, {"name": "X"}),
        ("DELETE", path, None),
        ("PUT", f"{path}/pin", {"pin": "1234"}),
        ("POST", shop.path, {"name": "X", "operator_code": "3001"}),
        ("PUT", f"{path}/devices", {"devices": "all"}),
        ("PUT", f"{path}/details/{shop.pos_ids['MAIN']}", {"terminal_id": "T", "operator_code": "3002"}),
    ]:
        reply = shop.call(method, url, token=viewer, json=body)
        assert (reply.status_code, error_code(reply)) == (403, "forbidden"), (method, url)
    partner_id, partner = api.partner("Cashier Partner")
    api.link(shop.admin, shop.company_id, partner, partner_id)
    assert error_code(shop.call("GET", shop.path, 403, token=partner)) == "forbidden"
    # the owner admin may manage any company's cashiers
    assert shop.call("PATCH", path, 200, token=api.owner_token, json={"name": "By owner"}).json()["name"] == "By owner"


def test_login_audit_events(api: Api) -> None:
    shop = new_shop(api, "Audit Co", devices=2)
    other = new_shop(api, "Audit Other Co", devices=1)
    cashier = shop.create(code="AUD-1", operator_code="4000", devices="all")
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    events = [
        (shop.devices[0], "cashier.login", "AUD-1", 0),
        (shop.devices[1], "cashier.login_failed", "AUD-1", 1),
        (shop.devices[1], "cashier.locked", "AUD-1", 2),
        (shop.devices[0], "cashier.logout", "AUD-1", 3),
        (shop.devices[0], "cashier.login", "SOMEONE-ELSE", 4),
        (other.devices[0], "cashier.login", "AUD-1", 5),
    ]  # the same code in another company's device
    with Session(api.engine) as session:
        session.add_all(
            DeviceEvent(
                message_id=uuid.uuid4(),
                device_id=device,
                kind=kind,
                cashier_id=code,
                details={"n": n},
                occurred_at=start + timedelta(minutes=n),
            )
            for device, kind, code, n in events
        )
        session.commit()
    path = f"{shop.path}/{cashier['id']}/events"
    page = shop.call("GET", path, 200).json()
    assert [e["kind"] for e in page["items"]] == [
        "cashier.logout",
        "cashier.locked",
        "cashier.login_failed",
        "cashier.login",
    ]
    assert page["next_offset"] is None and page["items"][0]["details"] == {"n": 3}
    first = shop.call("GET", f"{path}?limit=3", 200).json()
    assert len(first["items"]) == 3 and first["next_offset"] == 3
    rest = shop.call("GET", f"{path}?limit=3&offset=3", 200).json()
    assert [e["kind"] for e in rest["items"]] == ["cashier.login"] and rest["next_offset"] is None
    failed = shop.call("GET", f"{path}?kind=cashier.login_failed", 200).json()["items"]
    assert [(e["device_id"], e["kind"]) for e in failed] == [(shop.devices[1], "cashier.login_failed")]
    assert error_code(shop.call("GET", f"{path}?kind=Bad%20Kind", 422)) == "invalid_request"


def test_roster_view_of_a_device(api: Api) -> None:
    shop = new_shop(api, "Roster View Co", devices=2)
    url = f"/companies/{shop.company_id}/devices/{shop.devices[1]}/roster"
    empty = shop.call("GET", url, 200).json()
    assert (empty["version"], empty["cashiers"]) == (None, [])
    shop.create(code="RV-1", name="Rita", operator_code="6000", devices=[shop.devices[1]], roles=["cashier", "refund"])
    shop.create(code="RV-2", name="Rolf", operator_code="6001", devices=[shop.devices[0]])
    view = shop.call("GET", url, 200).json()
    assert view["version"] == 1 and view["published_version"] == 0
    assert view["cashiers"] == [
        {
            "cashier_id": "RV-1",
            "name": "Rita",
            "operator_code": "6000",
            "pin_set": False,
            "roles": ["cashier", "refund"],
            "enabled": True,
            "details": [],
        }
    ]
    assert error_code(shop.call("GET", f"/companies/{shop.company_id}/devices/nope/roster", 404)) == "not_found"


def _pin_hash(api: Api, cashier_id: int) -> str:
    with Session(api.engine) as session:
        value = session.scalar(select(Cashier.pin_hash).where(Cashier.id == cashier_id))
    assert value is not None
    return value


def _everything_stored(api: Api) -> str:
    """Every row of every table, as text."""
    assert Base.metadata is metadata()
    parts = []
    with api.engine.connect() as conn:
        for table in metadata().sorted_tables:
            parts.extend(repr(tuple(row)) for row in conn.execute(table.select()))
    return "\n".join(parts)
