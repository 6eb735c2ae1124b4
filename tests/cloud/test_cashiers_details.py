"""Details sets (one per point of sale: an airline session or a counter): a set that names no
operator code carries the cashier's own, and each set may have a free-text session label that
reaches the roster and the API views."""

from __future__ import annotations

from broker.contract.roster import RosterDoc
from tests.cloud.api_support import Api, error_code
from tests.cloud.cashiers_support import new_shop


def test_a_set_without_an_operator_code_carries_the_cashiers_own(api: Api) -> None:
    shop = new_shop(api, "Own Code Co", devices=1)
    dora = shop.create(code="DORA", operator_code="6000", devices="all")
    shown = shop.put_details(dora["id"], "MAIN", terminal_id="T-1")
    shop.put_details(dora["id"], "AIRPORT", terminal_id="SU-7", operator_code="6001")
    assert [(d["point_of_sale_code"], d["operator_code"], d["own_operator_code"]) for d in shown["details"]] == [
        ("MAIN", "6000", True)
    ]
    assert {d["point_of_sale"]: d["operator_code"] for d in shop.listed(shop.devices[0])["DORA"]["details"]} == {
        "AIRPORT": "6001",
        "MAIN": "6000",
    }
    before = shop.versions()[shop.devices[0]]

    # the set follows the cashier's code when it changes; a set naming a code keeps it
    changed = shop.call("PATCH", f"{shop.path}/{dora['id']}", 200, json={"operator_code": "6002"}).json()
    assert [(d["point_of_sale_code"], d["operator_code"], d["own_operator_code"]) for d in changed["details"]] == [
        ("AIRPORT", "6001", False),
        ("MAIN", "6002", True),
    ]
    assert shop.versions()[shop.devices[0]] > before
    assert {d["point_of_sale"]: d["operator_code"] for d in shop.listed(shop.devices[0])["DORA"]["details"]} == {
        "AIRPORT": "6001",
        "MAIN": "6002",
    }
    # only codes given are registered: 6000 (its first own code) stays the cashier's
    assert {code: owner for code, (owner, _at) in shop.registry().items()} == {
        "6000": dora["id"],
        "6001": dora["id"],
        "6002": dora["id"],
    }


def test_session_labels(api: Api) -> None:
    shop = new_shop(api, "Label Co", devices=1)
    eve = shop.create(code="EVE", operator_code="7000", devices="all")
    shown = shop.put_details(eve["id"], "AIRPORT", terminal_id="SU-7", session_label="  Aeroflot SU direct ")
    shop.put_details(eve["id"], "MAIN", terminal_id="T-1", operator_code="7001", session_label="")
    assert [(d["point_of_sale_code"], d["session_label"]) for d in shown["details"]] == [
        ("AIRPORT", "Aeroflot SU direct")
    ]

    listed = shop.listed(shop.devices[0])["EVE"]["details"]
    assert listed == [
        {
            "point_of_sale": "AIRPORT",
            "terminal_id": "SU-7",
            "operator_code": "7000",
            "session_label": "Aeroflot SU direct",
        },
        # no label: the set has exactly the fields older agents know
        {"point_of_sale": "MAIN", "terminal_id": "T-1", "operator_code": "7001"},
    ]
    RosterDoc.model_validate(shop.rosters()[shop.devices[0]][1])
    view = shop.call("GET", f"/companies/{shop.company_id}/devices/{shop.devices[0]}/roster", 200).json()
    assert [(d["point_of_sale"], d["session_label"]) for d in view["cashiers"][0]["details"]] == [
        ("AIRPORT", "Aeroflot SU direct"),
        ("MAIN", None),
    ]

    for label in ("x" * 101, "SU\ndirect", "tab\there"):
        refused = shop.put_details(eve["id"], "AIRPORT", None, terminal_id="SU-7", session_label=label)
        assert (refused.status_code, error_code(refused)) == (422, "cashier.session_label_format"), label
        assert "up to 100 characters" in refused.json()["error"]["message"]
    assert (
        shop.put_details(eve["id"], "AIRPORT", terminal_id="SU-7", session_label="é" * 100)["details"][0][
            "session_label"
        ]
        == "é" * 100
    )
    # PUT replaces the whole set: without a label it has none
    replaced = shop.put_details(eve["id"], "AIRPORT", terminal_id="SU-8")
    assert [(d["terminal_id"], d["session_label"]) for d in replaced["details"]] == [("SU-8", None), ("T-1", None)]
    assert "session_label" not in shop.listed(shop.devices[0])["EVE"]["details"][0]
