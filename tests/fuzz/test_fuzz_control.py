"""Fuzzing the control socket: newline-delimited JSON-RPC 2.0 requests.

In-process, ``ControlServer.handle_line`` (parse, shape check, method lookup, permission) on
arbitrary lines and mutated requests; then a bounded number of lines over the real Unix
socket of a running ``kassa-agent`` process, to every method it serves with arbitrary params.

Property: every line gets exactly one JSON-RPC reply (a result, or an error with an integer
code and a message, never "internal error": that is an exception the method did not expect),
never a dropped connection; the agent keeps running and answers ``ping`` afterwards.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.control.permissions import Authorizer, PeerCredentials, Role
from agent.control.server import INTERNAL_ERROR, MAX_REQUEST_BYTES, ControlServer
from agent.wiring import CONTROL_METHODS as METHODS
from tests.fuzz.strategies import NASTY_INTS, NASTY_TEXT, damaged, dumps, json_values, mostly, weighted
from tests.support.agent_process import AgentProcess, write_agent_config

pytestmark = pytest.mark.timeout(120)

STREAMS = {"scan.watch", "logs.follow"}  # answered with notifications until the client hangs up
# Methods the running agent serves (components add theirs at start: cashiers, licence, POS tokens).
SERVED = sorted(
    {
        *METHODS,
        "cashier.login",
        "cashier.logout",
        "cashier.session",
        "cashier.authorize",
        "cashiers.list",
        "cashiers.load",
        "licence.status",
        "licence.check",
        "licence.enter",
        "licence.release_file",
        "pos.token.create",
        "pos.token.list",
        "pos.token.revoke",
    }
    - STREAMS
)
PARAM_NAMES = [
    "printer",
    "job_id",
    "limit",
    "drawer",
    "key",
    "value",
    "lines",
    "code",
    "pin",
    "point_of_sale",
    "token",
    "action",
    "sale_till_session",
    "licence_id",
    "label",
    "token_id",
]
# config.set writes the file: keys a test agent may take (validated like any other, applied live).
SETTABLE = [
    "log.level",
    "site.language",
    "site.rooms",
    "cashiers.lockout_s",
    "mqtt.batch_max_bytes",
    "no.such.key",
    "paths",
]

# What a technician may type after `kassactl config set KEY`: TOML literals, text, and neither.
VALUES = [
    "debug",
    "de-DE",
    '["a", 1]',
    "1" * 5000,
    "[" * 3000,
    "{a=",
    '"\\ud800"',
    "300.5",
    "-1",
    "nan",
    "inf",
    "1979-05-27",
    '"x"\n[mqtt]\nport = 1',
    "'''\n'''",
    "0x10",
    "1_000",
    "true",
    "",
]
ids = st.none() | st.integers() | st.sampled_from(NASTY_INTS + NASTY_TEXT[:20]) | json_values
params = st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), json_values, max_size=4)


@st.composite
def request(draw: st.DrawFn, methods: list[str]) -> Any:
    method = draw(mostly(st.sampled_from(methods), st.text(max_size=20) | json_values))
    body: dict[str, Any] = {
        "jsonrpc": draw(mostly(st.just("2.0"), st.sampled_from(["1.0", 2.0, None]))),
        "method": method,
    }
    if draw(st.booleans()):
        body["id"] = draw(ids)
    if method == "config.set":
        body["params"] = {
            "key": draw(st.sampled_from(SETTABLE)),
            "value": draw(st.text(max_size=30) | st.sampled_from(VALUES)),
        }
    else:
        shape = draw(st.integers(0, 9))  # mostly an object of the methods' own param names
        if shape < 7:
            body["params"] = draw(params)
        elif shape == 9:
            body["params"] = draw(json_values)
    return body


def lines(methods: list[str]) -> st.SearchStrategy[bytes]:
    """One request line without its newline: a mutated JSON-RPC request, or any bytes."""
    whole = request(methods).map(lambda body: dumps(body, ascii_only=True))
    broken = request(methods).flatmap(lambda body: damaged(dumps(body, ascii_only=True)))
    return weighted((3, whole), (1, broken), (1, st.binary(max_size=80))).map(lambda line: line.replace(b"\n", b" "))


NASTY_LINES = [
    b"",
    b" ",
    b"\xef\xbb\xbf{}",
    b"1" * 5000,
    b"[" * 60000,
    b'{"a":' * 12000,
    b"null",
    b"[]",
    b"NaN",
    b'{"jsonrpc":"2.0","method":"ping","id":NaN}',
    b'{"jsonrpc":"2.0","method":"ping","id":1e999}',
    b'{"jsonrpc":"2.0","method":"ping","params":[]}',
    b'{"jsonrpc":"2.0","method":"ping","id":' + b"9" * 4400 + b"}",
    b'{"jsonrpc":"2.0","method":"logs","params":{"lines":true}}',
    b'{"jsonrpc":"2.0","method":"\xff"}',
]


def assert_reply(reply: dict[str, Any], sent: bytes) -> None:
    """One JSON-RPC response: a result, or an error with an integer code and a message."""
    assert reply.get("jsonrpc") == "2.0", reply
    assert ("result" in reply) != ("error" in reply), reply
    if "error" in reply:
        error = reply["error"]
        assert type(error["code"]) is int and isinstance(error["message"], str) and error["message"].strip(), reply
        assert error["code"] != INTERNAL_ERROR, reply  # an exception the method did not expect
    try:
        request_ = json.loads(sent)
    except (ValueError, RecursionError):
        return
    if isinstance(request_, dict) and request_.get("jsonrpc") == "2.0" and isinstance(request_.get("method"), str):
        echoed, asked = reply.get("id"), request_.get("id")
        assert echoed == asked or (isinstance(asked, float) and math.isnan(asked)), (echoed, asked)


# ------------------------------------------------------------------------ in process
@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# No agent behind it: role NONE is refused every method before a handler runs.
SERVER = ControlServer(
    {name: method.bind(None) for name, method in METHODS.items()},
    Path("/nonexistent/control.sock"),
    Authorizer("kassa-admin", "kassa"),
)
NOBODY = PeerCredentials(pid=1, uid=65534, gid=65534)


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=lines(sorted(METHODS)) | st.sampled_from(NASTY_LINES))
def test_every_line_gets_a_json_rpc_reply_in_process(loop: asyncio.AbstractEventLoop, line: bytes) -> None:
    reply = loop.run_until_complete(SERVER.handle_line(line, NOBODY, Role.NONE))
    assert_reply(reply, line)
    wire = json.dumps(reply, default=str).encode()  # as _send writes it: one line
    assert b"\n" not in wire and json.loads(wire)["jsonrpc"] == "2.0"


# ------------------------------------------------------------------------ a real agent
@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(write_agent_config(tmp_path_factory.mktemp("agent"))).start()
    try:
        yield process
    finally:
        process.kill()


def exchange(socket_path: Path, sent: list[bytes]) -> list[dict[str, Any]]:
    """Send the lines on one connection and read one reply line per line sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(socket_path))
        sock.sendall(b"".join(line + b"\n" for line in sent))
        buffer, replies = b"", []
        while len(replies) < len(sent):
            chunk = sock.recv(1 << 16)
            assert chunk, f"connection closed after {len(replies)} of {len(sent)} replies"
            buffer += chunk
            while b"\n" in buffer:
                reply, buffer = buffer.split(b"\n", 1)
                replies.append(json.loads(reply))
        return replies


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(sent=st.lists(lines(SERVED), min_size=1, max_size=4))
def test_a_running_agent_answers_every_line(agent: AgentProcess, sent: list[bytes]) -> None:
    for reply, line in zip(exchange(agent.socket_path, sent), sent, strict=True):
        assert_reply(reply, line)
    assert agent.process is not None and agent.process.poll() is None, agent.log()[-3000:]


