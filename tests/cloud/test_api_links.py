"""Company <-> partner links: the company asks, the partner accepts or rejects, either ends."""

from __future__ import annotations

from tests.cloud.api_support import Api, error_code


def request(api: Api, token: str, company_id: int, partner_id: int, expect: int = 201) -> dict:
    return api.call(
        "POST",
        f"/companies/{company_id}/link-requests",
        token,
        expect,
        json={"partner_id": partner_id, "message": "please serve us"},
    ).json()


def test_request_accept_and_end_by_either_side(api: Api) -> None:
    pid, partner = api.partner("Link P")
    cid, company = api.company("Link C")
    link = request(api, company, cid, pid)
    assert (link["state"], link["company_id"], link["partner_id"]) == ("pending", cid, pid)
    # pending: the partner does not see the company yet
    api.call("GET", f"/companies/{cid}", partner, 404)
    assert [x["id"] for x in api.call("GET", "/links?state=pending", partner, 200).json()] == [link["id"]]
    accepted = api.call("POST", f"/links/{link['id']}/accept", partner, 200).json()
    assert accepted["state"] == "active" and accepted["decided_at"] is not None
    api.call("GET", f"/companies/{cid}", partner, 200)
    ended = api.call("POST", f"/links/{link['id']}/end", partner, 200).json()
    assert ended["state"] == "ended" and ended["closed_at"] is not None
    api.call("GET", f"/companies/{cid}", partner, 404)
    # a new request after the end; this time the company ends it
    again = request(api, company, cid, pid)
    api.call("POST", f"/links/{again['id']}/accept", partner, 200)
    assert api.call("POST", f"/links/{again['id']}/end", company, 200).json()["state"] == "ended"
    assert error_code(api.call("POST", f"/links/{again['id']}/end", company, 409)) == "link_state"
    states = [x["state"] for x in api.call("GET", "/links", company, 200).json()]
    assert states == ["ended", "ended"]


def test_reject_and_withdraw(api: Api) -> None:
    pid, partner = api.partner("Picky P")
    cid, company = api.company("Hopeful C")
    link = request(api, company, cid, pid)
    assert error_code(api.call("POST", f"/links/{link['id']}/end", partner, 409)) == "link_state"
    rejected = api.call("POST", f"/links/{link['id']}/reject", partner, 200).json()
    assert rejected["state"] == "rejected"
    assert error_code(api.call("POST", f"/links/{link['id']}/accept", partner, 409)) == "link_state"
    api.call("GET", f"/companies/{cid}", partner, 404)
    second = request(api, company, cid, pid)
    assert api.call("POST", f"/links/{second['id']}/end", company, 200).json()["state"] == "withdrawn"
    api.call("POST", f"/links/{second['id']}/accept", partner, 409)


def test_one_open_link_per_company(api: Api) -> None:
    pid_a, _partner_a = api.partner("First P")
    pid_b, _partner_b = api.partner("Second P")
    cid, company = api.company("Loyal C")
    request(api, company, cid, pid_a)
    reply = api.call("POST", f"/companies/{cid}/link-requests", company, 409, json={"partner_id": pid_b})
    assert error_code(reply) == "link_exists"


def test_only_the_two_sides_act(api: Api) -> None:
    pid, partner = api.partner("Side P")
    pid_other, partner_other = api.partner("Outsider P")
    cid, company = api.company("Side C")
    viewer = api.user("company_viewer", company, company_id=cid)
    # the owner and a viewer do not ask on a company's behalf; a partner cannot ask either
    api.call("POST", f"/companies/{cid}/link-requests", api.owner_token, 403, json={"partner_id": pid})
    api.call("POST", f"/companies/{cid}/link-requests", viewer, 403, json={"partner_id": pid})
    api.call("POST", f"/companies/{cid}/link-requests", partner, 404, json={"partner_id": pid})
    api.call("POST", f"/companies/{cid}/link-requests", company, 404, json={"partner_id": 999999})
    link = request(api, company, cid, pid)
    # the company cannot accept its own request; another partner cannot see it at all
    assert error_code(api.call("POST", f"/links/{link['id']}/accept", company, 403)) == "forbidden"
    assert error_code(api.call("POST", f"/links/{link['id']}/accept", partner_other, 404)) == "not_found"
    api.call("GET", f"/links/{link['id']}", partner_other, 404)
    api.call("POST", f"/links/{link['id']}/accept", api.owner_token, 403)
    api.call("POST", f"/links/{link['id']}/accept", partner, 200)
    api.call("POST", f"/links/{link['id']}/end", viewer, 403)
    api.call("POST", f"/links/{link['id']}/end", partner_other, 404)
    assert api.call("GET", f"/links/{link['id']}", api.owner_token, 200).json()["state"] == "active"
    assert pid_other not in [x["partner_id"] for x in api.call("GET", "/links", company, 200).json()]
