"""Schemathesis on the cashier endpoints with cashiers, details and events that exist (the
shared contract test has none): generated valid and invalid requests never cause a 5xx, and
every error has the documented shape and a code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.cloud.api_support import BACKENDS, Api, api_for, auth
from tests.cloud.cashiers_support import new_shop
from tests.cloud.test_api_contract import operation_labels

EXAMPLES_PER_MODE = 8
LABELS = [label for label in operation_labels() if "/cashiers" in label or label.endswith("/roster")]


@pytest.fixture(scope="module", params=BACKENDS)
def cashier_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with api_for(request.param, tmp_path_factory.mktemp("cashier-contract")) as api:
        # company 1 and 2, points of sale 1..4, cashiers 1..4, devices c1-till-1.. so generated ids hit
        for n in (1, 2):
            shop = new_shop(api, f"Contract cashiers {n}", devices=2)
            for m in (1, 2):
                cashier = shop.create(code=f"K{n}{m}", operator_code=f"{n}{m}00", devices="all", pin="1234")
                shop.call(
                    "PUT",
                    f"{shop.path}/{cashier['id']}/details/{shop.pos_ids['MAIN']}",
                    200,
                    json={"terminal_id": "T-1", "operator_code": f"{n}{m}01"},
                )
        yield api


@pytest.fixture(scope="module")
def cashier_schema(cashier_api: Api):
    return schemathesis.openapi.from_asgi("/openapi.json", cashier_api.client.app)


@pytest.mark.parametrize("label", LABELS)
def test_no_server_error(label: str, cashier_api: Api, cashier_schema) -> None:
    method, path = label.split(" ", 1)
    operation = cashier_schema[path][method]
    headers = auth(cashier_api.owner_token)
    seen: list[int] = []

    for mode in GenerationMode:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case, mode: GenerationMode) -> None:  # the mode is an argument: @given allows no defaults
            if mode is GenerationMode.POSITIVE:
                _aim_at_existing_objects(case, method)
            response = case.call(headers={**(case.headers or {}), **headers})
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body

        try:
            check(mode=mode)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE
    assert seen


def _aim_at_existing_objects(case, method: str) -> None:
    """Valid requests go to company 1's objects, so they reach the service, not a 404.
    Deleting takes cashier 2, so cashier 1 lives on for the other operations."""
    known = {
        "company_id": 1,
        "cashier_id": 2 if method == "DELETE" and case.path.endswith("{cashier_id}") else 1,
        "point_of_sale_id": 1,
        "device_id": "c1-till-1",
    }
    case.path_parameters = {name: known.get(name, value) for name, value in (case.path_parameters or {}).items()}


def test_every_cashier_route_is_fuzzed() -> None:
    assert len(LABELS) == 12, LABELS
