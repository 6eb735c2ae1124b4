"""Signing in and out, registering a company, the links mailed to people, choosing a cabinet,
the language, and the person's own account page."""

from __future__ import annotations

import threading

from fastapi import APIRouter
from starlette.responses import Response

from cloud_api.accounts import people
from cloud_api.accounts.links import peek_link
from cloud_api.accounts.models import LinkPurpose, Person
from cloud_api.accounts.people import memberships
from cloud_api.accounts.schemas import (
    AcceptInvitationForm,
    EmailForm,
    NewPasswordForm,
    RegisterCompanyForm,
    SignInForm,
)
from cloud_api.accounts.sessions import close_all_sessions, close_session, open_session
from cloud_api.api.errors import ApiError
from cloud_api.pairing.limits import RateLimiter
from cloud_api.refusals import Refused
from cloud_api.tenancy.models import Role, User
from cloud_api.web.context import (
    SESSION_COOKIE,
    FormDep,
    SignedInDep,
    Visitor,
    VisitorDep,
    client_ip,
    now,
)
from cloud_api.web.forms import refusal_errors, translate, validate
from cloud_api.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from cloud_api.web.nav import CABINET_LABELS, GRADE_LABELS, HOME
from cloud_api.web.pages import page, redirect, safe_next

router = APIRouter(include_in_schema=False)
_LIMITER_LOCK = threading.Lock()


def _message(
    visitor: Visitor, title: str, text: str, *, link: tuple[str, str] | None = None, status: int = 200
) -> Response:
    return page(visitor, "message.html", title, message=text, link=link, status=status)


def _mail_sent(visitor: Visitor, text: str) -> Response:
    """Commit what queued a mail, wake the sender, tell the person to look in their inbox."""
    visitor.db.commit()
    visitor.wake_mail()
    return _message(visitor, visitor.lang.gettext("Check your e-mail"), text)


def _link_refused(visitor: Visitor, refused: Refused, again: tuple[str, str] | None = None) -> Response:
    _ = visitor.lang.gettext
    return _message(visitor, _("Link not valid"), translate(refused, visitor.lang), link=again, status=refused.status)


def _reset_again(visitor: Visitor) -> tuple[str, str]:
    return ("/reset", visitor.lang.gettext("Send a new link"))


def _email_form(visitor: Visitor, *, reset: bool, values: dict[str, str], errors: dict[str, str]) -> Response:
    """The one-field form that mails a link: a password reset, or a new confirmation link."""
    _ = visitor.lang.gettext
    title, button, action = (
        (_("Reset your password"), _("Send a reset link"), "/reset")
        if reset
        else (_("Send a new confirmation link"), _("Send the link"), "/resend")
    )
    return page(
        visitor,
        "email_form.html",
        title,
        action=action,
        values=values,
        errors=errors,
        button=button,
        status=422 if errors else 200,
    )


def _new_password_form(visitor: Visitor, token: str, errors: dict[str, str]) -> Response:
    title = visitor.lang.gettext("Choose a new password")
    return page(
        visitor,
        "new_password.html",
        title,
        action=f"/reset/{token}",
        values={},
        errors=errors,
        status=422 if errors else 200,
    )


@router.get("/")
def home(visitor: VisitorDep) -> Response:
    if visitor.web_session is None:
        return redirect("/signin", visitor)
    return redirect("/choose", visitor)


# ------------------------------------------------------------------------------ sign in / out
@router.get("/signin")
def signin_page(visitor: VisitorDep, next: str | None = None) -> Response:
    return page(visitor, "signin.html", visitor.lang.gettext("Sign in"), values={}, next=safe_next(next, ""))


def _signin_limiter(visitor: Visitor) -> RateLimiter:
    state = visitor.request.app.state
    with _LIMITER_LOCK:
        if getattr(state, "signin_limiter", None) is None:
            per_minute = state.settings.signin_attempts_per_minute
            state.signin_limiter = RateLimiter(per_minute, "sign-in attempts")
        limiter: RateLimiter = state.signin_limiter
    return limiter


