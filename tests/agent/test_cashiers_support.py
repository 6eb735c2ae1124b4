"""Shared by the cashier tests (no tests here): rosters, pushing them, calling the socket."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from agent.ctl_client import ControlClient, ControlError
from broker import contract as kc
from broker.contract.roster import hash_pin
from tests.support.inprocess import InProcessAgent

DEVICE = "pos-0001"
# Cheap scrypt parameters keep the tests fast; the hash format (and verify_pin) is the real one.
TEST_SCRYPT = (10, 8, 1)


@cache
def pin_hash(pin: str) -> str:
    return hash_pin(pin, TEST_SCRYPT)


def cashier(
    cashier_id: str,
    operator_code: str,
    roles: list[str],
    *,
    pin: str | None = "1234",
    enabled: bool = True,
    details: list[tuple[str, ...]] = (),
) -> dict[str, Any]:
    """A roster entry; each details set is (point of sale, terminal id, operator code[, session label])."""
    return {
        "cashier_id": cashier_id,
        "name": f"Cashier {cashier_id}",
        "operator_code": operator_code,
        "pin_hash": pin_hash(pin) if pin else None,
        "roles": roles,
        "enabled": enabled,
        # the session label is optional: a three-item details set has no "session_label" key
        "details": [
            dict(zip(("point_of_sale", "terminal_id", "operator_code", "session_label"), d, strict=False))
            for d in details
        ],
    }


def roster(*cashiers: dict[str, Any]) -> dict[str, Any]:
    return {"cashiers": list(cashiers)}


def roster_envelope(version: int, doc: dict[str, Any], device_id: str = DEVICE) -> kc.Envelope:
    body = kc.StateDoc(domain=kc.StateDomain.CASHIERS, version=version, doc=doc, issued_at=datetime.now(UTC))
    return kc.down_message(body, device_id=device_id)


def push_inprocess(agent: InProcessAgent, version: int, doc: dict[str, Any]) -> bool:
    """Hand a roster to the agent's inbound on its loop, as the link does for a received message."""
    return agent.call(lambda: agent.cloud.inbound.handle_state(roster_envelope(version, doc)))


def control(agent: InProcessAgent) -> ControlClient:
    return ControlClient(agent.config.paths.control_socket)


def try_call(client: ControlClient, method: str, **params: Any) -> tuple[Any, str | None]:
    """(result, None) or (None, error message)."""
    try:
        return client.call(method, **params), None
    except ControlError as exc:
        return None, str(exc)


def raw_error(agent: InProcessAgent, method: str, **params: Any) -> dict[str, Any] | None:
    """The JSON-RPC error object (with its data: the stable code), or None when it succeeded."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(agent.config.paths.control_socket))
        sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode() + b"\n")
        buffer = b""
        while b"\n" not in buffer:
            buffer += sock.recv(65536)
    reply = json.loads(buffer.split(b"\n", 1)[0])
    return reply.get("error")
