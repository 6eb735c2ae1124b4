"""Pages every cabinet has, one implementation for the owner, the partners and the companies:
the organisation's people (and inviting more), API tokens, and the audit trail.

Each route is registered once per level (`/owner/people`, `/partner/people`, ...) with that
level's member dependency, so a page only ever shows the open cabinet's organisation.
"""

# No `from __future__ import annotations` here: the routes' annotations name each level's
# dependency, a local of `_register`, which FastAPI could not resolve from a string.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from sqlalchemy import ColumnElement, Select, and_, or_, select
from starlette.responses import Response

from cloud_api.accounts import audit, people
from cloud_api.accounts.models import AuditEvent, Person
from cloud_api.accounts.schemas import InviteForm
from cloud_api.api.schemas import MAX_ID, TokenIn
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.models import ApiToken, Grade, Role, User
from cloud_api.tenancy.tokens import issue_token
from cloud_api.web.context import FormDep, Member, PageRefused, member, now
from cloud_api.web.forms import refusal_errors, validate
from cloud_api.web.listing import page_of
from cloud_api.web.nav import GRADE_LABELS
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
NOT_FOUND = N_("This page does not exist, or it belongs to another organisation.")

# The audit page's filter: families of actions (an action's name starts with its family).
ACTION_FAMILIES = [
    ("person.", N_("People")),
    ("token.", N_("API tokens")),
    ("link.", N_("Partner links")),
    ("licence", N_("Licences")),
    ("partner.", N_("Partners")),
    ("company.", N_("Company")),
]


def org_users(level: str, org_id: int) -> ColumnElement[bool]:
    """The users rows (memberships and machine users) of one organisation."""
    if level == "company":
        return User.company_id == org_id
    if level == "partner":
        return User.partner_id == org_id
    return and_(User.owner_id == org_id, User.partner_id.is_(None), User.company_id.is_(None))


def _org(m: Member) -> tuple[str, int]:
    assert m.membership is not None
    return m.membership.level, m.membership.org_id


def _literal(text: str) -> str:
    """`text` inside a LIKE pattern (escape character `\\`), its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(text: str) -> str:
    return f"%{_literal(text)}%"


# ------------------------------------------------------------------------------ people
def _people_page(
    m: Member,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    level, org_id = _org(m)
    _ = m.lang.gettext
    # Two columns a row; page_of is typed for one (SQLAlchemy's Select is variadic).
    query: Select[Any] = (
        select(User, Person)  # type: ignore[assignment]
        .join(Person, Person.id == User.person_id)
        .where(org_users(level, org_id))
    )
    search = m.request.query_params.get("q", "").strip()[:100]
    if search:
        query = query.where(
            or_(Person.name.ilike(_contains(search), escape="\\"), Person.email.ilike(_contains(search), escape="\\"))
        )
    listing = page_of(
        m.db,
        m.request,
        query,
        sorts={"name": Person.name, "email": Person.email, "role": User.role, "added": User.created_at},
        default_sort="name",
        lang=m.lang,
        keep=("q",),
        scalars=False,
    )
    pending = people.pending_invitations(m.db, [user.id for user, _person in listing.rows])
    rows = [
        {
            "name": person.name,
            "email": person.email,
            "role": _(GRADE_LABELS[Role.grade_of(user.role)]),
            "accepted": user.id not in pending and person.password_hash is not None,
            "added": user.created_at,
            "you": user.id == m.principal.user_id,
        }
        for user, person in listing.rows
    ]
    grades = [(grade, _(GRADE_LABELS[grade])) for grade in Grade.ALL]
    return page(
        m,
        "org/people.html",
        _("People"),
        status=status,
        listing=listing,
        rows=rows,
        search=search,
        grades=grades,
        values=values or {"grade": Grade.VIEWER},
        errors=errors or {},
    )


def people_page(m: Member) -> Response:
    return _people_page(m)


def invite(m: Member, form: dict[str, str]) -> Response:
    m.require_admin()
    assert m.membership is not None
    _ = m.lang.gettext
    level, org_id = _org(m)
    values = {key: form.get(key, "")[:254] for key in ("email", "name", "grade")}
    data, errors = validate(InviteForm, form, m.lang)
    if data is None:
        return _people_page(m, status=422, errors=errors, values=values)
    try:
        _user, _token = people.invite(
            m.db,
            m.actor,
            email=data.email,
            name=data.name,
            role=Role.of(level, data.grade),
            org=(level, org_id),
            org_name=m.membership.org_name,
            now=now(),
            mailer=m.mailer(),
        )
    except Refused as refused:
        m.db.rollback()
        return _people_page(m, status=refused.status, errors=refusal_errors(refused, m.lang), values=values)
    m.db.commit()
    m.wake_mail()
    return redirect(
        f"/{level}/people",
        m,
        notice=_("{email} is invited. The invitation link is on its way by e-mail.").format(
            email=people.normalise_email(data.email)
        ),
    )


# ------------------------------------------------------------------------------ API tokens
def _machine_users(level: str, org_id: int) -> Select[int]:
    return select(User.id).where(org_users(level, org_id), User.person_id.is_(None))


def _may_manage(m: Member, user: User) -> bool:
    """Own tokens, and for admins the tokens of the organisation's machine users."""
    if user.id == m.principal.user_id:
        return True
    level, org_id = _org(m)
    if not m.is_admin or user.person_id is not None:
        return False
    return m.db.scalar(_machine_users(level, org_id).where(User.id == user.id)) is not None


