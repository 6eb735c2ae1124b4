"""The licence endpoints: sealed and unsealed flows, company view, moves, offline release
upload, a company's release to the partner's stock, and tenant isolation (other partner,
other company, viewer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.licences.binding import bind
from cloud_api.licences.policy import LeaseSigner, LicencePolicy
from cloud_api.licences.records import LicenceRefused
from tests.cloud.api_support import BACKENDS, Api, add_device, error_code
from tests.cloud.licence_support import CLOUD_KEY_ID, DeviceKey, licence_api

VALID_UNTIL = (datetime.now(UTC) + timedelta(days=365)).isoformat()


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, object]]:
    with licence_api(request.param, tmp_path_factory.mktemp("licence-api")) as value:
        yield value


def test_sealed_assigned_bound_moved_and_isolated(env) -> None:
    api, cloud_key = env
    pid, partner = api.partner("Seller")
    _other_pid, other_partner = api.partner("Other seller")
    cid, company = api.company("Shop")
    other_cid, other_company = api.company("Other shop")
    viewer = api.user("company_viewer", company_id=cid)
    api.link(company, cid, partner, pid)

    issued = api.call(
        "POST",
        f"/partners/{pid}/licences",
        api.owner_token,
        201,
        json={"count": 2, "entitlements": {"seats": 2}, "valid_until": VALID_UNTIL},
    ).json()
    assert [(licence["state"], licence["key"]) for licence in issued] == [("sealed", None)] * 2
    assert (
        error_code(api.call("POST", f"/partners/{pid}/licences", partner, 403, json={"valid_until": VALID_UNTIL}))
        == "forbidden"
    )
    stock = api.call("GET", f"/partners/{pid}/licences", partner, 200).json()
    assert {licence["id"] for licence in stock} == {licence["id"] for licence in issued} and all(
        licence["key"] is None for licence in stock
    )
    first, second = issued[0]["id"], issued[1]["id"]

    # Isolation: other partner and other company see nothing; a viewer changes nothing.
    assert error_code(api.call("GET", f"/licences/{first}", other_partner, 404)) == "not_found"
    assert error_code(api.call("POST", f"/licences/{first}/unseal", other_partner, 404)) == "not_found"
    assert error_code(api.call("GET", f"/partners/{pid}/licences", other_partner, 404)) == "not_found"
    assert (
        error_code(api.call("POST", f"/licences/{first}/assign", partner, 409, json={"company_id": other_cid}))
        == "licence.company_not_linked"
    )

    unsealed = api.call("POST", f"/licences/{second}/unseal", partner, 200).json()
    assert unsealed["state"] == "assigned" and kl.normalize_licence_key(unsealed["key"])
    assigned = api.call("POST", f"/licences/{first}/assign", partner, 200, json={"company_id": cid}).json()
    assert (assigned["state"], assigned["company_id"], assigned["key"]) == ("assigned", cid, None)
    mine = api.call("GET", f"/companies/{cid}/licences", company, 200).json()
    assert [licence["id"] for licence in mine] == [first] and mine[0]["key"] is not None
    assert api.call("GET", f"/companies/{cid}/licences", viewer, 200).json()[0]["key"] is None
    assert error_code(api.call("GET", f"/licences/{first}", other_company, 404)) == "not_found"
    assert error_code(api.call("GET", f"/companies/{cid}/licences", other_company, 404)) == "not_found"
    assert [licence["id"] for licence in api.call("GET", f"/partners/{pid}/licences", partner, 200).json()] == [second]

    # A device binds the company's licence (over MQTT in real life), then the company moves it.
    old, new = DeviceKey("api-till-1"), DeviceKey("api-till-2")
    add_device(api, old.device_id, cid)
    add_device(api, new.device_id, cid, public_key=new.public_text)
    policy = LicencePolicy(LeaseSigner(CLOUD_KEY_ID, private_key=cloud_key))
    with Session(api.engine) as session, session.begin():
        bind(session, old.device_id, mine[0]["key"], old.public_text, datetime.now(UTC), policy)
    bound = api.call("GET", f"/licences/{first}", company, 200).json()
    assert (bound["state"], bound["device_id"], bound["epoch"]) == ("bound", old.device_id, 1)
    assert bound["lease_expires_at"] is not None
    assert (
        error_code(api.call("POST", f"/licences/{first}/move", viewer, 403, json={"device_id": new.device_id}))
        == "forbidden"
    )
    assert (
        error_code(api.call("POST", f"/licences/{first}/move", company, 404, json={"device_id": "nope"})) == "not_found"
    )
    moving = api.call("POST", f"/licences/{first}/move", company, 200, json={"device_id": new.device_id}).json()
    assert moving["state"] == "releasing" and moving["releasing"]["to_device_id"] == new.device_id

    # The old device is gone for good: its release file is uploaded by hand.
    receipt = old.receipt(first, 1, datetime.now(UTC))
    file = kl.release_file_text(old.device_id, first, 1, receipt)
    assert (
        error_code(api.call("POST", "/licences/release-receipts", other_company, 404, json=json.loads(file)))
        == "not_found"
    )
    forged = kl.release_file_text(old.device_id, first, 1, new.receipt(first, 1))
    assert (
        error_code(api.call("POST", "/licences/release-receipts", company, 409, json=json.loads(forged)))
        == "licence.receipt_invalid"
    )
    done = api.call("POST", "/licences/release-receipts", company, 200, json=json.loads(file)).json()
    assert done["accepted"] is True
    assert (done["licence"]["state"], done["licence"]["device_id"], done["licence"]["epoch"]) == (
        "bound",
        new.device_id,
        2,
    )
    again = api.call("POST", "/licences/release-receipts", company, 200, json=json.loads(file)).json()
    assert again["accepted"] is False

    trail = api.call("GET", f"/licences/{first}/events", partner, 200).json()
    assert [e["action"] for e in trail] == ["issued", "assigned", "bound", "move_requested", "released"]
    assert trail[-1]["actor"].startswith("user:") and trail[2]["actor"] == f"device:{old.device_id}"
    # The company sees its own part: from the moment the licence was assigned to it.
    assert [e["action"] for e in api.call("GET", f"/licences/{first}/events", company, 200).json()] == [
        e["action"] for e in trail
    ][1:]

    assert error_code(api.call("POST", f"/licences/{first}/revoke", company, 403)) == "forbidden"
    revoked = api.call("POST", f"/licences/{first}/revoke", partner, 200, json={"reason": "unpaid"}).json()
    assert revoked["state"] == "revoked" and revoked["device_id"] is None
    assert error_code(api.call("POST", "/licences/lic_00000000000000000000/unseal", partner, 404)) == "not_found"
    assert error_code(api.call("GET", "/licences/bad id", partner, 422)) == "invalid_request"


def test_the_company_releases_its_licence_to_the_partners_stock(env) -> None:
    """Another company's terminal cannot take a company's licence; the company's admin
    releases it to the partner's stock (the terminal stops first), then another company's
    terminal binds it and the licence is listed under that company."""
    api, cloud_key = env
    pid, partner = api.partner("Release seller")
    a_cid, company_a = api.company("Release shop A")
    c_cid, company_c = api.company("Release shop C")
    a_viewer = api.user("company_viewer", company_id=a_cid)
    api.link(company_a, a_cid, partner, pid)
    issued = api.call(
        "POST", f"/partners/{pid}/licences", api.owner_token, 201, json={"count": 1, "valid_until": VALID_UNTIL}
    ).json()[0]
    licence_id = issued["id"]
    api.call("POST", f"/licences/{licence_id}/assign", partner, 200, json={"company_id": a_cid})
    key = api.call("GET", f"/licences/{licence_id}", company_a, 200).json()["key"]
    till_a, till_c = DeviceKey("rel-till-a"), DeviceKey("rel-till-c")
    add_device(api, till_a.device_id, a_cid)
    add_device(api, till_c.device_id, c_cid)
    policy = LicencePolicy(LeaseSigner(CLOUD_KEY_ID, private_key=cloud_key))

    def enter(till: DeviceKey) -> str:
        """The key typed on `till` (an up/licence bind request): the new state, or the refusal code."""
        try:
            with Session(api.engine) as session, session.begin():
                return bind(session, till.device_id, key, till.public_text, datetime.now(UTC), policy).state
        except LicenceRefused as exc:
            return exc.code

    assert enter(till_a) == "bound"
    assert enter(till_c) == "licence.other_company"
    assert api.call("GET", f"/licences/{licence_id}", company_a, 200).json()["device_id"] == till_a.device_id

    path = f"/licences/{licence_id}/release-to-partner"
    assert error_code(api.call("POST", path, company_c, 404)) == "not_found"
    assert error_code(api.call("POST", path, a_viewer, 403)) == "forbidden"
    assert error_code(api.call("POST", path, partner, 403)) == "forbidden"  # the partner cannot take it back
    releasing = api.call("POST", path, company_a, 200).json()
    assert releasing["state"] == "releasing" and releasing["company_id"] == a_cid
    assert (
        releasing["releasing"]["from_device_id"] == till_a.device_id and releasing["releasing"]["to_device_id"] is None
    )
    assert api.call("POST", path, company_a, 200).json()["releasing"] == releasing["releasing"]  # asked again
    assert enter(till_c) == "licence.returning"

    # The terminal stops and sends its receipt (here: the release file, uploaded by hand).
    receipt = till_a.receipt(licence_id, 1, datetime.now(UTC))
    file = json.loads(kl.release_file_text(till_a.device_id, licence_id, 1, receipt))
    done = api.call("POST", "/licences/release-receipts", company_a, 200, json=file).json()
    assert done["accepted"] is True and (done["licence"]["state"], done["licence"]["company_id"]) == ("assigned", None)
    assert error_code(api.call("GET", f"/licences/{licence_id}", company_a, 404)) == "not_found"
    assert error_code(api.call("POST", path, company_a, 404)) == "not_found"
    stock = {licence["id"]: licence for licence in api.call("GET", f"/partners/{pid}/licences", partner, 200).json()}
    assert stock[licence_id]["state"] == "assigned" and stock[licence_id]["key"] is not None  # unsealed, not sealed

    assert enter(till_c) == "bound"
    mine = api.call("GET", f"/companies/{c_cid}/licences", company_c, 200).json()
    assert [(licence["id"], licence["device_id"], licence["epoch"]) for licence in mine] == [
        (licence_id, till_c.device_id, 2)
    ]
    whole = [e["action"] for e in api.call("GET", f"/licences/{licence_id}/events", partner, 200).json()]
    assert whole == ["issued", "assigned", "bound", "return_requested", "released", "bound"]
    # Company C sees only its own part of the trail: nothing of company A's terminal.
    trail = api.call("GET", f"/licences/{licence_id}/events", company_c, 200).json()
    assert [(e["action"], e["from_device_id"], e["to_device_id"]) for e in trail] == [("bound", None, till_c.device_id)]
