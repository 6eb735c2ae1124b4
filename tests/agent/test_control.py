from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent import wiring
from agent.control import core
from agent.control.methods import BoundMethod, bind_all, method_table
from agent.control.permissions import Authorizer, PeerCredentials, Role
from agent.control.server import ControlServer
from tests.support.agent_process import REPO_ROOT, AgentProcess


class FakeGroups(Authorizer):
    """Stands in for users that do not exist on the test machine (the credential check's seam)."""

    def __init__(self, groups_by_uid: dict[int, set[str]]) -> None:
        super().__init__("kassa-admin", "kassa")
        self.groups_by_uid = groups_by_uid

    def lookup_groups(self, uid: int, gid: int) -> set[str]:
        return self.groups_by_uid.get(uid, set())


AUTH = FakeGroups({5001: set(), 5002: {"kassa"}, 5003: {"kassa", "kassa-admin"}})
OUTSIDER, MEMBER, ADMIN, ROOT = (PeerCredentials(1, uid, uid) for uid in (5001, 5002, 5003, 0))


def test_roles_from_groups() -> None:
    assert AUTH.role_of(OUTSIDER) is Role.NONE
    assert AUTH.role_of(MEMBER) is Role.READ
    assert AUTH.role_of(ADMIN) is Role.ADMIN
    assert AUTH.role_of(ROOT) is Role.ADMIN


METHODS = wiring.CONTROL_METHODS


def test_every_method_declares_a_role_and_summary() -> None:
    assert METHODS
    for method in METHODS.values():
        assert method.role in (Role.READ, Role.ADMIN)
        assert method.summary


class _StubAgent:
    """Only what the permission test touches; the real agent is exercised end-to-end below."""

    def reload_config(self) -> dict:
        return {"applied": [], "restart_needed": [], "error": None}


@pytest.mark.parametrize(
    ("peer", "method", "allowed"),
    [
        (OUTSIDER, "methods", False),
        (MEMBER, "methods", True),
        (MEMBER, "config.reload", False),
        (ADMIN, "config.reload", True),
        (ROOT, "config.reload", True),
    ],
)
def test_permission_enforced_per_method(peer: PeerCredentials, method: str, allowed: bool) -> None:
    server = ControlServer(method_table(bind_all(core.METHODS, _StubAgent())), Path("/nonexistent"), AUTH)  # type: ignore[arg-type]
    line = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method}).encode()
    reply = asyncio.run(server.handle_line(line, peer, AUTH.role_of(peer)))
    assert reply["id"] == 7
    if allowed:
        assert "result" in reply
    else:
        assert reply["error"]["code"] == -32001
        assert "role" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{nope", -32700),
        (b'{"jsonrpc": "1.0", "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "method": "fly", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "ping", "params": [1], "id": 1}', -32602),
    ],
)
def test_malformed_requests_get_jsonrpc_errors(line: bytes, code: int) -> None:
    server = ControlServer(method_table(bind_all(core.METHODS, _StubAgent())), Path("/nonexistent"), AUTH)  # type: ignore[arg-type]
    reply = asyncio.run(server.handle_line(line, ROOT, Role.ADMIN))
    assert reply["error"]["code"] == code


def kassactl(socket_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.ctl", "--socket", str(socket_path), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kassactl_status_human_and_json(agent_process: AgentProcess) -> None:
    agent_process.start()
    human = kassactl(agent_process.socket_path, "status")
    assert human.returncode == 0, human.stderr
    assert "pos-0001" in human.stdout and "integrity ok" in human.stdout
    as_json = kassactl(agent_process.socket_path, "--json", "status")
    status = json.loads(as_json.stdout)
    assert status["device_id"] == "pos-0001" and status["store"]["schema_version"] >= 1
    methods = json.loads(kassactl(agent_process.socket_path, "--json", "methods").stdout)
    assert {"name": "status", "role": "read", "summary": METHODS["status"].summary} in methods
    assert agent_process.stop() == 0


def test_kassactl_when_agent_not_running(tmp_path: Path) -> None:
    result = kassactl(tmp_path / "missing.sock", "status")
    assert result.returncode == 69
    assert "the agent is not running" in result.stderr


def test_socket_mode_is_0660(agent_process: AgentProcess) -> None:
    agent_process.start()
    assert agent_process.socket_path.stat().st_mode & 0o777 == 0o660
    assert agent_process.stop() == 0


def test_a_watch_client_hanging_up_leaves_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """`kassactl scan --watch` / `logs -f` stopped with Ctrl-C: the stream waits in its generator
    for the next item when the client goes; closing it must not log an error."""
    started, ended = asyncio.Event(), asyncio.Event()

    async def watch() -> AsyncIterator[dict]:
        try:
            started.set()
            await asyncio.Event().wait()  # no scan comes
            yield {}
        finally:
            ended.set()

    methods = {"scan.watch": BoundMethod("scan.watch", Role.READ, "watch", lambda _params: watch())}

    async def scenario(socket_path: Path) -> None:
        server = ControlServer(methods, socket_path, AUTH)
        await server.start()
        try:
            _reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "scan.watch"}).encode() + b"\n")
            await writer.drain()
            await asyncio.wait_for(started.wait(), 20)
            writer.close()  # Ctrl-C
            await asyncio.wait_for(ended.wait(), 20)
            if server._connections:  # the connection's task unwinds after the generator
                await asyncio.wait(set(server._connections))
            for _ in range(3):  # and asyncio reports a task's failure from a callback after that
                await asyncio.sleep(0)
        finally:
            await server.stop()

    with tempfile.TemporaryDirectory() as directory, caplog.at_level(logging.INFO):
        asyncio.run(scenario(Path(directory) / "control.sock"))
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]
