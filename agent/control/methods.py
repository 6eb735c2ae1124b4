"""Every control-socket method in one place, each with the role it needs.

A handler takes the running agent and the request's params (a dict) and returns
JSON-able data; it may be a coroutine. Raise ``MethodError`` for an error the
technician should read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
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


def _hardware(agent: Agent) -> Any:
    return agent.component("hardware")


def str_param(params: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None and required:
        raise MethodError(f"parameter '{name}' is required", -32602)
    if value is not None and not isinstance(value, str):
        raise MethodError(f"parameter '{name}' must be a string", -32602)
    return value


def _devices(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return _hardware(agent).status()


def _print_test(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.component import HardwareError

    try:
        return {"job_id": _hardware(agent).test_print(str_param(params, "printer"))}
    except HardwareError as exc:
        raise MethodError(str(exc)) from None


def _print_reprint(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.print_queue import PrintQueueError

    try:
        return {"job_id": _hardware(agent).queue.reprint(str_param(params, "job_id", required=True))}
    except PrintQueueError as exc:
        raise MethodError(str(exc)) from None


def _print_dismiss(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.print_queue import PrintQueueError

    try:
        return _hardware(agent).queue.dismiss(str_param(params, "job_id", required=True)).as_dict()
    except PrintQueueError as exc:
        raise MethodError(str(exc)) from None


def _print_jobs(agent: Agent, params: dict[str, Any]) -> list[dict[str, Any]]:
    limit = params.get("limit", 20)
    if not isinstance(limit, int) or not 1 <= limit <= 500:
        raise MethodError("limit must be an integer from 1 to 500", -32602)
    return [job.as_dict() for job in _hardware(agent).queue.recent(limit)]


async def _drawer_open(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.component import HardwareError

    try:
        return {"state": await _hardware(agent).open_drawer(str_param(params, "drawer"))}
    except HardwareError as exc:
        raise MethodError(str(exc)) from None


def _config_get(agent: Agent, params: dict[str, Any]) -> Any:
    from agent.config import ConfigError, redacted
    from agent.config_edit import get_value

    key = str_param(params, "key")
    if key is None:
        return redacted(agent.config)
    try:
        return {"key": key, "value": get_value(agent.config, key)}
    except ConfigError as exc:
        raise MethodError(str(exc)) from None


def _config_set(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.config import ConfigError
    from agent.config_edit import parse_value, set_values

    key = str_param(params, "key", required=True)
    raw = str_param(params, "value", required=True)
    if agent.config_path is None:
        raise MethodError("the agent was started without a config file; nothing to change")
    try:
        set_values(agent.config_path, {key: parse_value(raw)})  # type: ignore[arg-type]
    except ConfigError as exc:
        raise MethodError(str(exc)) from None
    result = agent.reload_config()
    return {
        "key": key,
        "applied": key in result["applied"],
        "restart_needed": key in result["restart_needed"],
        "pending_restart": result["restart_needed"],  # every key waiting for a restart, this one or older
    }


def _logs(agent: Agent, params: dict[str, Any]) -> list[str]:
    lines = params.get("lines", 100)
    if not isinstance(lines, int) or not 1 <= lines <= 5000:
        raise MethodError("lines must be an integer from 1 to 5000", -32602)
    return agent.log_buffer.recent(lines)


async def _logs_follow(agent: Agent, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    position = agent.log_buffer.position
    while True:
        position, lines = agent.log_buffer.since(position)
        for line in lines:
            yield {"line": line}
        await asyncio.sleep(0.2)


async def _scan_watch(agent: Agent, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    subscription = agent.events.subscribe({"scan", "scan.rejected"})
    try:
        while True:
            event = await subscription.next()
            yield event.as_dict()
    finally:
        subscription.close()


async def _diagnostics(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.diagnostics import collect

    return await collect(agent)


def _pairing(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return agent.component("pairing").status()


def _pairing_print(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.print_queue import PrintQueueError
    from agent.pairing import PairingError

    try:
        return {"job_id": agent.component("pairing").print_code(str_param(params, "printer"))}
    except (PairingError, PrintQueueError, LookupError) as exc:
        raise MethodError(str(exc)) from None


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ping", Role.READ, "Check that the agent answers.", _ping),
        Method("methods", Role.READ, "List the methods and the role each needs.", _methods),
        Method("status", Role.READ, "Agent, store, scheduler and component status.", _status),
        Method(
            "config.reload", Role.ADMIN, "Re-read the config file (like SIGHUP); lists keys needing a restart.", _reload
        ),
        Method("devices", Role.READ, "Configured printers, scanners and drawers with their status.", _devices),
        Method(
            "print.jobs",
            Role.READ,
            "Recent print jobs and their state, those waiting for a person first (params: limit).",
            _print_jobs,
        ),
        Method("print.test", Role.ADMIN, "Queue a test page (params: printer).", _print_test),
        Method("print.reprint", Role.ADMIN, "Print a job again, marked as a copy (params: job_id).", _print_reprint),
        Method(
            "print.dismiss", Role.ADMIN, "A job waiting for a person needs no reprint (params: job_id).", _print_dismiss
        ),
        Method("drawer.open", Role.ADMIN, "Open a cash drawer without a sale (params: drawer).", _drawer_open),
        Method(
            "scan.watch",
            Role.READ,
            "Stream scans as they happen (one notification per scan or rejected input).",
            _scan_watch,
        ),
        Method(
            "config.get",
            Role.READ,
            "The effective configuration, or one key (params: key); secrets masked.",
            _config_get,
        ),
        Method(
            "config.set",
            Role.ADMIN,
            "Change one key in the config file (params: key, value); validated, applied or flagged restart.",
            _config_set,
        ),
        Method("logs", Role.READ, "Recent log lines (params: lines).", _logs),
        Method("logs.follow", Role.READ, "Stream new log lines as they are written.", _logs_follow),
        Method(
            "pairing",
            Role.READ,
            "Pairing with the cloud: stage (unpaired, waiting, paired), the code to claim, last error.",
            _pairing,
        ),
        Method(
            "pairing.print",
            Role.ADMIN,
            "Print the pairing code on a receipt printer (params: printer).",
            _pairing_print,
        ),
        Method(
            "diagnostics",
            Role.ADMIN,
            "Everything support needs: status, config minus secrets, versions, logs, devices, store integrity.",
            _diagnostics,
        ),
    )
}


def register(method: Method) -> None:
    """Components add their methods at import time; names are unique."""
    if method.name in METHODS:
        raise ValueError(f"control method {method.name!r} is already registered")
    METHODS[method.name] = method
