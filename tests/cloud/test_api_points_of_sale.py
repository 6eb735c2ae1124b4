"""The points-of-sale routes of the JSON API: rename, recode, archive, restore and the archived
filter, on the same rules as the company cabinet (cloud_api/tenancy/points_of_sale.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.accounts.models import AuditEvent
from tests.cloud.api_support import Api, add_device, error_code


def test_rename_recode_archive_and_restore(api: Api) -> None:
    cid, admin = api.company("Pos Api Ltd")
    base = f"/companies/{cid}/points-of-sale"
    main = api.call("POST", base, admin, 201, json={"name": "Main", "code": "MAIN"}).json()
    kiosk = api.call("POST", base, admin, 201, json={"name": "Kiosk", "code": "KIOSK"}).json()
    assert main["archived_at"] is None

    edited = api.call("PATCH", f"{base}/{main['id']}", admin, 200, json={"name": "Main 5", "code": "MAIN-5"}).json()
    assert (edited["name"], edited["code"]) == ("Main 5", "MAIN-5")
    taken = api.call("PATCH", f"{base}/{main['id']}", admin, 409, json={"name": "Main 5", "code": "KIOSK"})
    assert error_code(taken) == "code_taken"

    add_device(api, f"pos-api-{cid}", cid, main["id"])
    in_use = api.call("PATCH", f"{base}/{main['id']}", admin, 409, json={"name": "Main 5", "code": "MAIN-6"})
    assert error_code(in_use) == "code_in_use" and "Move the devices" in in_use.json()["error"]["message"]
    api.call("PATCH", f"{base}/{main['id']}", admin, 200, json={"name": "Main street 5", "code": "MAIN-5"})

    refused = api.call("POST", f"{base}/{main['id']}/archive", admin, 409)
    assert error_code(refused) == "point_of_sale_in_use"
    assert "Move its devices to another point of sale first" in refused.json()["error"]["message"]
    archived = api.call("POST", f"{base}/{kiosk['id']}/archive", admin, 200).json()
    assert archived["archived_at"] is not None
    again = api.call("POST", f"{base}/{kiosk['id']}/archive", admin, 200).json()
    assert again["archived_at"] == archived["archived_at"]

    def codes(archived: str | None) -> list[str]:
        query = f"?archived={archived}" if archived else ""
        return [pos["code"] for pos in api.call("GET", base + query, admin, 200).json()]

    assert codes(None) == codes("all") == ["MAIN-5", "KIOSK"]
    assert codes("false") == ["MAIN-5"] and codes("true") == ["KIOSK"]
    api.call("GET", f"{base}?archived=maybe", admin, 422)

    restored = api.call("POST", f"{base}/{kiosk['id']}/restore", admin, 200).json()
    assert restored["archived_at"] is None and codes("true") == []
    with Session(api.engine) as db:
        logged = list(
            db.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.org_level == "company", AuditEvent.org_id == cid)
                .where(AuditEvent.target.in_([f"point of sale {main['id']}", f"point of sale {kiosk['id']}"]))
                .order_by(AuditEvent.id)
            )
        )
    assert logged == ["point_of_sale.created"] * 2 + ["point_of_sale.edited"] * 2 + [
        "point_of_sale.archived",
        "point_of_sale.restored",
    ]


def test_viewers_partners_and_other_companies_may_not(api: Api) -> None:
    cid, admin = api.company("Pos Rights Ltd")
    base = f"/companies/{cid}/points-of-sale"
    pos = api.call("POST", base, admin, 201, json={"name": "Main", "code": "MAIN"}).json()
    viewer = api.user("company_viewer", company_id=cid)
    pid, partner = api.partner("Pos Rights Partner")
    api.link(admin, cid, partner, pid)
    _other, stranger = api.company("Pos Stranger Ltd")
    body = {"name": "Renamed", "code": "MAIN"}
    for token, status in [(viewer, 403), (partner, 403), (stranger, 404)]:
        assert error_code(api.call("PATCH", f"{base}/{pos['id']}", token, status, json=body))
        for action in ("archive", "restore"):
            api.call("POST", f"{base}/{pos['id']}/{action}", token, status)
    api.call("PATCH", f"{base}/999999", admin, 404, json=body)
    owner_did = api.call("PATCH", f"{base}/{pos['id']}", api.owner_token, 200, json=body).json()
    assert owner_did["name"] == "Renamed"