@router.post("/signin")
def signin(visitor: VisitorDep, form: FormDep) -> Response:
    _ = visitor.lang.gettext
    target = safe_next(form.get("next"), "/choose")
    data, errors = validate(SignInForm, form, visitor.lang)
    values = {"email": form.get("email", "")[:254]}
    try:  # guessing many accounts' passwords from one address: slowed down before any is checked
        _signin_limiter(visitor).check(client_ip(visitor.request) or "unknown")
    except ApiError:
        errors = {"__all__": _("Too many sign-in attempts from your network. Wait a minute, then try again.")}
        return page(visitor, "signin.html", _("Sign in"), values=values, errors=errors, next=target, status=429)
    if data is None:
        return page(visitor, "signin.html", _("Sign in"), values=values, errors=errors, next=target, status=422)
    moment = now()
    try:
        person = people.sign_in(visitor.db, data.email, data.password, moment)
    except Refused as refused:
        visitor.db.commit()  # the failure counter
        status = 429 if refused.kind == "locked" else 401 if refused.kind == "unauthenticated" else 403
        return page(
            visitor,
            "signin.html",
            _("Sign in"),
            values=values,
            errors={"__all__": translate(refused, visitor.lang)},
            unverified=refused.code == "signin.unverified",
            next=target,
            status=status,
        )
    if visitor.web_session is not None:  # signing in as someone else in the same browser
        close_session(visitor.db, visitor.web_session, moment)
    row, cookie = open_session(
        visitor.db, person, moment, ip=client_ip(visitor.request), user_agent=visitor.request.headers.get("user-agent")
    )
    found = memberships(visitor.db, person.id)
    if len(found) == 1:
        row.user_id = found[0].user.id
        if target == "/choose":
            target = HOME[found[0].level]
    visitor.db.commit()
    response = redirect(target, visitor)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="lax", secure=visitor.secure, path="/")
    return response


