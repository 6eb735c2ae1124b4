"""One sale with its lines, taxes, payments and refunds (GET /companies/{id}/sales/{sale_id}),
and devices listed with their presence and last-seen time. Data goes in through the ingest
itself (apply_batch), as devices would report it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _refund, _sale
from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.plan import AckPlan
from tests.cloud.api_support import Api, add_device, error_code

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BOOT = uuid.UUID("6a1f0000-0000-4000-8000-000000000002")


def ingest(api: Api, envelopes: list[kc.Envelope], at: datetime | None = None) -> AckPlan:
    """The envelopes as a worker receives them (encoded, parsed), applied at time `at`."""
    items = [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
    with Session(api.engine) as session, session.begin():
        return apply_batch(session, items, received_at=at)


def up(body: kc.Body, device_id: str, seq: int, at: datetime = T0) -> kc.Envelope:
    return kc.up_message(body, device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True, created_at=at)


def status(state: kc.Presence, device_id: str) -> kc.Envelope:
    return kc.status_message(state, device_id=device_id, boot_id=BOOT, clock_trusted=True)


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    """A company with a till that sold once and refunded twice (one line, then the rest), a
    refund naming that sale from another company's till, and that company's own sale."""
    cid, admin = api.company("Detail Co")
    add_device(api, "detail-till", cid)
    other_cid, other_admin = api.company("Detail Other Co")
    add_device(api, "detail-other", other_cid)
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 77})
    line_refund = _refund().model_copy(
        update={"refund_id": uuid.uuid4(), "original_sale_id": sale.sale_id, "original_device_id": "detail-till"}
    )
    rest = kc.Refund(
        refund_id=uuid.uuid4(),
        original_sale_id=sale.sale_id,
        original_device_id="detail-till",
        scope=kc.RefundScope.LINES,
        lines=[kc.RefundLine(line_index=0, qty_milli=1000, amount=250)],
        currency="EUR",
        amount=250,
        payments=[kc.Payment(method=kc.PaymentMethod.CARD, amount=250, reference="RF-9")],
        cashier_id="C-0200",
        till_session_id=uuid.uuid4(),
        reason="one espresso spilt",
    )
    stranger = rest.model_copy(update={"refund_id": uuid.uuid4(), "reason": "not ours to see"})
    other_sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 1})
    plan = ingest(
        api,
        [
            up(sale, "detail-till", 1),
            up(line_refund, "detail-till", 2, T0 + timedelta(hours=1)),
            up(rest, "detail-till", 3, T0 + timedelta(hours=2)),
            up(stranger, "detail-other", 1),
            up(other_sale, "detail-other", 2),
        ],
    )
    assert (plan.applied, plan.rejected) == (5, 0)
    return {
        "cid": cid,
        "admin": admin,
        "viewer": api.user("company_viewer", admin, company_id=cid),
        "sale": sale,
        "refunds": [line_refund, rest],
        "other_cid": other_cid,
        "other_admin": other_admin,
        "other_sale": other_sale,
    }


def test_sale_detail_has_lines_taxes_payments_and_refunds(api: Api, shop: dict) -> None:
    sale: kc.Sale = shop["sale"]
    line_refund, rest = shop["refunds"]
    detail = api.call("GET", f"/companies/{shop['cid']}/sales/{sale.sale_id}", shop["viewer"], 200).json()
    assert {key: value for key, value in detail.items() if key not in ("lines", "taxes", "payments", "refunds")} == {
        "sale_id": str(sale.sale_id),
        "device_id": "detail-till",
        "point_of_sale": "POS-MAIN",
        "cashier_id": "C-0107",
        "receipt_number": 77,
        "currency": "EUR",
        "total_minor": 2040,
        "sold_at": "2026-03-01T09:00:00Z",
        "till_session_id": str(sale.till_session_id),
        "tax_included": True,
        "tax_total_minor": 246,
        "change_minor": 60,
        "refunded_minor": 1190 + 250,
        "refund_count": 2,
    }
    assert detail["lines"] == [
        {
            "line_index": i,
            "sku": line.sku,
            "name": line.name,
            "qty_milli": line.qty_milli,
            "unit_price_minor": line.unit_price,
            "tax_rate_bp": line.tax_rate_bp,
            "discount_minor": line.discount,
            "total_minor": line.total,
        }
        for i, line in enumerate(sale.lines)
    ]
    assert detail["taxes"] == [
        {"rate_bp": 700, "base_minor": 850, "tax_minor": 56},
        {"rate_bp": 1900, "base_minor": 1190, "tax_minor": 190},
    ]
    assert detail["payments"] == [
        {"method": "card", "amount_minor": 1000, "reference": "A1B2C3"},
        {"method": "cash", "amount_minor": 1100, "reference": None},
    ]
    # oldest first; the other company's refund naming this sale is not shown
    assert [r["refund_id"] for r in detail["refunds"]] == [str(line_refund.refund_id), str(rest.refund_id)]
    assert detail["refunds"][1] == {
        "refund_id": str(rest.refund_id),
        "device_id": "detail-till",
        "scope": "lines",
        "cashier_id": "C-0200",
        "till_session_id": str(rest.till_session_id),
        "reason": "one espresso spilt",
        "currency": "EUR",
        "amount_minor": 250,
        "refunded_at": "2026-03-01T11:00:00Z",
        "lines": [{"line_index": 0, "qty_milli": 1000, "amount_minor": 250}],
        "payments": [{"method": "card", "amount_minor": 250, "reference": "RF-9"}],
    }
    assert detail["refunds"][0]["lines"] == [{"line_index": 2, "qty_milli": 1000, "amount_minor": 1190}]
    owner_view = api.call("GET", f"/companies/{shop['cid']}/sales/{sale.sale_id}", api.owner_token, 200).json()
    assert owner_view == detail


def test_sale_detail_is_tenant_scoped(api: Api, shop: dict) -> None:
    ours, theirs = shop["sale"].sale_id, shop["other_sale"].sale_id
    # another company's sale, asked for under our company: as if it did not exist
    reply = api.call("GET", f"/companies/{shop['cid']}/sales/{theirs}", shop["admin"], 404)
    assert error_code(reply) == "not_found"
    # our sale, asked for by the other company (under its own id, or under ours)
    api.call("GET", f"/companies/{shop['other_cid']}/sales/{ours}", shop["other_admin"], 404)
    api.call("GET", f"/companies/{shop['cid']}/sales/{ours}", shop["other_admin"], 404)
    api.call("GET", f"/companies/{shop['other_cid']}/sales/{theirs}", shop["other_admin"], 200)
    pid, partner = api.partner("Detail Partner")
    api.link(shop["admin"], shop["cid"], partner, pid)
    reply = api.call("GET", f"/companies/{shop['cid']}/sales/{ours}", partner, 403)
    assert error_code(reply) == "forbidden"


def test_sale_detail_bad_ids(api: Api, shop: dict) -> None:
    base = f"/companies/{shop['cid']}/sales"
    assert error_code(api.call("GET", f"{base}/not-a-uuid", shop["admin"], 422)) == "invalid_request"
    assert error_code(api.call("GET", f"{base}/{uuid.uuid4()}", shop["admin"], 404)) == "not_found"


def devices(api: Api, cid: int, token: str) -> dict[str, dict]:
    return {d["device_id"]: d for d in api.call("GET", f"/companies/{cid}/devices", token, 200).json()}


def test_devices_show_presence_and_last_seen(api: Api) -> None:
    cid, admin = api.company("Presence Co")
    for name in ("pres-a", "pres-b", "pres-never"):
        add_device(api, name, cid)
    ingest(api, [status(kc.Presence.ONLINE, "pres-a"), status(kc.Presence.ONLINE, "pres-b")], T0)
    ingest(api, [up(_sale().model_copy(update={"sale_id": uuid.uuid4()}), "pres-a", 1)], T0 + timedelta(minutes=5))
    will = status(kc.Presence.OFFLINE, "pres-b")
    ingest(api, [will], T0 + timedelta(minutes=7))
    ingest(api, [will], T0 + timedelta(hours=3))  # the retained copy, re-sent on a resubscribe

    listed = devices(api, cid, admin)
    assert [(d["presence"], d["last_seen_at"]) for d in listed.values()] == [
        ("online", "2026-03-01T09:05:00Z"),  # its sale came after its status
        ("offline", "2026-03-01T09:07:00Z"),  # when its will arrived, not when it was re-sent
        ("unknown", None),
    ]
    one = api.call("GET", f"/companies/{cid}/devices/pres-b", admin, 200).json()
    assert one == listed["pres-b"] and one["paired"] is False

    ingest(api, [status(kc.Presence.ONLINE, "pres-b")], T0 + timedelta(hours=4))  # back
    assert devices(api, cid, admin)["pres-b"]["presence"] == "online"
    assert devices(api, cid, admin)["pres-b"]["last_seen_at"] == "2026-03-01T13:00:00Z"


def test_device_shows_its_sequence_gaps_until_they_close(api: Api) -> None:
    cid, admin = api.company("Gap Co")
    add_device(api, "gap-till", cid)
    other_cid, other_admin = api.company("Gap Other Co")
    event = kc.Event(kind="drawer_opened", details={})
    ingest(api, [up(event, "gap-till", 1), up(event, "gap-till", 4), up(event, "gap-till", 6)])
    device = api.call("GET", f"/companies/{cid}/devices/gap-till", admin, 200).json()
    assert (device["high_water"], device["max_seq"], device["open_gaps"]) == (1, 6, 2)
    gaps = api.call("GET", f"/companies/{cid}/devices/gap-till/gaps", admin, 200).json()
    assert [(g["first_missing"], g["last_missing"], g["closed_at"]) for g in gaps] == [(5, 5, None), (2, 3, None)]

    ingest(api, [up(event, "gap-till", 2), up(event, "gap-till", 3), up(event, "gap-till", 5)])
    device = api.call("GET", f"/companies/{cid}/devices/gap-till", admin, 200).json()
    assert (device["high_water"], device["max_seq"], device["open_gaps"]) == (6, 6, 0)
    assert api.call("GET", f"/companies/{cid}/devices/gap-till/gaps", admin, 200).json() == []
    closed = api.call("GET", f"/companies/{cid}/devices/gap-till/gaps?state=all", admin, 200).json()
    assert len(closed) == 2 and all(g["closed_at"] for g in closed)
    # another company sees neither the device nor its gaps
    api.call("GET", f"/companies/{other_cid}/devices/gap-till/gaps", other_admin, 404)
    api.call("GET", f"/companies/{cid}/devices/gap-till/gaps", other_admin, 404)
