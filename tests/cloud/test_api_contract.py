"""Contract test: schemathesis generates requests from the app's own OpenAPI spec (valid and
invalid ones) and sends them through the ASGI transport with a valid owner token. No request
may cause a 5xx, and every error must have the documented JSON shape.

Driven with hypothesis directly (one test per operation and backend) rather than through
schemathesis' pytest plugin, whose fixture support does not work with pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.settings import CloudSettings
from tests.cloud.api_support import BACKENDS, Api, auth
from tests.cloud.pairing_support import make_pki, pairing_api

EXAMPLES_PER_MODE = 6


def operation_labels() -> list[str]:
    spec = create_app(CloudSettings(), make_engine("sqlite://")).openapi()
    return [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item]


@pytest.fixture(scope="module", params=BACKENDS)
def contract_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # With a device CA, as a cloud that pairs terminals runs: pairing, renewal, revocation and the
    # CRL answer for real instead of 503.
    pki = make_pki(tmp_path_factory.mktemp("contract-pki"))
    with pairing_api(request.param, tmp_path_factory.mktemp("contract"), pki) as api:
        # objects for generated ids to hit (ids 1 and 2 exist for most kinds)
        for n in (1, 2):
            pid, _ = api.partner(f"Contract partner {n}")
            cid, company = api.company(f"Contract company {n}")
            api.call("POST", f"/companies/{cid}/points-of-sale", company, 201, json={"name": "Main", "code": "MAIN"})
            api.call("POST", f"/companies/{cid}/link-requests", company, 201, json={"partner_id": pid})
        yield api


@pytest.fixture(scope="module")
def contract_schema(contract_api: Api):
    return schemathesis.openapi.from_asgi("/openapi.json", contract_api.client.app)


@pytest.mark.parametrize("label", operation_labels())
def test_no_server_error(label: str, contract_api: Api, contract_schema) -> None:
    method, path = label.split(" ", 1)
    operation = contract_schema[path][method]
    headers = auth(contract_api.owner_token)
    seen: list[int] = []

    for mode in GenerationMode:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(headers={**(case.headers or {}), **headers})
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body, response.text)
            if response.status_code >= 400 and path != "/healthz":
                body = response.json()
                assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body

        try:
            check()
        except Unsatisfiable:
            # Nothing to make invalid: the operation takes no parameters and no body.
            assert mode is GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters")
    assert seen  # the operation was exercised


def test_spec_lists_every_area() -> None:
    paths = {label.split(" ", 1)[1] for label in operation_labels()}
    assert {
        "/me",
        "/users",
        "/partners",
        "/companies/{company_id}/points-of-sale",
        "/companies/{company_id}/link-requests",
        "/links/{link_id}/accept",
        "/companies/{company_id}/devices",
        "/companies/{company_id}/sales",
        "/healthz",
    } <= paths
