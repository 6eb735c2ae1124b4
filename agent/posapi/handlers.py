"""What each POS API route does. Which route needs what is in ``agent.posapi.routes.ROUTES``.

Handlers run on the agent loop (uvicorn is a task of it) and call the components
directly. A refusal from a component keeps its stable code (``errors.from_refusal``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from agent.i18n import language
from agent.posapi.errors import ApiError, from_refusal
from agent.posapi.messages import localize
from agent.sales.models import RefundRequest, SaleRequest, WholeBody
from agent.store import StoreError

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


def component(request: Request, name: str) -> Any:
    try:
        return request.app.state.agent.component(name)
    except LookupError:
        raise ApiError(
            "unavailable", f"the {name} module of this terminal is not running; see kassactl status"
        ) from None


def session_token(request: Request) -> str:
    return request.state.cashier_session  # set by the route's session check (routes.require_session)


async def call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Await a component method; its refusals become ApiErrors with their own codes."""
    from agent.cashiers.component import LoadError
    from agent.hardware.component import HardwareError
    from agent.hardware.print_queue import PrintQueueError

    try:
        result = func(*args, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result
    except (ApiError, StoreError):  # a StoreError (full disk) is answered by the app's handler (errors.py)
        raise
    except (LoadError, HardwareError, PrintQueueError) as exc:
        code = "cashiers.load_unavailable" if isinstance(exc, LoadError) else "unavailable"
        raise ApiError(code, str(exc), 503) from None
    except NotImplementedError:
        raise ApiError("unavailable", "this terminal's agent cannot do this yet; update the agent", 503) from None
    except Exception as exc:
        if isinstance(getattr(exc, "code", None), str) and isinstance(getattr(exc, "message", None), str):
            raise from_refusal(exc) from None
        log.exception("POS API call failed", extra={"call": getattr(func, "__qualname__", "?")})
        raise ApiError(
            "internal", "the terminal could not do this (an error in the agent); see kassactl logs"
        ) from None


def dump(result: Any) -> Any:
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


# --------------------------------------------------------------------- status


def status(request: Request) -> dict[str, Any]:
    agent = request.app.state.agent
    parts: dict[str, Any] = {c.name: c for c in agent.components}
    licence = parts["licence"].sale_verdict() if "licence" in parts else None
    cashiers = parts["cashiers"].status() if "cashiers" in parts else {}
    hardware = parts["hardware"].status() if "hardware" in parts else {}
    cloud = parts["cloud"].status() if "cloud" in parts else None
    return {
        "device_id": agent.config.device_id,
        "agent": {
            "state": agent.state,
            "version": agent.status()["version"],
            "boot_id": str(agent.boot_id),
            "point_of_sale": agent.config.site.point_of_sale,
        },
        "licence": None
        if licence is None
        else {
            "ok": licence.ok,
            "code": licence.code,
            "message": localize(language(agent.config.site.language), licence.code, licence.message, {})[0],
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
    cashiers = component(request, "cashiers")
    result = await call(cashiers.login, body.code, body.pin, body.point_of_sale)
    return result.as_dict(request.app.state.agent.config.cashiers.session_timeout_s)


async def cashier_logout(request: Request) -> dict[str, Any]:
    return await call(component(request, "cashiers").logout, session_token(request))


async def cashier_session(request: Request) -> dict[str, Any]:
    return await call(component(request, "cashiers").session, session_token(request))


async def cashiers_load(request: Request) -> dict[str, Any]:
    return await call(component(request, "cashiers").load)


# --------------------------------------------------------------------- sales


async def sale_commit(request: Request, response: Response, body: SaleRequest) -> Any:
    result = await call(component(request, "sales").commit_sale, session_token(request), body)
    response.status_code = 200 if getattr(result, "replayed", False) else 201
    return dump(result)


async def refund(request: Request, response: Response, body: RefundRequest) -> Any:
    result = await call(component(request, "sales").refund, session_token(request), body)
    response.status_code = 200 if getattr(result, "replayed", False) else 201
    return dump(result)


async def drawer_open(request: Request, body: DrawerBody | None = None) -> Any:
    named = body.drawer if body else None
    return dump(await call(component(request, "sales").open_drawer, session_token(request), named))


async def print_document(request: Request, body: PrintBody) -> Any:
    return dump(await call(component(request, "sales").print_document, session_token(request), body.document))


async def reprint(request: Request, sale_id: str) -> Any:
    if len(sale_id) > 64:
        raise ApiError("sale.unknown", "no such sale on this terminal")
    return dump(await call(component(request, "sales").reprint, session_token(request), sale_id))


async def x_report(request: Request, body: ReportBody | None = None) -> Any:
    wanted = body.print if body is not None and body.print is not None else False
    return dump(await call(component(request, "sales").x_report, session_token(request), print_it=wanted))


async def z_report(request: Request, body: ReportBody | None = None) -> Any:
    wanted = body.print if body is not None and body.print is not None else True
    return dump(await call(component(request, "sales").z_report, session_token(request), print_it=wanted))


def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()
