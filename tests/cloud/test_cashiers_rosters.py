"""Roster pushes: every cashier change gives exactly the devices whose roster it changed a
new `cashiers` document version, and pairing gives a new terminal its roster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from broker.contract.roster import RosterDoc
from cloud_api.cashiers import roster, service
from tests.cloud.api_support import BACKENDS, Api, add_device
from tests.cloud.cashiers_support import new_shop
from tests.cloud.pairing_support import Terminal, claim, make_pki, pairing_api, register


def test_each_change_raises_the_version_of_exactly_the_affected_devices(api: Api) -> None:
    shop = new_shop(api, "Push Co", devices=3)
    d1, d2, d3 = shop.devices
    bystander = new_shop(api, "Push Bystander Co", devices=1)
    bystander.create(operator_code="1000", devices="all")
    before_bystander = bystander.versions()

    cashier = shop.create(code="P-1", operator_code="1000", devices=[d1, d2])
    path = f"{shop.path}/{cashier['id']}"
    assert shop.versions() == {d1: 1, d2: 1}
    assert set(shop.listed(d1)) == {"P-1"}

    shop.call("PATCH", path, 200, json={"name": "Renamed"})
    assert shop.versions() == {d1: 2, d2: 2}
    assert shop.listed(d2)["P-1"]["name"] == "Renamed"

    shop.call(
        "PUT", f"{path}/details/{shop.pos_ids['MAIN']}", 200, json={"terminal_id": "T-1", "operator_code": "1001"}
    )
    assert shop.versions() == {d1: 3, d2: 3}

    # moved off d1 onto d3: d1 gets a roster without it, d3 its first one, d2 (unchanged) nothing
    shop.call("PUT", f"{path}/devices", 200, json={"devices": [d2, d3]})
    assert shop.versions() == {d1: 4, d2: 3, d3: 1}
    assert shop.listed(d1) == {} and set(shop.listed(d3)) == {"P-1"}

    shop.call("PATCH", path, 200, json={"enabled": False})
    assert shop.versions() == {d1: 4, d2: 4, d3: 2}
    assert shop.listed(d3)["P-1"]["enabled"] is False  # still listed, so the device says why it refuses

    shop.call("PUT", f"{path}/devices", 200, json={"devices": "all"})
    assert shop.versions() == {d1: 5, d2: 4, d3: 2}
    other = shop.create(code="P-2", operator_code="1002", devices=[d3])
    assert shop.versions() == {d1: 5, d2: 4, d3: 3}
    assert sorted(shop.listed(d3)) == ["P-1", "P-2"]

    shop.call("DELETE", path, 204)
    assert shop.versions() == {d1: 6, d2: 5, d3: 4}
    assert shop.listed(d1) == {} and shop.listed(d2) == {} and set(shop.listed(d3)) == {"P-2"}
    shop.call("PUT", f"{shop.path}/{other['id']}/pin", 204, json={"pin": "2468"})
    assert shop.versions() == {d1: 6, d2: 5, d3: 5}
    assert bystander.versions() == before_bystander
    for device in shop.devices:  # every published document is a valid roster, waiting for the publisher
        _version, doc = shop.rosters()[device]
        RosterDoc.model_validate(doc)
    # refused changes publish nothing
    assert shop.create(None, code="P-3", operator_code="1002").status_code == 409
    assert shop.call("PUT", f"{shop.path}/{other['id']}/devices", json={"devices": ["nope"]}).status_code == 422
    assert shop.versions() == {d1: 6, d2: 5, d3: 5}


def test_all_devices_covers_devices_added_later(api: Api) -> None:
    shop = new_shop(api, "Later Co", devices=1)
    shop.create(code="L-1", operator_code="3000", devices="all")
    shop.create(code="L-2", operator_code="3001", devices=[])
    add_device(api, "later-till", shop.company_id)
    shop.devices.append("later-till")
    with Session(api.engine) as session:
        versions = roster.publish_rosters(session, shop.company_id, ["later-till", "not-ours"])
        session.commit()
    assert versions == {"later-till": 1}
    assert set(shop.listed("later-till")) == {"L-1"}
    with Session(api.engine) as session:  # every device of the company, but only changed rosters
        assert roster.publish_rosters(session, shop.company_id) == {}
        session.commit()
    versions = shop.versions()
    shop.call("PATCH", f"{shop.path}/{shop.call('GET', shop.path, 200).json()[0]['id']}", 200, json={})
    assert shop.versions() == versions  # a change that changes nothing publishes nothing


def test_service_functions_for_other_modules(api: Api) -> None:
    """What an end-to-end test calls: a cashier with a PIN on one device, without HTTP."""
    from broker.contract.roster import hash_pin, verify_pin

    shop = new_shop(api, "Service Co", devices=1)
    with Session(api.engine, expire_on_commit=False) as session:
        cashier = service.create_cashier(
            session,
            shop.company_id,
            service.NewCashier(
                name="Eve",
                code="E-1",
                operator_code="4000",
                roles=["cashier", "refund"],
                devices=[shop.devices[0]],
                pin_hash=hash_pin("4321"),
            ),
        )
        service.put_details(session, shop.company_id, cashier.id, shop.pos_ids["AIRPORT"], "SU-1", "4001")
    listed = shop.listed(shop.devices[0])["E-1"]
    assert verify_pin("4321", listed["pin_hash"]) and listed["roles"] == ["cashier", "refund"]
    assert listed["details"] == [{"point_of_sale": "AIRPORT", "terminal_id": "SU-1", "operator_code": "4001"}]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("cashier-pki"))


@pytest.fixture(scope="module", params=BACKENDS)
def pairing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Api]:
    with pairing_api(request.param, tmp_path_factory.mktemp("cashier-pairing"), pki) as value:
        yield value


def test_a_paired_terminal_gets_its_roster(pairing: Api) -> None:
    shop = new_shop(pairing, "Pairing Roster Co", devices=0)
    shop.create(code="PR-1", operator_code="5000", devices="all")
    shop.create(code="PR-2", operator_code="5001", devices=[])
    till = Terminal(f"c{shop.company_id}-paired")
    register(pairing, till)
    claim(pairing, shop.admin, shop.company_id, till.code, shop.pos_ids["MAIN"])
    shop.devices.append(till.device_id)
    assert shop.versions() == {till.device_id: 1}
    assert set(shop.listed(till.device_id)) == {"PR-1"}
