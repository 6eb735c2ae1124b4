"""The `cashiers` document: details sets with an optional session label, and operator codes
that belong to one cashier (used in several sets of that cashier, never by two cashiers)."""

import json

import pytest
from pydantic import ValidationError

from broker.contract import Parsed, encode, parse_message
from broker.contract.examples import examples
from broker.contract.roster import CashierDetails, RosterDoc, verify_pin


def cashier(cashier_id: str, operator_code: str, *details: dict) -> dict:
    return {
        "cashier_id": cashier_id,
        "name": cashier_id.title(),
        "operator_code": operator_code,
        "roles": ["cashier"],
        "details": list(details),
    }


def details(pos: str, operator_code: str, **extra: object) -> dict:
    return {"point_of_sale": pos, "terminal_id": f"T-{pos}", "operator_code": operator_code, **extra}


def test_a_label_is_optional_and_left_out_when_absent() -> None:
    old = details("MAIN", "1000")  # a set as agents before the label knew it
    assert CashierDetails.model_validate(old).model_dump(mode="json") == old
    assert json.loads(CashierDetails.model_validate(old).model_dump_json()) == old
    labelled = details("AIRPORT", "1000", session_label="Aeroflot SU direct")
    assert CashierDetails.model_validate(labelled).model_dump(mode="json") == labelled
    doc = RosterDoc.model_validate({"cashiers": [cashier("anna", "1000", old, labelled)]})
    assert doc.model_dump(mode="json")["cashiers"][0]["details"] == [old, labelled]


@pytest.mark.parametrize("label", ["", "x" * 101, "two\nlines", 7])
def test_a_bad_label_is_refused(label: object) -> None:
    with pytest.raises(ValidationError):
        CashierDetails.model_validate(details("MAIN", "1000", session_label=label))


def test_one_cashier_may_use_one_code_in_several_sets() -> None:
    doc = {
        "cashiers": [
            cashier(
                "anna",
                "1000",
                details("MAIN", "1000"),
                details("AIRPORT", "1000"),
                details("HARBOUR", "2000"),
                details("STATION", "2000"),
            ),
            cashier("ben", "1001", details("MAIN", "2001")),
        ]
    }
    assert len(RosterDoc.model_validate(doc).cashiers) == 2


@pytest.mark.parametrize(
    "ben",
    [
        cashier("ben", "1001", details("MAIN", "1000")),  # Anna's own code in Ben's set
        cashier("ben", "1001", details("MAIN", "2000")),  # Anna's details code in Ben's set
        cashier("ben", "2000"),  # Anna's details code as Ben's own
    ],
)
def test_two_cashiers_never_share_a_code(ben: dict) -> None:
    doc = {"cashiers": [cashier("anna", "1000", details("AIRPORT", "2000")), ben]}
    with pytest.raises(ValidationError, match="belongs to two cashiers"):
        RosterDoc.model_validate(doc)


def test_the_example_document_is_a_valid_roster() -> None:
    """docs/protocol.md shows it: the device's domain module must accept it as it is."""
    example = next(e for e in examples() if e.name == "down.state.cashiers")
    parsed = parse_message(example.envelope.topic, encode(example.envelope))
    assert isinstance(parsed, Parsed)
    doc = RosterDoc.model_validate(parsed.envelope.body.doc)
    assert [d.session_label for d in doc.cashiers[0].details] == ["Aeroflot SU direct", None]
    assert verify_pin("4711", doc.cashiers[0].pin_hash)
