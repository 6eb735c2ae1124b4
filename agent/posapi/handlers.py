"""What each POS API route does. Which route needs what is in ``agent.posapi.routes.ROUTES``.

Handlers run on the agent loop (uvicorn is a task of it) and call the components the POS API
was built with (``PosParts``). A refusal from a component keeps its stable code and status
(``call``, the one place that maps them).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, cast

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from agent.i18n import language
from agent.posapi.errors import ApiError, from_refusal
from agent.posapi.messages import localize
from agent.posapi.service import PosParts, PosService
from agent.refusal import Refused
from agent.sales.models import RefundRequest, SaleRequest, WholeBody
from agent.store import StoreError
from agent.version import agent_version

log = logging.getLogger(__name__)

# --------------------------------------------------------------------- bodies of our own routes


class _Body(WholeBody):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    code: StrictStr = Field(min_length=1, max_length=64, description="cashier id or 4-digit operator code")
    pin: StrictStr = Field(min_length=1, max_length=64, description="the cashier's PIN (never logged)")
    point_of_sale: StrictStr | None = Field(
        None, max_length=64, description="whose details the session uses (default: the terminal's)"
    )


class DrawerBody(_Body):
    drawer: StrictStr | None = Field(None, max_length=32, description="drawer name (default: the cash drawer)")


class PrintBody(_Body):
    document: dict[str, Any] = Field(description="the document to print (format: docs/pos-api.md#print-a-document)")


class ReportBody(_Body):
    print: StrictBool | None = Field(None, description="print the report (default: X no, Z yes)")


# --------------------------------------------------------------------- helpers


def parts(request: Request) -> PosParts:
    service: PosService = request.app.state.pos
    return service.parts


def session_token(request: Request) -> str:
    token: str = request.state.cashier_session  # set by the route's session check (routes.require_session)
    return token


async def call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await a component method; its refusals become ApiErrors with their own codes."""
    try:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result
    except (ApiError, StoreError):  # a StoreError (full disk) is answered by the app's handler (errors.py)
        raise
    except Refused as refused:
        raise from_refusal(refused) from None
    except Exception:
        log.exception("POS API call failed", extra={"call": getattr(func, "__qualname__", "?")})
        raise ApiError(
            "internal", "the terminal could not do this (an error in the agent); see kassactl logs"
        ) from None


def dump(result: Any) -> Any:
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


# --------------------------------------------------------------------- status


def status(request: Request) -> dict[str, Any]:
    service: PosService = request.app.state.pos
    p, config = service.parts, service.runtime.config
    licence = p.licence.sale_verdict()
    cashiers = p.cashiers.status()
    hardware = p.hardware.status()
    cloud = p.cloud.link.status() if p.cloud.link is not None else None
    return {
        "device_id": config.device_id,
        "agent": {
            "state": p.agent.state,
            "version": agent_version(),
            "boot_id": str(p.agent.boot_id),
            "point_of_sale": config.site.point_of_sale,
        },
        "licence": {
            "ok": licence.ok,
            "code": licence.code,
            "message": localize(language(config.site.language), licence.code, licence.message, {})[0],
            "licence_id": licence.licence_id,
            "expires_at": licence.expires_at,
        },
        "cashiers": {
            "roster_version": cashiers.get("roster_version", 0),
            "cashiers": cashiers.get("cashiers", 0),
            "open_sessions": cashiers.get("open_sessions", 0),
        },
        "printers": hardware.get("printers", {}),
        "receipt_printer": hardware.get("receipt_printer"),
        "scanners": hardware.get("scanners", {}),
        "drawers": hardware.get("drawers", []),
        "cloud": None
        if cloud is None
        else {
            "connected": cloud["connected"],
            "outbox_depth": cloud["outbox_depth"],
            "outbox_oldest_age_s": cloud["outbox_oldest_age_s"],
        },
    }


# --------------------------------------------------------------------- cashiers


async def cashier_login(request: Request, body: LoginBody) -> dict[str, Any]:
    cashiers = parts(request).cashiers
    result = await call(cashiers.login, body.code, body.pin, body.point_of_sale)
    answer: dict[str, Any] = result.as_dict(cashiers.config.cashiers.session_timeout_s)
    return answer


async def cashier_logout(request: Request) -> dict[str, Any]:
    return cast(dict[str, Any], await call(parts(request).cashiers.logout, session_token(request)))


async def cashier_session(request: Request) -> dict[str, Any]:
    return cast(dict[str, Any], await call(parts(request).cashiers.session, session_token(request)))


async def cashiers_load(request: Request) -> dict[str, Any]:
    return cast(dict[str, Any], await call(parts(request).cashiers.load))


# --------------------------------------------------------------------- sales


async def sale_commit(request: Request, response: Response, body: SaleRequest) -> Any:
    result = await call(parts(request).sales.commit_sale, session_token(request), body)
    response.status_code = 200 if result.replayed else 201
    return dump(result)


async def refund(request: Request, response: Response, body: RefundRequest) -> Any:
    result = await call(parts(request).sales.refund, session_token(request), body)
    response.status_code = 200 if result.replayed else 201
    return dump(result)


async def drawer_open(request: Request, body: DrawerBody | None = None) -> Any:
    named = body.drawer if body else None
    return dump(await call(parts(request).sales.open_drawer, session_token(request), named))


async def print_document(request: Request, body: PrintBody) -> Any:
    return dump(await call(parts(request).sales.print_document, session_token(request), body.document))


async def reprint(request: Request, sale_id: str) -> Any:
    if len(sale_id) > 64:
        raise ApiError("sale.unknown", "no such sale on this terminal")
    return dump(await call(parts(request).sales.reprint, session_token(request), sale_id))


async def x_report(request: Request, body: ReportBody | None = None) -> Any:
    wanted = body.print if body is not None and body.print is not None else False
    return dump(await call(parts(request).sales.x_report, session_token(request), print_it=wanted))


async def z_report(request: Request, body: ReportBody | None = None) -> Any:
    wanted = body.print if body is not None and body.print is not None else True
    return dump(await call(parts(request).sales.z_report, session_token(request), print_it=wanted))


def openapi(request: Request) -> dict[str, Any]:
    spec: dict[str, Any] = request.app.openapi()
    return spec
