"""A company's sales (from the ingest `sales` table): scoped by device ownership, filtered by
point of sale, device, cashier and period, paged, and exported as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _sale
from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.up import Up
from tests.cloud.api_support import Api, add_device, error_code

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def add_sale(api: Api, device_id: str, receipt_no: int, at: datetime, cashier: str, pos_code: str) -> uuid.UUID:
    """A sale stored by the ingest itself, as the device would report it (made at `at`)."""
    sale = _sale().model_copy(
        update={"sale_id": uuid.uuid4(), "receipt_no": receipt_no, "cashier_id": cashier, "point_of_sale_id": pos_code}
    )
    envelope = kc.up_message(
        sale, device_id=device_id, seq=receipt_no, boot_id=uuid.uuid4(), clock_trusted=True, created_at=at
    )
    with Session(api.engine) as session, session.begin():
        assert apply_batch(session, [Up.of(envelope)]).applied == 1
    return sale.sale_id


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    """A company with two points of sale, two tills and five sales; another company with one."""
    cid, admin = api.company("Sales Co")
    main = api.call(
        "POST", f"/companies/{cid}/points-of-sale", admin, 201, json={"name": "Main", "code": "POS-MAIN"}
    ).json()
    kiosk = api.call(
        "POST", f"/companies/{cid}/points-of-sale", admin, 201, json={"name": "Kiosk", "code": "POS-KIOSK"}
    ).json()
    add_device(api, "sales-till-1", cid, main["id"])
    add_device(api, "sales-till-2", cid, kiosk["id"])
    sales = [
        add_sale(api, "sales-till-1", 1, T0, "C-1", "POS-MAIN"),
        add_sale(api, "sales-till-1", 2, T0 + timedelta(hours=1), "C-2", "POS-MAIN"),
        add_sale(api, "sales-till-2", 1, T0 + timedelta(hours=2), "C-1", "POS-KIOSK"),
        add_sale(api, "sales-till-2", 2, T0 + timedelta(days=1), "=C-3", "POS-KIOSK"),
        add_sale(api, "sales-till-1", 3, T0 + timedelta(days=2), "C-1", "POS-KIOSK"),
    ]
    other_cid, other_admin = api.company("Other Sales Co")
    add_device(api, "sales-other", other_cid)
    other_sale = add_sale(api, "sales-other", 1, T0, "C-1", "POS-MAIN")
    # a sale from a device no company owns yet is nobody's
    add_sale(api, "sales-unpaired", 1, T0, "C-1", "POS-MAIN")
    return {
        "cid": cid,
        "admin": admin,
        "viewer": api.user("company_viewer", admin, company_id=cid),
        "main": main["id"],
        "kiosk": kiosk["id"],
        "sales": [str(s) for s in sales],
        "other_cid": other_cid,
        "other_admin": other_admin,
        "other_sale": str(other_sale),
    }


def ids(api: Api, shop: dict, query: str = "", token: str | None = None) -> list[str]:
    reply = api.call("GET", f"/companies/{shop['cid']}/sales{query}", token or shop["viewer"], 200).json()
    return [s["sale_id"] for s in reply["items"]]


def test_company_sees_its_own_sales_newest_first(api: Api, shop: dict) -> None:
    s = shop["sales"]
    assert ids(api, shop) == [s[4], s[3], s[2], s[1], s[0]]
    assert ids(api, shop, token=api.owner_token) == [s[4], s[3], s[2], s[1], s[0]]
    other = api.call("GET", f"/companies/{shop['other_cid']}/sales", shop["other_admin"], 200).json()
    assert [x["sale_id"] for x in other["items"]] == [shop["other_sale"]]
    first = api.call("GET", f"/companies/{shop['cid']}/sales", shop["admin"], 200).json()["items"][-1]
    assert first == {
        "sale_id": s[0],
        "device_id": "sales-till-1",
        "point_of_sale": "POS-MAIN",
        "cashier_id": "C-1",
        "receipt_number": 1,
        "currency": "EUR",
        "total_minor": first["total_minor"],
        "sold_at": "2026-03-01T09:00:00Z",
        "refunded_minor": 0,
        "refund_count": 0,
    }
    assert first["total_minor"] > 0


def test_filters(api: Api, shop: dict) -> None:
    s = shop["sales"]
    assert ids(api, shop, f"?point_of_sale={shop['kiosk']}") == [s[4], s[3], s[2]]
    assert ids(api, shop, "?device=sales-till-2") == [s[3], s[2]]
    assert ids(api, shop, "?cashier=C-1") == [s[4], s[2], s[0]]
    assert ids(api, shop, "?since=2026-03-01T10:00:00Z&until=2026-03-02T09:00:00Z") == [s[2], s[1]]
    assert ids(api, shop, "?since=2026-03-01T11:00:00%2B01:00") == [s[4], s[3], s[2], s[1]]  # zone honoured
    assert ids(api, shop, "?since=2026-03-02T00:00:00") == [s[4], s[3]]  # no zone: UTC
    assert ids(api, shop, f"?cashier=C-1&device=sales-till-1&point_of_sale={shop['main']}") == [s[0]]
    assert ids(api, shop, "?device=sales-other") == []  # another company's device
    assert ids(api, shop, "?cashier=nobody") == []


def test_paging(api: Api, shop: dict) -> None:
    s = shop["sales"]
    page = api.call("GET", f"/companies/{shop['cid']}/sales?limit=2", shop["admin"], 200).json()
    assert [x["sale_id"] for x in page["items"]] == [s[4], s[3]] and page["next_offset"] == 2
    last = api.call("GET", f"/companies/{shop['cid']}/sales?limit=2&offset=4", shop["admin"], 200).json()
    assert [x["sale_id"] for x in last["items"]] == [s[0]] and last["next_offset"] is None


def test_csv_export(api: Api, shop: dict) -> None:
    reply = api.call("GET", f"/companies/{shop['cid']}/sales?format=csv&device=sales-till-2", shop["viewer"], 200)
    assert reply.headers["content-type"].startswith("text/csv")
    assert "attachment" in reply.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0] == [
        "sale_id",
        "sold_at",
        "device_id",
        "point_of_sale",
        "cashier_id",
        "receipt_number",
        "currency",
        "total_minor",
        "refunded_minor",
        "refund_count",
    ]
    assert [r[0] for r in rows[1:]] == [shop["sales"][3], shop["sales"][2]]
    assert rows[1][4] == "'=C-3"  # a formula-looking cell is defused
    assert rows[2][1:7] == ["2026-03-01T11:00:00Z", "sales-till-2", "POS-KIOSK", "C-1", "1", "EUR"]


def test_bad_filters_are_422(api: Api, shop: dict) -> None:
    base = f"/companies/{shop['cid']}/sales"
    for query in (
        "?since=yesterday",
        "?limit=0",
        "?limit=100000",
        "?offset=-1",
        "?format=xml",
        "?device=bad%20id",
        "?cashier=a%00b",
        "?point_of_sale=0",
        "?since=0001-01-01T00:00:00Z",
    ):
        assert error_code(api.call("GET", base + query, shop["admin"], 422)) == "invalid_request", query
    api.call("GET", f"{base}?point_of_sale=999999", shop["admin"], 404)
