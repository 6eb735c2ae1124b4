"""Every control-socket method in one place, each with the role it needs.

A handler takes the running agent and the request's params (a dict) and returns
JSON-able data; it may be a coroutine. Raise ``MethodError`` for an error the
technician should read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.control.permissions import Role

if TYPE_CHECKING:
    from agent.daemon import Agent

Handler = Callable[["Agent", dict[str, Any]], Any | Awaitable[Any]]


class MethodError(Exception):
    """An error reported to the caller as a JSON-RPC error with this code and message."""

    def __init__(self, message: str, code: int = -32000, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


@dataclass(frozen=True)
class Method:
    name: str
    role: Role
    summary: str
    handler: Handler


def _ping(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True, "device_id": agent.config.device_id, "boot_id": str(agent.boot_id)}


def _status(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return agent.status()


def _methods(agent: Agent, params: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": m.name, "role": m.role.name.lower(), "summary": m.summary} for m in METHODS.values()]


def _reload(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return agent.reload_config()


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ping", Role.READ, "Check that the agent answers.", _ping),
        Method("methods", Role.READ, "List the methods and the role each needs.", _methods),
        Method("status", Role.READ, "Agent, store, scheduler and component status.", _status),
        Method("config.reload", Role.ADMIN, "Re-read the config file (like SIGHUP); lists keys needing a restart.", _reload),
    )
}


def register(method: Method) -> None:
    """Components add their methods at import time; names are unique."""
    if method.name in METHODS:
        raise ValueError(f"control method {method.name!r} is already registered")
    METHODS[method.name] = method
