"""Errors of the POS API: always ``{"error": {"code": "<stable.code>", "message": "..."}}``.

Every refusal from the components (agent/refusal.py) keeps its stable code
(``licence.expired``, ``cashier.wrong_pin``, ``sale.request_id_reused``, ...) and its HTTP
status. Nothing a client sends may produce a 5xx: malformed input is 422, an unknown
route 404, hardware or cloud trouble 503. The message is in the terminal's language
(``site.language``; agent/posapi/messages.py), with the English one as ``detail`` when
it was translated.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.i18n import language
from agent.posapi.messages import localize
from agent.refusal import Refused, http_status
from agent.store import StoreError, StoreFullError

log = logging.getLogger(__name__)

# Codes of the POS API itself (the components' refusals are in agent/refusal.py).
OWN_STATUS: dict[str, int] = {
    "pos.token_missing": 401,
    "pos.token_invalid": 401,
    "pos.origin_forbidden": 403,  # the event WebSocket's handshake (events_ws.py)
    "session.missing": 401,
    "request.invalid": 422,
    "request.too_large": 413,
    "http.not_found": 404,
    "http.method_not_allowed": 405,
    "internal": 500,
}


def status_for(code: str) -> int:
    return OWN_STATUS.get(code) or http_status(code)


class ApiError(Refused):
    """The POS API's answer to a failed request: a component's refusal or the API's own."""

    def __init__(self, code: str, message: str, status: int | None = None, **details: Any) -> None:
        super().__init__(
            code, message, status=status or status_for(code), **{k: v for k, v in details.items() if v is not None}
        )

    @property
    def status(self) -> int:
        return self.http_status

    def body(self, language_tag: str | None = None) -> dict[str, Any]:
        """The answer, its message in ``language_tag`` (the terminal's ``site.language``)."""
        message, english = localize(language(language_tag), self.code, self.message, self.details)
        error: dict[str, Any] = {"code": self.code, "message": message}
        if english is not None:
            error["detail"] = english
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None, language_tag: str | None = None) -> JSONResponse:
        return JSONResponse(self.body(language_tag), status_code=self.status, headers=headers)


def site_language(app: Any) -> str | None:
    """The terminal's language now (``site.language`` changes without a restart)."""
    pos = getattr(getattr(app, "state", None), "pos", None)
    return pos.runtime.config.site.language if pos is not None else None


def from_refusal(exc: Refused) -> ApiError:
    """A component's refusal as the API's answer: its code, message, details and status."""
    return ApiError(exc.code, exc.message, exc.http_status, **exc.details)


def from_store_error(exc: StoreError) -> ApiError:
    """The store refused a write (a full disk, ...): nothing of the request was saved. 503 with a
    stable code, never a 500: the agent is fine and resumes by itself once the cause is gone."""
    if isinstance(exc, StoreFullError):
        return ApiError(
            "store.disk_full",
            "The terminal's disk is full: this was not saved (nothing was corrupted). "
            "Ask a technician to free space on the terminal (kassactl status shows where); "
            "it works again by itself once there is room, then try again.",
            store=str(exc),
        )
    return ApiError("store.unavailable", f"The terminal could not save this: {exc}")


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "licence.expired"},
                "message": {
                    "type": "string",
                    "example": "the licence lease expired: connect the terminal to the cloud",
                },
                "detail": {
                    "type": "string",
                    "description": "the agent's English message, when `message` is a translation of it",
                },
                "details": {"type": "object"},
            },
        }
    },
}


def install(app: FastAPI) -> None:
    """Exception handlers that give every failure the one error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code.startswith("pos.token") else None
        return exc.response(headers, site_language(request.app))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error(
            "POS API request refused: the store cannot write", extra={"path": request.url.path, "problem": str(exc)}
        )
        return from_store_error(exc).response(language_tag=site_language(request.app))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in exc.errors()[:5]
        )
        return ApiError("request.invalid", f"the request is malformed: {problems}"[:1000]).response(
            language_tag=site_language(request.app)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "http.not_found", 405: "http.method_not_allowed"}.get(exc.status_code, f"http.{exc.status_code}")
        message = {
            404: f"no such API route: {request.method} {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        return ApiError(code, message.get(exc.status_code, str(exc.detail)), exc.status_code).response(
            language_tag=site_language(request.app)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A handler runs after the exception was caught: the traceback comes from exc, not sys.exc_info().
        log.error("POS API request failed", extra={"path": request.url.path}, exc_info=exc)
        return ApiError(
            "internal", "the terminal could not do this (an error in the agent); see kassactl logs"
        ).response(language_tag=site_language(request.app))
