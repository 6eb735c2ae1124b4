"""WebSocket /v1/events: first-message authentication, Origin check, scans and cashier events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from drivers.sim.scanner import VirtualSerialScanner
from tests.posapi.support import api_url, create_pos_token, terminal_config
from tests.support.inprocess import InProcessAgent

ORIGIN = "http://127.0.0.1:9999"


@pytest.fixture
def scanner() -> Iterator[VirtualSerialScanner]:
    with VirtualSerialScanner(suffix=b"\r\n") as sim:
        yield sim


@pytest.fixture
def terminal(tmp_path: Path, scanner: VirtualSerialScanner) -> Iterator[tuple[str, str, InProcessAgent]]:
    running = InProcessAgent(terminal_config(tmp_path / "agent", None, None, scanner, cors=[ORIGIN])).start()
    socket = running.config.paths.control_socket
    yield api_url(socket).replace("http://", "ws://") + "/v1/events", create_pos_token(socket), running
    running.stop()


def receive(ws: Any, kind: str, timeout_s: float = 10) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout_s))
        if message["kind"] == kind:
            return message


def test_scan_reaches_the_stream(terminal: tuple[str, str, InProcessAgent], scanner: VirtualSerialScanner) -> None:
    url, token, _agent = terminal
    with connect(url, origin=ORIGIN) as ws:
        ws.send(json.dumps({"token": token}))
        hello = receive(ws, "hello")
        assert hello["device_id"] == "pos-0001"
        scanner.scan("4006381333931")
        scan = receive(ws, "scan")
        assert scan["data"] == "4006381333931" and scan["scanner"] == "hand" and "token" not in scan


def test_kinds_narrow_the_stream(terminal: tuple[str, str, InProcessAgent], scanner: VirtualSerialScanner) -> None:
    url, token, agent = terminal
    with connect(url) as ws:
        ws.send(json.dumps({"token": token, "kinds": ["scan"]}))
        receive(ws, "hello")
        agent.call(lambda: agent.agent.events.publish("printer.status", printer="x", status="ready"))
        scanner.scan("123")
        assert json.loads(ws.recv(10))["kind"] == "scan"


@pytest.mark.parametrize("first", ["", "not json", json.dumps({"token": "kpos_wrong"}), json.dumps(["x"])])
def test_bad_first_message_closes_4401(terminal: tuple[str, str, InProcessAgent], first: str) -> None:
    url, _token, _agent = terminal
    with connect(url) as ws:
        ws.send(first)
        error = json.loads(ws.recv(10))
        assert error["kind"] == "error" and error["error"]["code"].startswith("pos.token")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
        assert closed.value.rcvd.code == 4401


def test_foreign_origin_is_refused_at_the_handshake_with_403(terminal: tuple[str, str, InProcessAgent]) -> None:
    url, token, _agent = terminal
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example")
    response = refused.value.response
    assert response.status_code == 403
    assert json.loads(bytes(response.body))["error"]["code"] == "pos.origin_forbidden"
    # the API's own origin needs no listing
    own = "http://" + url.split("://", 1)[1].split("/", 1)[0]
    with connect(url, origin=own) as ws:
        ws.send(json.dumps({"token": token}))
        assert receive(ws, "hello")["device_id"] == "pos-0001"


def test_revoked_token_ends_the_stream(terminal: tuple[str, str, InProcessAgent]) -> None:
    from agent.ctl_client import ControlClient

    url, token, agent = terminal
    with connect(url) as ws:
        ws.send(json.dumps({"token": token}))
        receive(ws, "hello")
        client = ControlClient(agent.config.paths.control_socket)
        client.call("pos.token.revoke", token_id=client.call("pos.token.list")["tokens"][0]["token_id"])
        assert receive(ws, "error", 10)["error"]["code"] == "pos.token_invalid"
