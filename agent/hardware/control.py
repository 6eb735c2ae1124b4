"""Control-socket methods of the hardware component (``kassactl devices``, ``print``, ``drawer``)."""

from __future__ import annotations

import base64
from typing import Any

from agent.control.methods import Method, MethodError, Params, required_str, str_param
from agent.control.permissions import Role
from agent.hardware.component import Hardware
from agent.hardware.preview import preview


def _devices(hardware: Hardware, params: Params) -> dict[str, Any]:
    return hardware.status()


def _print_test(hardware: Hardware, params: Params) -> dict[str, Any]:
    return {"job_id": hardware.test_print(str_param(params, "printer"))}


def _print_reprint(hardware: Hardware, params: Params) -> dict[str, Any]:
    return {"job_id": hardware.queue.reprint(required_str(params, "job_id"))}


def _print_dismiss(hardware: Hardware, params: Params) -> dict[str, Any]:
    return hardware.queue.dismiss(required_str(params, "job_id")).as_dict()


def _print_show(hardware: Hardware, params: Params) -> dict[str, Any]:
    shown = preview(hardware, required_str(params, "job_id"), png=bool(params.get("png")))
    answer: dict[str, Any] = {"job": shown.job.as_dict(), "text": shown.text}
    if shown.png is not None:
        answer["png_base64"] = base64.b64encode(shown.png).decode("ascii")
    return answer


def _print_jobs(hardware: Hardware, params: Params) -> list[dict[str, Any]]:
    limit = params.get("limit", 20)
    if not isinstance(limit, int) or not 1 <= limit <= 500:
        raise MethodError("limit must be an integer from 1 to 500", -32602)
    return [job.as_dict() for job in hardware.queue.recent(limit)]


async def _drawer_open(hardware: Hardware, params: Params) -> dict[str, Any]:
    return {"state": await hardware.open_drawer(str_param(params, "drawer"))}


METHODS: tuple[Method[Hardware], ...] = (
    Method("devices", Role.READ, "Configured printers, scanners and drawers with their status.", _devices),
    Method(
        "print.jobs",
        Role.READ,
        "Recent print jobs and their state, those waiting for a person first (params: limit).",
        _print_jobs,
    ),
    Method(
        "print.show",
        Role.ADMIN,
        "What a job prints, decoded from its stored bytes: text, and a PNG if asked (params: job_id, png).",
        _print_show,
    ),
    Method("print.test", Role.ADMIN, "Queue a test page (params: printer).", _print_test),
    Method("print.reprint", Role.ADMIN, "Print a job again, marked as a copy (params: job_id).", _print_reprint),
    Method(
        "print.dismiss", Role.ADMIN, "A job waiting for a person needs no reprint (params: job_id).", _print_dismiss
    ),
    Method("drawer.open", Role.ADMIN, "Open a cash drawer without a sale (params: drawer).", _drawer_open),
)
