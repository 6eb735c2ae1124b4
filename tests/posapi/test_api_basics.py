"""The POS API without a cloud: tokens, status, errors, CORS, TLS rules, the route table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.config import ConfigError, load_config
from agent.ctl import main as kassactl
from agent.ctl_client import ControlClient, ControlError
from agent.posapi.routes import table
from tests.posapi.support import Pos, api_url, create_pos_token, terminal_config
from tests.support.agent_process import REPO_ROOT
from tests.support.inprocess import InProcessAgent

ORIGIN = "http://127.0.0.1:9999"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[InProcessAgent]:
    running = InProcessAgent(terminal_config(tmp_path / "agent", None, None, cors=[ORIGIN])).start()
    yield running
    running.stop()


@pytest.fixture
def pos(terminal: InProcessAgent) -> Iterator[Pos]:
    socket = terminal.config.paths.control_socket
    client = Pos(api_url(socket), create_pos_token(socket))
    yield client
    client.close()


def test_status_needs_a_pos_token(pos: Pos) -> None:
    status = pos.ok("GET", "/v1/status")
    assert status["device_id"] == "pos-0001"
    assert status["licence"]["ok"] is False and status["licence"]["code"] == "licence.none"
    assert status["cashiers"]["roster_version"] == 0
    assert set(status) >= {"agent", "printers", "cloud"}
    anonymous = Pos(str(pos.http.base_url), None)
    assert anonymous.error("GET", "/v1/status") == (401, "pos.token_missing")
    assert Pos(str(pos.http.base_url), "kpos_wrong").error("GET", "/v1/status") == (401, "pos.token_invalid")


def test_revoked_token_is_refused_at_once(terminal: InProcessAgent, pos: Pos) -> None:
    client = ControlClient(terminal.config.paths.control_socket)
    listing = client.call("pos.token.list")
    assert [t["label"] for t in listing["tokens"]] == ["tablet-1"]
    assert "token" not in listing["tokens"][0]
    client.call("pos.token.revoke", token_id=listing["tokens"][0]["token_id"])
    assert pos.error("GET", "/v1/status") == (401, "pos.token_invalid")
    with pytest.raises(ControlError):
        client.call("pos.token.revoke", token_id="pt-nothere")


def test_only_the_hash_is_stored(terminal: InProcessAgent, pos: Pos) -> None:
    rows = terminal.agent.store.read().execute("SELECT * FROM pos_tokens").fetchall()
    assert len(rows) == 1 and pos.token not in repr(tuple(rows[0]))


def test_errors_have_one_shape_and_no_5xx(pos: Pos) -> None:
    assert pos.error("GET", "/v1/nothing") == (404, "http.not_found")
    assert pos.error("DELETE", "/v1/status") == (405, "http.method_not_allowed")
    assert pos.error("POST", "/v1/cashier/login", {"code": 1}) == (422, "request.invalid")
    assert pos.error("POST", "/v1/cashier/login", {"code": "9999", "pin": "1"}) == (
        403,
        "cashier.not_allowed",
    )  # no roster yet
    assert pos.error("POST", "/v1/sales", {"request_id": "x"}) == (401, "session.missing")
    assert pos.error("GET", "/v1/cashier/session", session="nope") == (401, "session.invalid")
    reply = pos.http.post(
        "/v1/cashier/login", content=b"{not json", headers={**pos.headers(), "content-type": "application/json"}
    )
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "request.invalid"
    big = pos.http.post("/v1/print", content=b"x" * 300_000, headers=pos.headers())
    assert big.status_code == 413


def test_messages_speak_the_terminal_language_at_once(terminal: InProcessAgent, pos: Pos) -> None:
    """`kassactl config set site.language ...` applies to the next answer: the message in that
    language, the agent's English one in `detail`, the code unchanged."""
    control = ControlClient(terminal.config.paths.control_socket)

    def refusal() -> dict:
        reply = pos.request("POST", "/v1/sales", {"request_id": "x"})
        assert reply.status_code == 401
        return reply.json()["error"]

    english = refusal()
    assert (
        english["code"] == "session.missing"
        and "detail" not in english
        and english["message"].startswith("no cashier is logged in")
    )
    control.call("config.set", key="site.language", value="ru")
    russian = refusal()
    assert russian == {
        "code": "session.missing",
        "message": "Кассир не вошёл в систему. Сначала войдите.",
        "detail": english["message"],
    }
    assert (
        pos.ok("GET", "/v1/status")["licence"]["message"]
        == "На этом терминале нет лицензии. Попросите техника ввести лицензионный ключ."
    )
    control.call("config.set", key="site.language", value="fr")
    assert refusal()["message"] == "Aucun caissier n'est connecté. Connectez-vous d'abord."
    control.call("config.set", key="site.language", value="xx")  # no catalogue: English
    assert refusal() == english


