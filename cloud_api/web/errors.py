"""Errors on pages are pages: a cabinet URL that fails shows a page in the person's language,
the JSON API keeps its `{"error": ...}` bodies. Which one is decided by the path's first segment."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cloud_api.api import errors as api_errors
from cloud_api.refusals import N_, Refused
from cloud_api.web.context import PageRedirect, PageRefused, get_visitor
from cloud_api.web.forms import translate
from cloud_api.web.pages import page, redirect

PAGE_SEGMENTS = frozenset(
    {
        "",
        "signin",
        "signout",
        "register",
        "verify",
        "resend",
        "reset",
        "invite",
        "choose",
        "language",
        "account",
        "owner",
        "partner",
        "company",
    }
)
TITLES = {
    400: N_("Something is wrong with this request"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    409: N_("This changed meanwhile"),
    422: N_("Something is wrong with this request"),
    429: N_("Too many attempts"),
}
MESSAGES = {
    403: N_("Your role may not do this. Ask an admin of your organisation."),
    404: N_("This page does not exist, or it belongs to another organisation."),
    409: N_("This changed meanwhile. Go back, reload the page and check."),
    405: N_("This address does not take that kind of request."),
    422: N_("Something in the address or the form is not valid. Go back and check it."),
}


def is_page(request: Request) -> bool:
    return request.url.path.split("/", 2)[1] in PAGE_SEGMENTS


def _error_page(request: Request, status: int, message: str, **params: object) -> Response:
    engine = request.app.state.engine
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as db:
        visitor = get_visitor(request, db)
        _ = visitor.lang.gettext
        text = _(message)
        if params:
            text = text.format(**params)
        return page(
            visitor, "error.html", _(TITLES.get(status, N_("Something went wrong"))), message=text, status=status
        )


def install(app: FastAPI) -> None:
    @app.exception_handler(PageRedirect)
    async def _redirect(_request: Request, exc: PageRedirect) -> Response:
        return redirect(exc.location)

    @app.exception_handler(PageRefused)
    async def _refused_page(request: Request, exc: PageRefused) -> Response:
        return _error_page(request, exc.status, exc.message, **exc.params)

    @app.exception_handler(api_errors.ApiError)
    async def _api_error(request: Request, exc: api_errors.ApiError) -> Response:
        if is_page(request):
            return _error_page(request, exc.status, MESSAGES.get(exc.status, exc.message))
        return await api_errors.api_error_response(request, exc)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        if is_page(request):
            engine = request.app.state.engine
            from sqlalchemy.orm import Session

            with Session(engine) as db:
                lang = get_visitor(request, db).lang
            return _error_page(request, exc.status, translate(exc, lang).replace("{", "{{").replace("}", "}}"))
        return await api_errors.refused_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page(request):
            return _error_page(request, exc.status_code, MESSAGES.get(exc.status_code, N_("Something went wrong.")))
        return await api_errors.http_error_response(request, exc)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        if is_page(request):  # two requests made the same thing at once: the second one is told to look
            return _error_page(request, 409, N_("This changed meanwhile. Go back, reload the page and check."))
        return await api_errors.integrity_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_page(request):
            return _error_page(request, 422, MESSAGES[422])
        return await api_errors.invalid_response(request, exc)
