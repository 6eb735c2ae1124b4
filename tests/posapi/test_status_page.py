"""The terminal's status page (GET /status) and its receipt previews, against a running agent;
who may see them (the terminal itself, or a POS token) is checked on the rule itself, since a
test reaches the agent only over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.posapi.app import build_app
from agent.posapi.status_page import may_see
from agent.posapi.tokens import PosTokens
from agent.store import Store
from agent.wiring import POS_API
from tests.posapi.support import DEVICE, api_url, wait_for
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.terminal import Terminal

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def printed_test_page(terminal: Terminal) -> str:
    client = terminal.process.client()
    job_id = client.call("print.test", printer="front")["job_id"]
    wait_for(lambda: client.call("print.jobs", limit=5)[0]["state"] == "printed", 15, "test page printed")
    return job_id


@pytest.fixture
def tokens(tmp_path: Path) -> PosTokens:
    return PosTokens(Store.open(tmp_path / "agent.db"))


@pytest.mark.parametrize("client", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"])
def test_the_terminal_itself_may_look_without_a_token(tokens: PosTokens, client: str) -> None:
    assert may_see(client, None, tokens)


@pytest.mark.parametrize("client", ["192.168.1.20", "10.0.0.5", "::ffff:192.168.1.20", "fe80::1", "testclient", None])
def test_anyone_else_needs_an_active_token(tokens: PosTokens, client: str | None) -> None:
    assert not may_see(client, None, tokens)
    assert not may_see(client, "kpos_not-a-token", tokens)
    created = tokens.create("tablet-1")
    assert may_see(client, created["token"], tokens)
    tokens.revoke(created["token_id"])
    assert not may_see(client, created["token"], tokens)


def test_a_remote_client_is_refused_without_a_token(tmp_path: Path) -> None:
    """The agent's own application, asked from a LAN address (the ASGI client address a socket would give)."""
    running = InProcessAgent(write_agent_config(tmp_path / "agent", device_id=DEVICE)).start()
    try:
        pos_api = running.agent.component(POS_API)
        app = build_app(pos_api.service)
        token = running.call(lambda: pos_api.tokens.create("tablet-1"))["token"]

        async def get(path: str, **options: Any) -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=("192.168.1.20", 50123))
            async with httpx.AsyncClient(transport=transport, base_url="http://terminal") as http:
                return await http.get(path, **options)

        def on_agent_loop(request: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
            assert running._loop is not None
            return asyncio.run_coroutine_threadsafe(request, running._loop).result(20)

        refused = on_agent_loop(get("/status"))
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "pos.token_missing"
        assert on_agent_loop(get("/status", params={"token": "kpos_guessed"})).status_code == 401
        assert on_agent_loop(get("/status/jobs/0123456789ab.png")).status_code == 401
        page = on_agent_loop(get("/status", params={"token": token}))
        assert page.status_code == 200 and f'<h1 id="device">{DEVICE}</h1>' in page.text
        by_header = on_agent_loop(get("/status", headers={"Authorization": f"Bearer {token}"}))
        assert by_header.status_code == 200
    finally:
        running.stop()


def test_status_page_shows_the_terminal(terminal: Terminal) -> None:
    job_id = printed_test_page(terminal)
    with httpx.Client(base_url=api_url(terminal.socket), timeout=30) as http:
        page = http.get("/status")  # loopback: no token needed
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert f'<h1 id="device">{DEVICE}</h1>' in html
        assert 'id="printer-front"' in html and "ready" in html
        assert f'href="/status/jobs/{job_id}.png"' in html
        assert "connected" in html and "Roster version" in html

        preview = http.get(f"/status/jobs/{job_id}.png")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
        assert preview.content.startswith(PNG_SIGNATURE)
        assert http.get("/status/jobs/0123456789abcdef.png").status_code == 404

        # a token works too, by query or header, and the page carries it into its preview links
        with_token = http.get("/status", params={"token": terminal.pos_token})
        assert with_token.status_code == 200
        assert f'href="/status/jobs/{job_id}.png?token={terminal.pos_token}"' in with_token.text
        by_header = http.get(f"/status/jobs/{job_id}.png", headers={"Authorization": f"Bearer {terminal.pos_token}"})
        assert by_header.status_code == 200
        openapi = http.get("/v1/openapi.json", headers={"Authorization": f"Bearer {terminal.pos_token}"}).json()
        assert "/status" not in openapi["paths"]  # pages for people, not API routes
