"""POST /device-api/sales/lookup: a paired device, signing with its identity key, looks up a
sale of its company (for an admin refund on another terminal). SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.device_requests import SALE_LOOKUP_PATH, SaleLookupReply, sale_lookup_request
from broker.contract.examples import _refund, _sale
from broker.contract.pairing import poll_request
from broker.contract.signing import public_key_text
from cloud_api.ingest.apply import apply_batch
from tests.cloud.api_support import Api, add_device, error_code

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
BOOT = uuid.UUID("6a1f0000-0000-4000-8000-000000000009")


def ingest(api: Api, envelopes: list[kc.Envelope]) -> None:
    items = [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
    with Session(api.engine) as session, session.begin():
        plan = apply_batch(session, items)
    assert plan.rejected == 0


def up(body: kc.Body, device_id: str, seq: int, at: datetime = T0) -> kc.Envelope:
    return kc.up_message(body, device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True, created_at=at)


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    """Till A sold (and refunded one line); till B (same company) asks; another company's sale."""
    keys = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "other")}
    cid, _admin = api.company("Lookup Co")
    add_device(api, "lk-till-a", cid, public_key=public_key_text(keys["a"].public_key()))
    add_device(api, "lk-till-b", cid, public_key=public_key_text(keys["b"].public_key()))
    add_device(api, "lk-unpaired", cid)
    other_cid, _ = api.company("Lookup Other Co")
    add_device(api, "lk-other", other_cid, public_key=public_key_text(keys["other"].public_key()))
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 5})
    refund = _refund().model_copy(
        update={
            "refund_id": uuid.uuid4(),
            "original_sale_id": sale.sale_id,
            "original_device_id": "lk-till-a",
            "receipt_no": 6,
        }
    )
    theirs = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 1})
    ingest(
        api,
        [up(sale, "lk-till-a", 1), up(refund, "lk-till-a", 2, T0 + timedelta(minutes=5)), up(theirs, "lk-other", 1)],
    )
    return {"keys": keys, "sale": sale, "refund": refund, "theirs": theirs}


def ask(api: Api, device_id: str, key: Ed25519PrivateKey, sale_id: uuid.UUID, now: datetime | None = None):
    request = sale_lookup_request(device_id, key, sale_id, now or datetime.now(UTC))
    return api.client.post(
        SALE_LOOKUP_PATH, content=request.model_dump_json(), headers={"Content-Type": "application/json"}
    )


def test_a_device_looks_up_a_sale_of_another_device_of_its_company(api: Api, shop: dict) -> None:
    sale, refund = shop["sale"], shop["refund"]
    reply = ask(api, "lk-till-b", shop["keys"]["b"], sale.sale_id)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    parsed = SaleLookupReply.model_validate(body)
    assert parsed.sale == sale  # exactly as till A reported it
    assert body["device_id"] == "lk-till-a" and body["sold_at"] == "2026-05-01T09:00:00.000Z"
    assert body["refunds"] == [
        {
            "refund_id": str(refund.refund_id),
            "device_id": "lk-till-a",
            "scope": "lines",
            "amount": 1190,
            "lines": [{"line_index": 2, "qty_milli": 1000, "amount": 1190}],
            "payments": [{"method": "cash", "amount": 1190, "reference": None}],
            "cashier_id": "C-0107",
            "till_session_id": str(refund.till_session_id),
            "receipt_no": 6,
            "refunded_at": "2026-05-01T09:05:00.000Z",
        }
    ]
    assert body["refunded_amount"] == 1190 and body["whole_refunded"] is False
    assert body["refunded_lines"] == [{"line_index": 2, "qty_milli": 1000, "amount": 1190}]
    # the device that made it may ask too
    assert ask(api, "lk-till-a", shop["keys"]["a"], sale.sale_id).status_code == 200


