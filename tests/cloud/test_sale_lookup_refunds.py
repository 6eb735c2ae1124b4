"""Refunds against their sale in the sales query: the list shows per sale the refunded amount
and count, the detail each refund; a refund that arrived before its sale (made on another
device, delivered out of order) shows once the sale is there. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _refund, _sale
from cloud_api.ingest.apply import apply_batch
from tests.cloud.api_support import Api, add_device

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
BOOT = uuid.UUID("6a1f0000-0000-4000-8000-00000000000a")


def ingest(api: Api, *envelopes: kc.Envelope) -> None:
    items = [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
    with Session(api.engine) as session, session.begin():
        assert apply_batch(session, items).rejected == 0


def up(body: kc.Body, device_id: str, seq: int, minutes: int = 0) -> kc.Envelope:
    return kc.up_message(
        body, device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True, created_at=T0 + timedelta(minutes=minutes)
    )


def refund_of(sale: kc.Sale, device_id: str, **update) -> kc.Refund:
    return _refund().model_copy(
        update={"refund_id": uuid.uuid4(), "original_sale_id": sale.sale_id, "original_device_id": device_id, **update}
    )


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    cid, admin = api.company("Refunds Co")
    add_device(api, "rf-till-a", cid)
    add_device(api, "rf-till-b", cid)
    other_cid, _ = api.company("Refunds Other Co")
    add_device(api, "rf-other", other_cid)
    return {"cid": cid, "admin": admin}


def listed(api: Api, shop: dict, device: str) -> dict[str, dict]:
    page = api.call("GET", f"/companies/{shop['cid']}/sales?device={device}", shop["admin"], 200).json()
    return {item["sale_id"]: item for item in page["items"]}


def test_a_refund_before_its_sale_shows_once_the_sale_arrives(api: Api, shop: dict) -> None:
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 10})
    # an admin on till B refunds the sale of till A; B's refund reaches the cloud first
    early = refund_of(sale, "rf-till-a", cashier_id="C-ADMIN", receipt_no=3)
    ingest(api, up(early, "rf-till-b", 1, minutes=30))
    assert listed(api, shop, "rf-till-a") == {}
    api.call("GET", f"/companies/{shop['cid']}/sales/{sale.sale_id}", shop["admin"], 404)
    ingest(api, up(sale, "rf-till-a", 1))
    item = listed(api, shop, "rf-till-a")[str(sale.sale_id)]
    assert (item["refunded_minor"], item["refund_count"]) == (1190, 1)
    detail = api.call("GET", f"/companies/{shop['cid']}/sales/{sale.sale_id}", shop["admin"], 200).json()
    assert detail["refund_count"] == 1 and detail["refunded_minor"] == 1190
    (shown,) = detail["refunds"]
    assert {k: shown[k] for k in ("refund_id", "device_id", "amount_minor", "cashier_id", "refunded_at")} == {
        "refund_id": str(early.refund_id),
        "device_id": "rf-till-b",
        "amount_minor": 1190,
        "cashier_id": "C-ADMIN",
        "refunded_at": "2026-06-01T09:30:00Z",
    }
    assert shown["lines"] == [{"line_index": 2, "qty_milli": 1000, "amount_minor": 1190}]


def test_list_sums_refunds_per_sale_and_only_the_companys(api: Api, shop: dict) -> None:
    sold = [_sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": n}) for n in (20, 21, 22)]
    whole = kc.Refund(
        refund_id=uuid.uuid4(),
        original_sale_id=sold[0].sale_id,
        original_device_id="rf-till-a",
        scope=kc.RefundScope.WHOLE,
        currency="EUR",
        amount=850,
        payments=[kc.Payment(method=kc.PaymentMethod.CASH, amount=850)],
        cashier_id="C-0107",
        till_session_id=uuid.uuid4(),
        reason="rest of the receipt",
    )
    ingest(
        api,
        *(up(sale, "rf-till-a", 10 + i) for i, sale in enumerate(sold)),
        up(refund_of(sold[0], "rf-till-a"), "rf-till-a", 20, 5),
        up(whole, "rf-till-b", 20, 6),
        # another company's device naming our sale: not ours to count
        up(refund_of(sold[1], "rf-till-a"), "rf-other", 1, 7),
        # a refund naming the sale id but another original device: not this sale
        up(refund_of(sold[2], "rf-till-b"), "rf-till-b", 21, 8),
    )
    items = listed(api, shop, "rf-till-a")
    assert [(items[str(s.sale_id)]["refunded_minor"], items[str(s.sale_id)]["refund_count"]) for s in sold] == [
        (1190 + 850, 2),
        (0, 0),
        (0, 0),
    ]
    reply = api.call("GET", f"/companies/{shop['cid']}/sales?device=rf-till-a&format=csv", shop["admin"], 200)
    rows = {row["sale_id"]: row for row in csv.DictReader(io.StringIO(reply.text))}
    assert (rows[str(sold[0].sale_id)]["refunded_minor"], rows[str(sold[0].sale_id)]["refund_count"]) == ("2040", "2")
