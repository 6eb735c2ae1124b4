"""Tenant isolation: partners, companies, points of sale and devices of one tenant are
invisible (404, like missing objects) to another."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tests.cloud.api_support import Api, add_device, error_code


def test_partner_sees_only_its_linked_companies(api: Api) -> None:
    pid_a, partner_a = api.partner("Partner A")
    pid_b, partner_b = api.partner("Partner B")
    cid_a, company_a = api.company("Client of A")
    cid_b, company_b = api.company("Client of B")
    api.link(company_a, cid_a, partner_a, pid_a)
    api.link(company_b, cid_b, partner_b, pid_b)
    assert [c["id"] for c in api.call("GET", "/companies", partner_a, 200).json()] == [cid_a]
    assert [c["id"] for c in api.call("GET", "/companies", partner_b, 200).json()] == [cid_b]
    assert api.call("GET", f"/companies/{cid_a}", partner_a, 200).json()["name"] == "Client of A"
    assert error_code(api.call("GET", f"/companies/{cid_b}", partner_a, 404)) == "not_found"
    # the other partner itself is not visible either, and its links are not listed
    assert [p["id"] for p in api.call("GET", "/partners", partner_a, 200).json()] == [pid_a]
    api.call("GET", f"/partners/{pid_b}", partner_a, 404)
    assert {link["partner_id"] for link in api.call("GET", "/links", partner_a, 200).json()} == {pid_a}


def test_partner_sees_the_company_but_not_its_data(api: Api) -> None:
    pid, partner = api.partner("Data Partner")
    cid, company = api.company("Data Client")
    api.link(company, cid, partner, pid)
    for path in ("points-of-sale", "devices", "sales"):
        assert error_code(api.call("GET", f"/companies/{cid}/{path}", partner, 403)) == "forbidden"


def test_company_cannot_read_another_company(api: Api) -> None:
    cid_a, company_a = api.company("Shop A")
    cid_b, company_b = api.company("Shop B")
    pos_b = api.call(
        "POST", f"/companies/{cid_b}/points-of-sale", company_b, 201, json={"name": "B main", "code": "B-MAIN"}
    ).json()
    add_device(api, "till-b-1", cid_b, pos_b["id"])
    assert [c["id"] for c in api.call("GET", "/companies", company_a, 200).json()] == [cid_a]
    not_found = [
        f"/companies/{cid_b}",
        f"/companies/{cid_b}/points-of-sale",
        f"/companies/{cid_b}/points-of-sale/{pos_b['id']}",
        f"/companies/{cid_b}/devices",
        f"/companies/{cid_b}/devices/till-b-1",
        f"/companies/{cid_b}/sales",
        f"/companies/{cid_b}/sales?format=csv",
        f"/companies/{cid_a}/points-of-sale/{pos_b['id']}",
        f"/companies/{cid_a}/devices/till-b-1",
        "/companies/999999",
    ]
    for path in not_found:
        reply = api.call("GET", path, company_a, 404)
        assert error_code(reply) == "not_found", path
    # the same answers as for an id that never existed: nothing leaks
    assert api.call("GET", f"/companies/{cid_b}", company_a).json()["error"]["message"] == f"company {cid_b} not found"
    api.call("POST", f"/companies/{cid_b}/points-of-sale", company_a, 404, json={"name": "x", "code": "X"})
    # filtering own sales by another company's point of sale or device finds nothing
    api.call("GET", f"/companies/{cid_a}/sales?point_of_sale={pos_b['id']}", company_a, 404)
    assert api.call("GET", f"/companies/{cid_a}/sales?device=till-b-1", company_a, 200).json()["items"] == []


def test_points_of_sale_and_devices(api: Api) -> None:
    cid, admin = api.company("Stores Co")
    main = api.call(
        "POST", f"/companies/{cid}/points-of-sale", admin, 201, json={"name": "Main street", "code": "MAIN"}
    ).json()
    kiosk = api.call(
        "POST", f"/companies/{cid}/points-of-sale", api.owner_token, 201, json={"name": "Kiosk", "code": "KIOSK"}
    ).json()
    assert main["company_id"] == cid and main["code"] == "MAIN"
    reply = api.call("POST", f"/companies/{cid}/points-of-sale", admin, 409, json={"name": "Again", "code": "MAIN"})
    assert error_code(reply) == "code_taken"
    listed = api.call("GET", f"/companies/{cid}/points-of-sale", admin, 200).json()
    assert [p["code"] for p in listed] == ["MAIN", "KIOSK"]
    add_device(api, "stores-1", cid, main["id"], public_key="MCowBQYDK2VwAyEA")
    add_device(api, "stores-2", cid, kiosk["id"])
    add_device(api, "stores-3", cid)
    devices = api.call("GET", f"/companies/{cid}/devices", admin, 200).json()
    assert [(d["device_id"], d["point_of_sale_id"], d["paired"]) for d in devices] == [
        ("stores-1", main["id"], True),
        ("stores-2", kiosk["id"], False),
        ("stores-3", None, False),
    ]
    at_kiosk = api.call("GET", f"/companies/{cid}/devices?point_of_sale={kiosk['id']}", admin, 200).json()
    assert [d["device_id"] for d in at_kiosk] == ["stores-2"]
    assert api.call("GET", f"/companies/{cid}/devices/stores-3", admin, 200).json()["company_id"] == cid
    api.call("GET", f"/companies/{cid}/devices/no-such-till", admin, 404)


def test_owner_sees_everything_of_its_own_platform_only(api: Api) -> None:
    cid, _ = api.company("Owner view")
    pid, _ = api.partner("Owner view partner")
    assert cid in [c["id"] for c in api.call("GET", "/companies", api.owner_token, 200).json()]
    assert pid in [p["id"] for p in api.call("GET", "/partners", api.owner_token, 200).json()]
    # a second owner (another platform) in the same database sees none of it
    from cloud_api.tenancy.tokens import create_owner

    with Session(api.engine) as session:
        _o, _u, other_owner = create_owner(session, "Other platform")
    assert api.call("GET", "/companies", other_owner, 200).json() == []
    api.call("GET", f"/companies/{cid}", other_owner, 404)
    api.call("GET", f"/partners/{pid}", other_owner, 404)
    api.call("POST", "/users", other_owner, 404, json={"name": "x", "role": "company_admin", "company_id": cid})


def test_bad_input_is_a_4xx_with_an_error_code(api: Api) -> None:
    cases = [
        ("POST", "/partners", {"name": ""}),
        ("POST", "/partners", {"name": "a\x00b"}),
        ("POST", "/partners", {"name": "x" * 201}),
        ("POST", "/partners", {"name": "ok", "extra": 1}),
        ("POST", "/companies", None),
        ("GET", "/companies/0", None),
        ("GET", f"/companies/{2**40}", None),
        ("GET", "/companies/abc", None),
    ]
    for method, path, body in cases:
        reply = api.call(method, path, api.owner_token, 422, json=body)
        assert error_code(reply) == "invalid_request", (path, body)
    assert error_code(api.call("GET", "/nowhere", api.owner_token, 404)) == "not_found"
    assert error_code(api.call("PUT", "/partners", api.owner_token, 405)) == "method_not_allowed"
