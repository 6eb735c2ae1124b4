"""Every error the API returns is `{"error": {"code": "...", "message": "..."}}`.

Codes are stable (clients may switch on them); messages are for people. Objects of other
tenants are reported as `not_found`, exactly like objects that do not exist, so ids never
reveal what another tenant has.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_api.refusals import Refused

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, {"WWW-Authenticate": "Bearer"})


# Documented on every route, so the OpenAPI spec lists the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in [
        (401, "missing, unknown or revoked token"),
        (403, "the role may not do this"),
        (404, "no such object in your tenant"),
        (409, "conflicts with the current state"),
        (422, "invalid input"),
    ]
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


def _body(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def api_error_response(_request: Request, exc: ApiError) -> JSONResponse:
    return _body(exc.status, exc.code, exc.message, exc.headers)


async def invalid_response(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return _body(422, "invalid_request", "; ".join(problems) or "invalid request")


async def http_error_response(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return _body(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def refused_response(_request: Request, exc: Refused) -> JSONResponse:
    code = "invalid_request" if exc.kind == "invalid" else exc.code
    return _body(exc.status, code, exc.message)


async def integrity_response(_request: Request, exc: IntegrityError) -> JSONResponse:
    # A concurrent request created the same unique key first (the checks before the
    # write passed in both): the second one is a conflict, not a server error.
    log.info("integrity conflict", extra={"error": str(exc.orig)})
    return _body(409, "conflict", "conflicts with a concurrent change; read and retry")


def install(app: FastAPI) -> None:
    """The JSON error handlers (the web pages put their own in front: cloud_api/web/errors.py)."""
    app.add_exception_handler(ApiError, api_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_response)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, refused_response)  # type: ignore[arg-type]

    app.add_exception_handler(IntegrityError, integrity_response)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error in the HTTP API", exc_info=exc)
        return _body(500, "internal", "internal error; see the service log")
