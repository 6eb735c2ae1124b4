"""Who is looking at a page: the visitor (maybe signed in), and for cabinet pages the member.

`VisitorDep` gives every page its database session, language, CSRF token and (when signed in)
the person. `member(level)` admits only a person whose open cabinet is of `level`: anyone else
is sent to sign in (no session), to choose a cabinet (none open), or gets 403 (another
cabinet's page). Cabinet pages find their objects through the same tenant scopes the JSON API
uses (cloud_api/tenancy/access.py), so another organisation's object is a 404.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cloud_api.accounts.audit import Actor
from cloud_api.accounts.mails import Mailer
from cloud_api.accounts.models import Person, WebSession
from cloud_api.accounts.people import Membership, memberships
from cloud_api.accounts.sessions import find_session
from cloud_api.api.deps import SessionDep
from cloud_api.refusals import N_
from cloud_api.tenancy.models import Role
from cloud_api.tenancy.tokens import Principal
from cloud_api.tenancy.tokens import utcnow as now  # pages import it from here
from cloud_api.web.i18n import Language, cabinet_language, request_language

SESSION_COOKIE = "kassa_session"
CSRF_COOKIE = "kassa_csrf"  # before signing in: double-submitted with the form's hidden field
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"  # htmx requests send it (hx-headers on <body>)


class PageRedirect(Exception):
    """Send the browser elsewhere (303): to sign in, or to choose a cabinet."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class PageRefused(Exception):
    """Show an error page with this status and (translatable) message."""

    def __init__(self, status: int, message: str, **params: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.params = params


def new_request_id() -> str:
    """For a form that makes something (a document): sent twice, it still makes one."""
    return secrets.token_urlsafe(16)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass
class Visitor:
    request: Request
    db: Session
    lang: Language
    csrf_token: str
    web_session: WebSession | None = None
    person: Person | None = None
    new_csrf_cookie: str | None = None  # set on the response when the visitor had none
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        settings = self.request.app.state.settings
        return self.request.url.scheme == "https" or str(getattr(settings, "public_url", "")).startswith("https")

    def mailer(self) -> Mailer:
        settings = self.request.app.state.settings
        base = getattr(settings, "public_url", None) or str(self.request.base_url)
        return Mailer(base, self.lang)

    def wake_mail(self) -> None:
        """After a commit that queued mail: the sender need not wait for its next round."""
        sender = getattr(self.request.app.state, "mail_sender", None)
        if sender is not None:
            sender.wake()


@dataclass
class Member(Visitor):
    membership: Membership | None = None
    all_memberships: list[Membership] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        assert self.membership is not None
        user = self.membership.user
        return Principal(user.id, user.role, user.owner_id, user.partner_id, user.company_id, 0)

    @property
    def actor(self) -> Actor:
        assert self.person is not None
        return Actor(self.principal, self.person.email, self.person.id, client_ip(self.request))

    @property
    def grade(self) -> str:
        return Role.grade_of(self.principal.role)

    @property
    def may_write(self) -> bool:
        return self.grade != "viewer"

    @property
    def is_admin(self) -> bool:
        return self.grade == "admin"

    def require_write(self) -> None:
        if not self.may_write:
            raise PageRefused(403, N_("Your role here is read-only: ask an admin of your organisation."))

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PageRefused(403, N_("Only an admin of your organisation may do this."))


def get_visitor(request: Request, db: SessionDep) -> Visitor:
    moment = now()
    web_session = find_session(db, request.cookies.get(SESSION_COOKIE), moment)
    person = db.get(Person, web_session.person_id) if web_session is not None else None
    new_cookie = None
    if web_session is not None:
        csrf = web_session.csrf_secret
    else:
        csrf = request.cookies.get(CSRF_COOKIE) or ""
        if not (20 <= len(csrf) <= 100):
            csrf = new_cookie = secrets.token_urlsafe(32)
    lang = cabinet_language(person.locale) if person is not None and person.locale else request_language(request)
    return Visitor(request, db, lang, csrf, web_session, person, new_cookie)


VisitorDep = Annotated[Visitor, Depends(get_visitor)]


def member(level: str) -> Callable[..., Member]:
    """Dependency: the signed-in person in an open cabinet of `level`."""

    def dependency(visitor: VisitorDep) -> Member:
        request = visitor.request
        if visitor.web_session is None or visitor.person is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise PageRedirect(f"/signin?next={quote(target, safe='')}")
        found = memberships(visitor.db, visitor.person.id)
        chosen = next((m for m in found if m.user.id == visitor.web_session.user_id), None)
        if chosen is None:
            raise PageRedirect("/choose")
        if chosen.level != level:
            raise PageRefused(403, N_("This page belongs to another cabinet. Switch cabinet in the menu at the top."))
        return Member(**vars(visitor), membership=chosen, all_memberships=found)

    return dependency


OwnerDep = Annotated[Member, Depends(member("owner"))]
PartnerDep = Annotated[Member, Depends(member("partner"))]
CompanyDep = Annotated[Member, Depends(member("company"))]


def signed_in(visitor: VisitorDep) -> Visitor:
    if visitor.web_session is None or visitor.person is None:
        raise PageRedirect("/signin")
    return visitor


SignedInDep = Annotated[Visitor, Depends(signed_in)]


# ------------------------------------------------------------------------------ forms
async def checked_form(request: Request, visitor: VisitorDep) -> dict[str, str]:
    """The posted form's fields, once its CSRF token is right (else 403, nothing changed)."""
    form = await request.form()
    sent = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    expected = visitor.csrf_token if visitor.new_csrf_cookie is None else ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PageRefused(
            403,
            N_("This form has expired or did not come from this site. Go back, reload the page and send it again."),
        )
    return {key: str(value) for key, value in form.items() if isinstance(value, str) and key != CSRF_FIELD}


FormDep = Annotated[dict[str, str], Depends(checked_form)]
