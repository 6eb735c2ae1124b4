"""Every POS API route in one place, with what it needs (like the control socket's METHODS).

``needs``: ``none`` (public), ``pos`` (a POS access token: ``Authorization: Bearer``),
``session`` (a POS token and a cashier session: header ``X-Cashier-Session``).
``action`` is the cashier permission the component checks through the permission gate
(``agent.cashiers.permissions``); the gate, not this table, enforces it. docs/pos-api.md
lists the same table (tests/posapi/test_routes.py keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agent.posapi import handlers as h
from agent.posapi.errors import ERROR_SCHEMA, ApiError
from agent.sales.models import DrawerResult, PrintResult, RefundResult, ReportResult, SaleResult

SESSION_HEADER = "X-Cashier-Session"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    needs: str  # "none" | "pos" | "session"
    action: str  # the cashier permission checked by the component ("-" if none)
    summary: str
    handler: Callable[..., Any]
    response_model: Any = None
    status: int = 200


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/status", "pos", "-", "Agent, licence verdict, roster version, printers, outbox depth.", h.status),
    Route(
        "POST",
        "/v1/cashier/login",
        "pos",
        "-",
        "Log a cashier in (code + PIN); answers the cashier session token.",
        h.cashier_login,
    ),
    Route("POST", "/v1/cashier/logout", "session", "-", "End the cashier session.", h.cashier_logout),
    Route(
        "GET",
        "/v1/cashier/session",
        "session",
        "-",
        "Who is logged in: roles, allowed actions, point of sale, expiry.",
        h.cashier_session,
    ),
    Route(
        "POST",
        "/v1/cashiers/load",
        "pos",
        "-",
        '"Load": fetch the current cashier roster from the cloud now.',
        h.cashiers_load,
    ),
    Route(
        "POST",
        "/v1/sales",
        "session",
        "sell",
        "Commit a sale (idempotent by request_id); prints the receipt, opens the drawer for cash.",
        h.sale_commit,
        SaleResult,
        201,
    ),
    Route(
        "POST",
        "/v1/refunds",
        "session",
        "refund_own / refund_any",
        "Refund a whole sale or some lines (idempotent by request_id).",
        h.refund,
        RefundResult,
        201,
    ),
    Route(
        "POST",
        "/v1/drawer/open",
        "session",
        "no_sale",
        "Open the cash drawer without a sale (no-sale).",
        h.drawer_open,
        DrawerResult,
    ),
    Route(
        "POST",
        "/v1/print",
        "session",
        "any cashier",
        "Print an arbitrary document on the receipt printer.",
        h.print_document,
        PrintResult,
    ),
    Route(
        "POST",
        "/v1/sales/{sale_id}/reprint",
        "session",
        "any cashier",
        "Print a sale's receipt again, marked as a copy.",
        h.reprint,
        PrintResult,
    ),
    Route(
        "POST",
        "/v1/reports/x",
        "session",
        "any cashier",
        "X report: totals of the open till period (printed on request).",
        h.x_report,
        ReportResult,
    ),
    Route(
        "POST",
        "/v1/reports/z",
        "session",
        "sell or refund_any",
        "Z report: close the till period (printed by default).",
        h.z_report,
        ReportResult,
    ),
    Route("GET", "/v1/openapi.json", "none", "-", "This API's OpenAPI document.", h.openapi),
)
# The event stream (not an HTTP route): WebSocket /v1/events, POS token in the first message.
WEBSOCKET = Route(
    "WS", "/v1/events", "pos", "-", "Event stream: scans, devices, print jobs, cashiers, licence, sales.", lambda: None
)

_bearer = HTTPBearer(
    auto_error=False, scheme_name="posToken", description="POS access token from `kassactl pos token create`"
)
_session = APIKeyHeader(
    name=SESSION_HEADER,
    auto_error=False,
    scheme_name="cashierSession",
    description="cashier session token from POST /v1/cashier/login",
)


def require_pos(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    if credentials is None:
        raise ApiError(
            "pos.token_missing",
            "this POS is not paired: send Authorization: Bearer <POS token> (kassactl pos token create)",
        )
    entry = request.app.state.pos.tokens.check(credentials.credentials)
    if entry is None:
        raise ApiError(
            "pos.token_invalid", "the POS access token is unknown or revoked: ask a technician for a new one"
        )
    request.state.pos_token_id = entry.token_id


def require_session(
    request: Request, _pos: None = Depends(require_pos), session: str | None = Depends(_session)
) -> None:
    if not session:
        raise ApiError(
            "session.missing", f"no cashier is logged in: log in, then send the session token in {SESSION_HEADER}"
        )
    request.state.cashier_session = session


NEEDS = {"none": [], "pos": [Depends(require_pos)], "session": [Depends(require_session)]}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in (
        (401, "no or bad POS token / cashier session"),
        (403, "permission or licence refused"),
        (404, "unknown sale"),
        (409, "request id reused / conflict"),
        (422, "invalid input"),
        (503, "hardware, cloud or module unavailable"),
    )
}


def add_routes(app: FastAPI) -> None:
    for route in ROUTES:
        app.add_api_route(
            route.path,
            route.handler,
            methods=[route.method],
            summary=route.summary,
            name=route.path,
            dependencies=NEEDS[route.needs],
            response_model=route.response_model,
            status_code=route.status,
            responses={} if route.needs == "none" else ERRORS,
            include_in_schema=route.path != "/v1/openapi.json",
            description=f"Needs: {route.needs}" + (f"; cashier action: {route.action}" if route.action != "-" else ""),
        )


def table() -> list[dict[str, str]]:
    """The routes as rows (docs, kassactl, tests)."""
    return [
        {"method": r.method, "path": r.path, "needs": r.needs, "action": r.action, "summary": r.summary}
        for r in (*ROUTES, WEBSOCKET)
    ]