def _tokens_page(
    m: Member,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    new_token: str | None = None,
) -> Response:
    level, org_id = _org(m)
    _ = m.lang.gettext
    mine = ApiToken.user_id == m.principal.user_id
    visible = or_(mine, ApiToken.user_id.in_(_machine_users(level, org_id))) if m.is_admin else mine
    query: Select[Any] = (
        select(ApiToken, User)  # type: ignore[assignment]
        .join(User, User.id == ApiToken.user_id)
        .where(visible)
    )
    state = m.request.query_params.get("state", "")
    if state == "active":
        query = query.where(ApiToken.revoked_at.is_(None))
    elif state == "revoked":
        query = query.where(ApiToken.revoked_at.is_not(None))
    listing = page_of(
        m.db,
        m.request,
        query,
        sorts={
            "created": ApiToken.created_at,
            "used": ApiToken.last_used_at,
            "label": ApiToken.label,
            "prefix": ApiToken.prefix,
        },
        default_sort="created",
        default_descending=True,
        lang=m.lang,
        keep=("state",),
        scalars=False,
    )
    rows = [{"token": token, "user": user, "mine": user.id == m.principal.user_id} for token, user in listing.rows]
    states = [("", _("All")), ("active", _("Active")), ("revoked", _("Revoked"))]
    return page(
        m,
        "org/tokens.html",
        _("API tokens"),
        status=status,
        listing=listing,
        rows=rows,
        state=state,
        states=states,
        errors=errors or {},
        values=values or {},
        new_token=new_token,
    )


def tokens_page(m: Member) -> Response:
    return _tokens_page(m)


def create_token(m: Member, form: dict[str, str]) -> Response:
    assert m.membership is not None
    values = {"label": form.get("label", "")[:200]}
    data, errors = validate(TokenIn, form, m.lang)
    if data is None:
        return _tokens_page(m, status=422, errors=errors, values=values)
    row, token = issue_token(m.db, m.membership.user, label=data.label)
    audit.record(m.db, m.actor, "token.created", target=row.prefix, detail=data.label, now=now())
    m.db.commit()
    # The one time the token is shown: this response, not a redirect (a notice cookie must not hold it).
    return _tokens_page(m, status=201, new_token=token)


def _managed_token(m: Member, token_id: int) -> tuple[ApiToken, User]:
    found = m.db.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.id == token_id)
    ).first()
    if found is None or not _may_manage(m, found[1]):
        raise PageRefused(404, NOT_FOUND)
    return found[0], found[1]


