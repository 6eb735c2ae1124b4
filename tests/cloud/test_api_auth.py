"""Bearer tokens: required everywhere, stored hashed, shown once, revocable; roles gate actions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.main import main as cloud_main
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import ApiToken, User
from tests.cloud.api_support import Api, auth, error_code

PROTECTED = [
    ("GET", "/me"),
    ("GET", "/users"),
    ("GET", "/partners"),
    ("POST", "/partners"),
    ("GET", "/companies"),
    ("GET", "/companies/1/sales"),
    ("GET", "/links"),
    ("POST", "/links/1/accept"),
    ("DELETE", "/tokens/1"),
]


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer kst_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer " + "x" * 500]
)
def test_every_endpoint_needs_a_valid_bearer_token(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in PROTECTED:
        reply = api.client.request(method, path, headers=headers)
        assert reply.status_code == 401, (method, path, reply.text)
        assert error_code(reply) == "unauthenticated"
        assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_openapi_declares_bearer_auth(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"security"} <= set(spec["paths"]["/companies/{company_id}/sales"]["get"])


def test_me_describes_the_token_owner(api: Api) -> None:
    me = api.call("GET", "/me", api.owner_token, 200).json()
    assert me["role"] == "owner_admin" and me["partner_id"] is None and me["company_id"] is None


def test_tokens_are_stored_only_as_sha256(api: Api) -> None:
    cid, token = api.company("Hashed Co")
    me = api.call("GET", "/me", token, 200).json()
    with api.engine.connect() as conn:
        rows = conn.execute(select(ApiToken.token_hash, ApiToken.prefix).where(ApiToken.user_id == me["id"])).all()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), token[:12])]
    assert me["company_id"] == cid


def test_issue_list_and_revoke_tokens(api: Api) -> None:
    _cid, admin = api.company("Token Co")
    me = api.call("GET", "/me", admin, 200).json()
    issued = api.call("POST", f"/users/{me['id']}/tokens", admin, 201, json={"label": "ci"}).json()
    second = issued["token"]
    assert re.fullmatch(r"kst_[A-Za-z0-9_-]{43}", second)
    api.call("GET", "/me", second, 200)
    listed = api.call("GET", f"/users/{me['id']}/tokens", admin, 200).json()
    assert [t["label"] for t in listed] == ["first", "ci"]
    assert all("token" not in t and "token_hash" not in t for t in listed)  # shown once only
    revoked = api.call("DELETE", f"/tokens/{issued['info']['id']}", admin, 200).json()
    assert revoked["revoked_at"] is not None
    assert error_code(api.call("GET", "/me", second, 401)) == "unauthenticated"
    api.call("GET", "/me", admin, 200)  # the other token still works


def test_roles_gate_user_creation(api: Api) -> None:
    pid, partner = api.partner("Gate Partner")
    cid, company_admin = api.company("Gate Co")
    other_cid, _ = api.company("Other Gate Co")
    viewer = api.user("company_viewer", company_admin, company_id=cid)
    # a company admin makes users of its own company only, never a partner or owner admin
    assert (
        error_code(api.call("POST", "/users", company_admin, 403, json={"name": "x", "role": "owner_admin"}))
        == "forbidden"
    )
    # (partners are a directory companies can see, so that one is a 403, not a 404)
    api.call("POST", "/users", company_admin, 403, json={"name": "x", "role": "partner_admin", "partner_id": pid})
    api.call(
        "POST", "/users", company_admin, 404, json={"name": "x", "role": "company_viewer", "company_id": other_cid}
    )
    api.call("POST", "/users", viewer, 403, json={"name": "x", "role": "company_viewer", "company_id": cid})
    # a partner admin adds admins to its own partner
    api.call("POST", "/users", partner, 201, json={"name": "x", "role": "partner_admin", "partner_id": pid})
    api.call("POST", "/users", partner, 404, json={"name": "x", "role": "company_admin", "company_id": cid})
    # the tenant ids must match the role
    reply = api.call(
        "POST", "/users", api.owner_token, 422, json={"name": "x", "role": "company_admin", "partner_id": pid}
    )
    assert error_code(reply) == "invalid_request"


def test_viewer_reads_but_cannot_write(api: Api) -> None:
    cid, admin = api.company("Viewer Co")
    viewer = api.user("company_viewer", admin, company_id=cid)
    api.call("GET", f"/companies/{cid}/points-of-sale", viewer, 200)
    reply = api.call("POST", f"/companies/{cid}/points-of-sale", viewer, 403, json={"name": "Shop", "code": "S1"})
    assert error_code(reply) == "forbidden"
    api.call("POST", "/partners", viewer, 403, json={"name": "nope"})
    api.call("POST", "/companies", admin, 403, json={"name": "nope"})
    me = api.call("GET", "/me", viewer, 200).json()
    api.call("GET", f"/users/{me['id']}/tokens", viewer, 200)  # its own tokens
    admin_id = api.call("GET", "/me", admin, 200).json()["id"]
    api.call("GET", f"/users/{admin_id}/tokens", viewer, 403)


def test_users_are_tenant_scoped(api: Api) -> None:
    cid, admin = api.company("Users A")
    _other, other_admin = api.company("Users B")
    other_id = api.call("GET", "/me", other_admin, 200).json()["id"]
    listed = api.call("GET", "/users", admin, 200).json()
    assert {u["company_id"] for u in listed} == {cid}
    assert error_code(api.call("GET", f"/users/{other_id}", admin, 404)) == "not_found"


def test_owner_create_cli_prints_a_working_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cloud_main(["owner", "create", "--name", "Kassa Ltd", "--database-url", url]) == 0
    out = capsys.readouterr().out
    token = re.search(r"^(kst_\S+)$", out, re.M).group(1)
    assert cloud_main(["--database-url", url, "owner", "create", "--name", "Bad\x00name"]) == 2
    engine = make_engine(url)
    try:
        with TestClient(create_app(CloudSettings(database_url=url), engine)) as client:
            me = client.get("/me", headers=auth(token))
            assert me.status_code == 200 and me.json()["role"] == "owner_admin"
        with engine.connect() as conn:
            assert conn.execute(select(User.name)).scalars().all() == ["Kassa Ltd admin"]
    finally:
        engine.dispose()
