"""Licence documents over the JSON API, on SQLite and PostgreSQL: the owner sells, a partner
moves and unseals; the same service functions as the cabinets; a request sent twice makes one
document; every change leaves an audit row naming the token."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.accounts.models import AuditEvent
from cloud_api.licences.models import Licence, LicenceState
from tests.cloud.api_support import Api, error_code
from tests.cloud.api_support import api as api

NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()
INN = "7707083893"


def _sold(api: Api, name: str, quantity: int = 4) -> tuple[int, str, dict]:
    partner_id, partner_token = api.partner(name)
    sale = api.call(
        "POST",
        "/licence-documents/sales",
        api.owner_token,
        201,
        json={
            "partner_id": partner_id,
            "quantity": quantity,
            "valid_until": NEXT_YEAR,
            "request_id": f"sale-{name.replace(' ', '-')}",
        },
    ).json()
    return partner_id, partner_token, sale


def test_sell_move_unseal_and_read_back(api: Api) -> None:
    partner_id, partner_token, sale = _sold(api, "Docs partner")
    assert sale["number"].startswith("S-") and sale["quantity"] == 4 and len(sale["licence_ids"]) == 4
    company_id, company_token = api.company("Docs company")
    api.link(company_token, company_id, partner_token, partner_id)

    moved = api.call(
        "POST", "/licence-documents/moves", partner_token, 201, json={"company_id": company_id, "quantity": 2}
    ).json()
    assert moved["number"].startswith("M-") and moved["company_id"] == company_id
    assert moved["licence_ids"] == sorted(sale["licence_ids"])[:2]  # the oldest of the stock first
    unsealed = api.call(
        "POST",
        "/licence-documents/unsealings",
        partner_token,
        201,
        json={"firm_name": "ООО Покупатель", "tax_number": INN, "buyer_email": "Buyer@Firm.test"},
    ).json()
    assert unsealed["document"]["buyer_email"] == "buyer@firm.test"
    assert len(unsealed["key"]) == 19  # XXXX-XXXX-XXXX-XXXX

    again = api.call("POST", f"/licences/{unsealed['licence_id']}/key", partner_token, 200).json()
    assert again["key"] == unsealed["key"]
    numbers = {d["number"] for d in api.call("GET", "/licence-documents", partner_token, 200).json()}
    assert {sale["number"], moved["number"], unsealed["document"]["number"]} <= numbers
    company_view = api.call("GET", "/licence-documents", company_token, 200).json()
    assert [d["number"] for d in company_view] == [moved["number"]]  # a company sees only what it received
    with Session(api.engine) as db:
        held = db.scalar(select(func.count()).select_from(Licence).where(Licence.company_id == company_id))
        actions = list(
            db.scalars(
                select(AuditEvent.action).where(AuditEvent.org_level == "partner", AuditEvent.org_id == partner_id)
            )
        )
        actors = set(db.scalars(select(AuditEvent.actor).where(AuditEvent.org_id == partner_id)))
    assert held == 2
    assert {"licences.received", "licences.moved", "licence.unsealed", "licence.key_shown"} <= set(actions)
    assert all(actor.startswith("token kst_") for actor in actors)


def test_a_request_sent_twice_makes_one_document(api: Api) -> None:
    partner_id, partner_token, sale = _sold(api, "Twice partner")
    repeat = api.call(
        "POST",
        "/licence-documents/sales",
        api.owner_token,
        201,
        json={"partner_id": partner_id, "quantity": 4, "valid_until": NEXT_YEAR, "request_id": "sale-Twice-partner"},
    ).json()
    assert repeat["id"] == sale["id"]
    body = {"firm_name": "Firm", "tax_number": INN, "buyer_email": "b@firm.test", "request_id": "unseal-once-1"}
    first = api.call("POST", "/licence-documents/unsealings", partner_token, 201, json=body).json()
    second = api.call("POST", "/licence-documents/unsealings", partner_token, 201, json=body).json()
    assert second["document"]["id"] == first["document"]["id"] and second["key"] == first["key"]
    with Session(api.engine) as db:
        states = dict(
            db.execute(
                select(Licence.state, func.count()).where(Licence.partner_id == partner_id).group_by(Licence.state)
            ).all()
        )
    assert states == {LicenceState.SEALED: 3, LicenceState.ASSIGNED: 1}


def test_refusals_say_what_to_do(api: Api) -> None:
    partner_id, partner_token, _sale = _sold(api, "Refusing partner", quantity=1)
    company_id, company_token = api.company("Unlinked company")
    unlinked = api.call(
        "POST", "/licence-documents/moves", partner_token, json={"company_id": company_id, "quantity": 1}
    )
    assert (unlinked.status_code, error_code(unlinked)) == (422, "invalid_request")
    api.link(company_token, company_id, partner_token, partner_id)
    too_many = api.call(
        "POST", "/licence-documents/moves", partner_token, json={"company_id": company_id, "quantity": 5}
    )
    assert (too_many.status_code, error_code(too_many)) == (409, "document.stock")
    assert "1 sealed licences" in too_many.json()["error"]["message"]
    bad_inn = api.call(
        "POST",
        "/licence-documents/unsealings",
        partner_token,
        json={"firm_name": "F", "tax_number": "1234567890", "buyer_email": "b@f.test"},
    )
    assert bad_inn.status_code == 422 and "INN" in bad_inn.json()["error"]["message"]
    as_company = api.call(
        "POST",
        "/licence-documents/sales",
        company_token,
        json={"partner_id": partner_id, "quantity": 1, "valid_until": NEXT_YEAR},
    )
    assert (as_company.status_code, error_code(as_company)) == (403, "forbidden")
    other_partner_id, other_token = api.partner("Other partner")
    sale_of_first = api.call("GET", "/licence-documents", partner_token, 200).json()[0]
    hidden = api.call("GET", f"/licence-documents/{sale_of_first['id']}", other_token)
    assert (hidden.status_code, error_code(hidden)) == (404, "not_found")
    assert other_partner_id != partner_id