@router.post("/signout")
def signout(visitor: VisitorDep, form: FormDep) -> Response:
    if visitor.web_session is not None:
        close_session(visitor.db, visitor.web_session, now())
        visitor.db.commit()
    response = redirect("/signin", visitor, notice=visitor.lang.gettext("You are signed out."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------ choose a cabinet
@router.get("/choose")
def choose_page(visitor: SignedInDep) -> Response:
    assert visitor.person is not None
    found = memberships(visitor.db, visitor.person.id)
    gettext = visitor.lang.gettext
    options = [
        (m.user.id, gettext(CABINET_LABELS[m.level]), m.org_name, gettext(GRADE_LABELS[Role.grade_of(m.user.role)]))
        for m in found
    ]
    return page(visitor, "choose.html", gettext("Choose a cabinet"), options=options)


@router.post("/choose")
def choose(visitor: SignedInDep, form: FormDep) -> Response:
    assert visitor.person is not None and visitor.web_session is not None
    found = memberships(visitor.db, visitor.person.id)
    chosen = next((m for m in found if str(m.user.id) == form.get("membership")), None)
    if chosen is None:
        return redirect("/choose", visitor)
    visitor.web_session.user_id = chosen.user.id
    visitor.db.commit()
    return redirect(HOME[chosen.level], visitor)


# ------------------------------------------------------------------------------ registration
@router.get("/register")
def register_page(visitor: VisitorDep) -> Response:
    return page(visitor, "register.html", visitor.lang.gettext("Register your company"), values={})


@router.post("/register")
def register(visitor: VisitorDep, form: FormDep) -> Response:
    _ = visitor.lang.gettext
    title = _("Register your company")
    values = {key: form.get(key, "")[:254] for key in ("company_name", "name", "email")}
    data, errors = validate(RegisterCompanyForm, form, visitor.lang)
    if data is None:
        return page(visitor, "register.html", title, values=values, errors=errors, status=422)
    try:
        _company, person, token = people.register_company(
            visitor.db,
            company_name=data.company_name,
            person_name=data.name,
            email=data.email,
            password=data.password,
            locale=visitor.lang.code,
            ip=client_ip(visitor.request),
            now=now(),
            mailer=visitor.mailer(),
        )
    except Refused as refused:
        visitor.db.rollback()
        return page(
            visitor, "register.html", title, values=values, errors=refusal_errors(refused, visitor.lang), status=422
        )
    if token is None:  # an existing, verified account got the company
        visitor.db.commit()
        return redirect("/signin", visitor, notice=_("The company is registered. Sign in and choose its cabinet."))
    return _mail_sent(
        visitor,
        _("We sent a link to {email}. Open it to confirm your address, then sign in.").format(email=person.email),
    )


@router.get("/verify/{token}")
def verify_page(token: str, visitor: VisitorDep) -> Response:
    # Mail scanners open links: the GET only shows a button; the POST uses the link.
    return page(visitor, "confirm.html", visitor.lang.gettext("Confirm your e-mail address"), action=f"/verify/{token}")


@router.post("/verify/{token}")
def verify(token: str, visitor: VisitorDep, form: FormDep) -> Response:
    try:
        people.verify_email(visitor.db, token, now())
    except Refused as refused:
        visitor.db.rollback()
        return _link_refused(visitor, refused, ("/resend", visitor.lang.gettext("Send a new link")))
    visitor.db.commit()
    return redirect(
        "/signin", visitor, notice=visitor.lang.gettext("Your e-mail address is confirmed. You can sign in now.")
    )


@router.get("/resend")
def resend_page(visitor: VisitorDep) -> Response:
    return _email_form(visitor, reset=False, values={}, errors={})


@router.post("/resend")
def resend(visitor: VisitorDep, form: FormDep) -> Response:
    people.resend_verification(visitor.db, form.get("email", ""), now(), visitor.mailer())
    return _mail_sent(
        visitor,
        visitor.lang.gettext("If that address has an account waiting for confirmation, a new link is on its way."),
    )


# ------------------------------------------------------------------------------ password reset
@router.get("/reset")
def reset_request_page(visitor: VisitorDep) -> Response:
    return _email_form(visitor, reset=True, values={}, errors={})


@router.post("/reset")
def reset_request(visitor: VisitorDep, form: FormDep) -> Response:
    data, errors = validate(EmailForm, form, visitor.lang)
    if data is None:
        return _email_form(visitor, reset=True, values=form, errors=errors)
    people.request_password_reset(visitor.db, data.email, now(), visitor.mailer())
    return _mail_sent(
        visitor,
        visitor.lang.gettext("If {email} has an account, a link to reset its password is on its way.").format(
            email=data.email
        ),
    )


@router.get("/reset/{token}")
def reset_page(token: str, visitor: VisitorDep) -> Response:
    try:
        peek_link(visitor.db, token, LinkPurpose.RESET, now())
    except Refused as refused:
        return _link_refused(visitor, refused, _reset_again(visitor))
    return _new_password_form(visitor, token, {})


@router.post("/reset/{token}")
def reset(token: str, visitor: VisitorDep, form: FormDep) -> Response:
    data, errors = validate(NewPasswordForm, form, visitor.lang)
    if data is None:
        return _new_password_form(visitor, token, errors)
    try:
        people.reset_password(visitor.db, token, data.password, now())
    except Refused as refused:
        visitor.db.rollback()
        if refused.field:
            return _new_password_form(visitor, token, refusal_errors(refused, visitor.lang))
        return _link_refused(visitor, refused, _reset_again(visitor))
    visitor.db.commit()
    return redirect(
        "/signin",
        visitor,
        notice=visitor.lang.gettext(
            "Your password is changed, and every other session is signed out. Sign in with the new password."
        ),
    )


# ------------------------------------------------------------------------------ invitations
def _invitation_form(
    visitor: Visitor, token: str, person: Person, user: User, name: str, errors: dict[str, str]
) -> Response:
    return page(
        visitor,
        "invite.html",
        visitor.lang.gettext("Accept the invitation"),
        action=f"/invite/{token}",
        invited=person,
        org_name=people.membership_of(visitor.db, user).org_name,
        needs_password=person.password_hash is None,
        values={"name": name[:200]},
        errors=errors,
        status=422 if errors else 200,
    )


def _invitation_refused(visitor: Visitor, refused: Refused) -> Response:
    title = visitor.lang.gettext("Invitation not valid")
    return _message(visitor, title, translate(refused, visitor.lang), status=refused.status)


@router.get("/invite/{token}")
def invitation_page(token: str, visitor: VisitorDep) -> Response:
    try:
        person, user = people.invitation(visitor.db, token, now())
    except Refused as refused:
        return _invitation_refused(visitor, refused)
    return _invitation_form(visitor, token, person, user, person.name if person.name != person.email else "", {})


@router.post("/invite/{token}")
def accept_invitation(token: str, visitor: VisitorDep, form: FormDep) -> Response:
    data, errors = validate(AcceptInvitationForm, form, visitor.lang)
    try:
        person, user = people.invitation(visitor.db, token, now())
    except Refused as refused:
        return _invitation_refused(visitor, refused)
    if data is not None and person.password_hash is None and not data.password:
        errors = {"password": visitor.lang.gettext("Fill in this field.")}
    if data is None or errors:
        return _invitation_form(visitor, token, person, user, form.get("name", ""), errors)
    try:
        people.accept_invitation(visitor.db, token, password=data.password, name=data.name, now=now())
    except Refused as refused:
        visitor.db.rollback()
        return _invitation_form(
            visitor, token, person, user, form.get("name", ""), refusal_errors(refused, visitor.lang)
        )
    visitor.db.commit()
    notice = visitor.lang.gettext("The invitation is accepted. Sign in to open the cabinet.")
    return redirect("/signin", visitor, notice=notice)


# ------------------------------------------------------------------------------ language, account
@router.post("/language")
def choose_language(visitor: VisitorDep, form: FormDep) -> Response:
    code = form.get("language")
    target = safe_next(form.get("next"), "/")
    if code not in LANGUAGES:
        return redirect(target, visitor)
    if visitor.person is not None:
        visitor.person.locale = code
        visitor.db.commit()
    response = redirect(target, visitor)
    response.set_cookie(LANGUAGE_COOKIE, code, max_age=365 * 86400, samesite="lax", secure=visitor.secure, path="/")
    return response


@router.get("/account")
def account_page(visitor: SignedInDep) -> Response:
    return page(visitor, "account.html", visitor.lang.gettext("Your account"))


@router.post("/account/signout-everywhere")
def signout_everywhere(visitor: SignedInDep, form: FormDep) -> Response:
    assert visitor.person is not None
    close_all_sessions(visitor.db, visitor.person.id, now())
    visitor.db.commit()
    response = redirect("/signin", visitor, notice=visitor.lang.gettext("You are signed out on every device."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
