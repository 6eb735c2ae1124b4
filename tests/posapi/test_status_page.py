"""The terminal's status page (GET /status) and its receipt previews, against a running agent;
who may see them (the terminal itself, or a POS token) is checked on the rule itself, since a
test reaches the agent only over loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agent.posapi.status_page import may_see
from agent.posapi.tokens import PosTokens
from agent.store import Store
from tests.posapi.support import DEVICE, api_url, wait_for
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