@pytest.mark.parametrize("method", SERVED)
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_method_answers_any_params(agent: AgentProcess, method: str, data: st.DataObject) -> None:
    body = data.draw(request([method]).filter(lambda body: body["method"] == method), label="request")
    body["jsonrpc"] = "2.0"
    line = dumps(body, ascii_only=True)
    [reply] = exchange(agent.socket_path, [line])
    assert_reply(reply, line)
    event(f"error {reply['error']['code']}" if "error" in reply else "result")
    assert agent.process is not None and agent.process.poll() is None, agent.log()[-3000:]


@pytest.mark.parametrize("line", NASTY_LINES, ids=range(len(NASTY_LINES)))
def test_nasty_lines_get_an_error_with_a_code_and_a_message(agent: AgentProcess, line: bytes) -> None:
    [reply] = exchange(agent.socket_path, [line])
    assert_reply(reply, line)
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        assert reply["error"]["code"] == -32700 and reply["error"]["message"].startswith("not JSON"), reply


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_config_set_takes_any_typed_value_or_says_why(agent: AgentProcess, value: str) -> None:
    for key in ("site.language", "cashiers.lockout_s"):
        line = dumps({"jsonrpc": "2.0", "id": 1, "method": "config.set", "params": {"key": key, "value": value}})
        [reply] = exchange(agent.socket_path, [line])
        assert_reply(reply, line)
        assert "result" in reply or key in reply["error"]["message"], reply


def test_a_line_over_the_limit_is_refused_and_the_agent_still_answers(agent: AgentProcess) -> None:
    [reply] = exchange(
        agent.socket_path, [b'{"jsonrpc":"2.0","method":"ping","id":"' + b"x" * MAX_REQUEST_BYTES + b'"}']
    )
    assert reply["error"]["code"] == -32600 and str(MAX_REQUEST_BYTES) in reply["error"]["message"]
    assert agent.client().call("ping")["pong"] is True
    assert agent.process is not None and agent.process.poll() is None
