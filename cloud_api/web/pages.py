"""Building a page response: the context every template needs, cookies, redirects."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from starlette.responses import RedirectResponse, Response

from cloud_api.web.context import CSRF_COOKIE, Member, Visitor
from cloud_api.web.i18n import LANGUAGE_NAMES, LANGUAGES
from cloud_api.web.nav import CABINET_LABELS, GRADE_LABELS, NAV
from cloud_api.web.render import render


def base_context(visitor: Visitor, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "csrf_token": visitor.csrf_token,
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "request_path": visitor.request.url.path,
        "person": visitor.person,
        "notice": _notice(visitor),
        "errors": {},
    }


def page(visitor: Visitor, template: str, title: str, *, status: int = 200, **context: Any) -> Response:
    """Render `template` for a visitor (plain pages: sign-in, registration, messages)."""
    values = base_context(visitor, title)
    if isinstance(visitor, Member) and visitor.membership is not None:
        gettext = visitor.lang.gettext
        level = visitor.membership.level
        values.update(
            level=level,
            nav=NAV[level],
            org_name=visitor.membership.org_name,
            cabinet_label=gettext(CABINET_LABELS[level]),
            role_label=gettext(GRADE_LABELS[visitor.grade]),
            memberships=visitor.all_memberships,
            member=visitor,
        )
    values.update(context)
    response = render(template, visitor.lang, values, status=status)
    remember_csrf(visitor, response)
    if values["notice"]:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


NOTICE_COOKIE = "kassa_notice"  # a one-time message shown on the page a form redirected to


def _notice(visitor: Visitor) -> str | None:
    text = visitor.request.cookies.get(NOTICE_COOKIE)
    return unquote(text)[:300] if text else None


def remember_csrf(visitor: Visitor, response: Response) -> None:
    if visitor.new_csrf_cookie is not None:
        response.set_cookie(
            CSRF_COOKIE, visitor.new_csrf_cookie, httponly=True, samesite="strict", secure=visitor.secure, path="/"
        )


def redirect(location: str, visitor: Visitor | None = None, *, notice: str | None = None) -> Response:
    """303 to `location`; `notice` (already translated) is shown once on the page it reaches."""
    response = RedirectResponse(location, status_code=303)
    if visitor is not None:
        remember_csrf(visitor, response)
        if notice:
            response.set_cookie(
                NOTICE_COOKIE, quote(notice), max_age=120, httponly=True, samesite="lax", secure=visitor.secure
            )
    return response


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site (no //host, no scheme): an open redirect would help phishing."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) < 500:
        return target
    return default