def test_each_refund_lists_its_payments_in_order(api: Api, shop: dict) -> None:
    """The terminal splits a refund over the sale's methods net of what every earlier refund
    paid out by each: the reply carries each refund's payments as its device sent them."""
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 40})
    split = _refund().model_copy(
        update={
            "refund_id": uuid.uuid4(),
            "original_sale_id": sale.sale_id,
            "original_device_id": "lk-till-a",
            "receipt_no": 41,
            "payments": [
                kc.Payment(method=kc.PaymentMethod.CASH, amount=190),
                kc.Payment(method=kc.PaymentMethod.CARD, amount=1000, reference="AUTH-77"),
            ],
        }
    )
    whole = kc.Refund(
        refund_id=uuid.uuid4(),
        original_sale_id=sale.sale_id,
        original_device_id="lk-till-a",
        scope=kc.RefundScope.WHOLE,
        currency="EUR",
        amount=850,
        payments=[kc.Payment(method=kc.PaymentMethod.OTHER, amount=850, reference="VOUCHER-9")],
        cashier_id="C-ADMIN",
        till_session_id=uuid.uuid4(),
        reason="the rest",
    )
    ingest(
        api,
        [
            up(sale, "lk-till-a", 40),
            up(split, "lk-till-a", 41, T0 + timedelta(minutes=1)),
            up(whole, "lk-till-b", 40, T0 + timedelta(minutes=2)),
        ],
    )
    reply = ask(api, "lk-till-b", shop["keys"]["b"], sale.sale_id)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [(r["refund_id"], r["device_id"], r["payments"]) for r in body["refunds"]] == [
        (
            str(split.refund_id),
            "lk-till-a",
            [
                {"method": "cash", "amount": 190, "reference": None},
                {"method": "card", "amount": 1000, "reference": "AUTH-77"},
            ],
        ),
        (str(whole.refund_id), "lk-till-b", [{"method": "other", "amount": 850, "reference": "VOUCHER-9"}]),
    ]
    parsed = SaleLookupReply.model_validate(body)
    assert (
        [sum(p.amount for p in r.payments) for r in parsed.refunds] == [r.amount for r in parsed.refunds] == [1190, 850]
    )
    # a reply of a cloud older than the field still parses: no payments listed
    for refund in body["refunds"]:
        del refund["payments"]
    assert [r.payments for r in SaleLookupReply.model_validate(body).refunds] == [[], []]


def test_other_companies_sales_and_unknown_sales_are_404(api: Api, shop: dict) -> None:
    for sale_id in (shop["theirs"].sale_id, uuid.uuid4()):
        reply = ask(api, "lk-till-b", shop["keys"]["b"], sale_id)
        assert reply.status_code == 404 and error_code(reply) == "not_found"
    assert ask(api, "lk-other", shop["keys"]["other"], shop["sale"].sale_id).status_code == 404
    assert ask(api, "lk-other", shop["keys"]["other"], shop["theirs"].sale_id).status_code == 200


def test_forged_and_unknown_devices_are_401(api: Api, shop: dict) -> None:
    sale_id = shop["sale"].sale_id
    forged = ask(api, "lk-till-b", Ed25519PrivateKey.generate(), sale_id)
    assert forged.status_code == 401 and error_code(forged) == "bad_signature"
    # another paired device's key under this device's name
    assert error_code(ask(api, "lk-till-b", shop["keys"]["other"], sale_id)) == "bad_signature"
    for device_id in ("lk-unpaired", "lk-nobody"):
        reply = ask(api, device_id, shop["keys"]["b"], sale_id)
        assert reply.status_code == 401 and error_code(reply) == "bad_signature"


def test_the_proof_must_name_this_sale_and_be_fresh(api: Api, shop: dict) -> None:
    key, sale_id = shop["keys"]["b"], shop["sale"].sale_id
    now = datetime.now(UTC)
    for skew in (timedelta(minutes=16), -timedelta(minutes=16), timedelta(days=2)):
        stale = ask(api, "lk-till-b", key, sale_id, now - skew)
        assert stale.status_code == 422 and error_code(stale) == "clock_skew"
    assert ask(api, "lk-till-b", key, sale_id, now - timedelta(minutes=14)).status_code == 200
    # a proof signed for another sale (or replayed for this one) does not fit
    request = sale_lookup_request("lk-till-b", key, shop["theirs"].sale_id, now)
    swapped = request.model_copy(update={"sale_id": sale_id})
    reply = api.client.post(SALE_LOOKUP_PATH, content=swapped.model_dump_json())
    assert reply.status_code == 401 and error_code(reply) == "proof_mismatch"
    # a pairing poll token is not a lookup proof (kinds are signed)
    poll = poll_request("lk-till-b", key, now)
    body = {"device_id": "lk-till-b", "sale_id": str(sale_id), "proof": poll.proof}
    assert error_code(api.client.post(SALE_LOOKUP_PATH, json=body)) == "bad_signature"


def test_malformed_requests_are_422(api: Api) -> None:
    for body in (
        {},
        {"device_id": "lk-till-b", "sale_id": "nope", "proof": "a.b"},
        {"device_id": "lk-till-b", "sale_id": str(uuid.uuid4()), "proof": "a.b", "extra": 1},
    ):
        reply = api.client.post(SALE_LOOKUP_PATH, json=body)
        assert reply.status_code == 422 and error_code(reply) == "invalid_request"
    reply = api.client.post(SALE_LOOKUP_PATH, content=b"x" * 20000)
    assert reply.status_code == 413