def revoke_page(m: Member, token_id: int) -> Response:
    token, user = _managed_token(m, token_id)
    return page(
        m,
        "org/token_revoke.html",
        m.lang.gettext("Revoke the token"),
        token=token,
        owner=user,
        mine=user.id == m.principal.user_id,
    )


def revoke(m: Member, token_id: int) -> Response:
    token, _user = _managed_token(m, token_id)
    level, _org_id = _org(m)
    _ = m.lang.gettext
    if token.revoked_at is not None:
        return redirect(
            f"/{level}/tokens", m, notice=_("The token {prefix}… was already revoked.").format(prefix=token.prefix)
        )
    moment = now()
    token.revoked_at = moment
    audit.record(m.db, m.actor, "token.revoked", target=token.prefix, now=moment)
    m.db.commit()
    return redirect(
        f"/{level}/tokens",
        m,
        notice=_("The token {prefix}… is revoked: programs using it are refused from now on.").format(
            prefix=token.prefix
        ),
    )


# ------------------------------------------------------------------------------ audit
def audit_page(m: Member) -> Response:
    m.require_admin()
    level, org_id = _org(m)
    _ = m.lang.gettext
    args = m.request.query_params
    action = args.get("action", "").strip()[:64]
    search = args.get("q", "").strip()[:100]
    # Every condition keeps the query on ix_audit_events_org_at: the organisation's range of
    # that index, read newest first; the filters only drop rows from it.
    query = select(AuditEvent).where(AuditEvent.org_level == level, AuditEvent.org_id == org_id)
    if action:
        query = query.where(AuditEvent.action.like(f"{_literal(action)}%", escape="\\"))
    if search:
        query = query.where(AuditEvent.actor.ilike(_contains(search), escape="\\"))
    listing = page_of(
        m.db,
        m.request,
        query,
        sorts={"at": AuditEvent.at},
        default_sort="at",
        default_descending=True,
        lang=m.lang,
        keep=("action", "q"),
    )
    families = [("", _("All changes"))] + [(prefix, _(label)) for prefix, label in ACTION_FAMILIES]
    if action and action not in dict(ACTION_FAMILIES):
        families.append((action, action))
    return page(m, "org/audit.html", _("Audit"), listing=listing, action=action, search=search, families=families)


# ------------------------------------------------------------------------------ routes
def _register(level: str) -> None:
    dependency = member(level)

    @router.get(f"/{level}/people", name=f"{level}_people")
    def _people(m: Annotated[Member, Depends(dependency)]) -> Response:
        return people_page(m)

    @router.post(f"/{level}/people/invite", name=f"{level}_invite")
    def _invite(m: Annotated[Member, Depends(dependency)], form: FormDep) -> Response:
        return invite(m, form)

    @router.get(f"/{level}/tokens", name=f"{level}_tokens")
    def _tokens(m: Annotated[Member, Depends(dependency)]) -> Response:
        return tokens_page(m)

    @router.post(f"/{level}/tokens", name=f"{level}_create_token")
    def _create_token(m: Annotated[Member, Depends(dependency)], form: FormDep) -> Response:
        return create_token(m, form)

    @router.get(f"/{level}/tokens/{{token_id}}/revoke", name=f"{level}_revoke_token_page")
    def _revoke_page(token_id: IdPath, m: Annotated[Member, Depends(dependency)]) -> Response:
        return revoke_page(m, token_id)

    @router.post(f"/{level}/tokens/{{token_id}}/revoke", name=f"{level}_revoke_token")
    def _revoke(token_id: IdPath, m: Annotated[Member, Depends(dependency)], _form: FormDep) -> Response:
        return revoke(m, token_id)

    @router.get(f"/{level}/audit", name=f"{level}_audit")
    def _audit(m: Annotated[Member, Depends(dependency)]) -> Response:
        return audit_page(m)


for _level in ("owner", "partner", "company"):
    _register(_level)