def test_cors_admits_only_the_allow_list(pos: Pos) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-cashier-session,content-type",
    }
    good = pos.http.options("/v1/sales", headers={"Origin": ORIGIN, **preflight})
    assert good.status_code == 200 and good.headers["access-control-allow-origin"] == ORIGIN
    bad = pos.http.options("/v1/sales", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers
    simple = pos.http.get("/v1/status", headers={**pos.headers(), "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_openapi_lists_every_route(pos: Pos) -> None:
    spec = pos.ok("GET", "/v1/openapi.json")
    paths = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    expected = {
        f"{r['method']} {r['path']}" for r in table() if r["method"] != "WS" and r["path"] != "/v1/openapi.json"
    }
    assert paths == expected


def test_docs_list_the_same_routes() -> None:
    text = (REPO_ROOT / "docs" / "pos-api.md").read_text()
    for row in table():
        assert re.search(
            rf"\|\s*`?{row['method']}`?\s*\|\s*`{re.escape(row['path'])}`\s*\|\s*{row['needs']}\s*\|", text
        ), row


def test_lan_bind_needs_tls(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "pos-0001"\n[pos_api]\nbind = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="tls_cert_file"):
        load_config(config)
    config.write_text(
        'device_id = "pos-0001"\n[pos_api]\nbind = "192.168.1.20"\ntls_cert_file = "/c.pem"\ntls_key_file = "/k.pem"\n'
    )
    assert load_config(config).pos_api.bind == "192.168.1.20"
    config.write_text('device_id = "pos-0001"\n[pos_api]\ncors_origins = ["http://x/path"]\n')
    with pytest.raises(ConfigError, match="not an origin"):
        load_config(config)


def test_kassactl_pos_token_verbs(terminal: InProcessAgent, capsys: pytest.CaptureFixture[str]) -> None:
    socket = str(terminal.config.paths.control_socket)
    assert kassactl(["--socket", socket, "pos", "token", "create", "--label", "till-2"]) == 0
    created = capsys.readouterr().out
    token = re.search(r"token: (kpos_\S+)", created).group(1)  # type: ignore[union-attr]
    assert kassactl(["--socket", socket, "pos", "token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "till-2" in listed and token not in listed
    token_id = re.search(r"(pt-[0-9a-f]{8})", listed).group(1)  # type: ignore[union-attr]
    assert kassactl(["--socket", socket, "pos", "token", "revoke", token_id, "--yes"]) == 0
    assert "revoked" in capsys.readouterr().out
    base = api_url(terminal.config.paths.control_socket)
    assert httpx.get(base + "/v1/status", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_no_nagle_stall(pos: Pos) -> None:
    """Head and body are two writes: without TCP_NODELAY each reply would take ~40 ms."""
    import time

    pos.ok("GET", "/v1/status")
    started = time.perf_counter()
    for _ in range(20):
        pos.ok("GET", "/v1/status")
    assert (time.perf_counter() - started) / 20 < 0.02
