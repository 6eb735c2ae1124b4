"""The agent's own control methods: ping, status, configuration, logs and the scan stream.

Their target is the agent process itself, seen through ``Host``: only what these methods use.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from agent.config import AgentConfig, ConfigError, redacted
from agent.config_edit import get_value, parse_value, set_values
from agent.control.methods import Method, MethodError, Params, required_str, str_param
from agent.control.permissions import Role
from agent.events import EventBus
from agent.logbuffer import LogBuffer


class Host(Protocol):
    config: AgentConfig
    config_path: Path | None
    boot_id: uuid.UUID
    log_buffer: LogBuffer
    events: EventBus

    def status(self) -> dict[str, Any]: ...

    def reload_config(self) -> dict[str, Any]: ...


def _ping(host: Host, params: Params) -> dict[str, Any]:
    return {"pong": True, "device_id": host.config.device_id, "boot_id": str(host.boot_id)}


def _status(host: Host, params: Params) -> dict[str, Any]:
    return host.status()


def _reload(host: Host, params: Params) -> dict[str, Any]:
    return host.reload_config()


def _config_get(host: Host, params: Params) -> Any:
    key = str_param(params, "key")
    if key is None:
        return redacted(host.config)
    try:
        return {"key": key, "value": get_value(host.config, key)}
    except ConfigError as exc:
        raise MethodError(str(exc)) from None


def _config_set(host: Host, params: Params) -> dict[str, Any]:
    key = required_str(params, "key")
    raw = required_str(params, "value")
    if host.config_path is None:
        raise MethodError("the agent was started without a config file; nothing to change")
    try:
        set_values(host.config_path, {key: parse_value(raw)})
    except ConfigError as exc:
        raise MethodError(str(exc)) from None
    result = host.reload_config()
    return {
        "key": key,
        "applied": key in result["applied"],
        "restart_needed": key in result["restart_needed"],
        "pending_restart": result["restart_needed"],  # every key waiting for a restart, this one or older
    }


def _logs(host: Host, params: Params) -> list[str]:
    lines = params.get("lines", 100)
    if not isinstance(lines, int) or not 1 <= lines <= 5000:
        raise MethodError("lines must be an integer from 1 to 5000", -32602)
    return host.log_buffer.recent(lines)


async def _logs_follow(host: Host, params: Params) -> AsyncIterator[dict[str, Any]]:
    position = host.log_buffer.position
    while True:
        position, lines = host.log_buffer.since(position)
        for line in lines:
            yield {"line": line}
        await asyncio.sleep(0.2)


async def _scan_watch(host: Host, params: Params) -> AsyncIterator[dict[str, Any]]:
    subscription = host.events.subscribe({"scan", "scan.rejected"})
    try:
        while True:
            event = await subscription.next()
            yield event.as_dict()
    finally:
        subscription.close()


METHODS: tuple[Method[Host], ...] = (
    Method("ping", Role.READ, "Check that the agent answers.", _ping),
    Method("status", Role.READ, "Agent, store, scheduler and component status.", _status),
    Method(
        "config.reload", Role.ADMIN, "Re-read the config file (like SIGHUP); lists keys needing a restart.", _reload
    ),
    Method(
        "scan.watch",
        Role.READ,
        "Stream scans as they happen (one notification per scan or rejected input).",
        _scan_watch,
    ),
    Method(
        "config.get", Role.READ, "The effective configuration, or one key (params: key); secrets masked.", _config_get
    ),
    Method(
        "config.set",
        Role.ADMIN,
        "Change one key in the config file (params: key, value); validated, applied or flagged restart.",
        _config_set,
    ),
    Method("logs", Role.READ, "Recent log lines (params: lines).", _logs),
    Method("logs.follow", Role.READ, "Stream new log lines as they are written.", _logs_follow),
)
