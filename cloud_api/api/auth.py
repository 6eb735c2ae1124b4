"""Users and their API tokens: `/me`, `/users`, `/users/{id}/tokens`, `/tokens/{id}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from cloud_api.api.deps import PrincipalDep, SessionDep, require
from cloud_api.api.errors import ERROR_RESPONSES, forbidden, invalid, not_found
from cloud_api.api.schemas import MAX_ID, NewToken, TokenIn, TokenOut, UserCreated, UserIn, UserOut
from cloud_api.tenancy import access
from cloud_api.tenancy.models import ApiToken, Grade, Level, Role, User
from cloud_api.tenancy.tokens import Principal, issue_token, utcnow

router = APIRouter(tags=["users and tokens"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/me", response_model=UserOut, summary="The user behind the token")
def me(session: SessionDep, p: PrincipalDep) -> User:
    return access.visible_user(session, p, p.user_id)


def _check_new_user(session: SessionDep, p: Principal, body: UserIn) -> tuple[int | None, int | None]:
    """The (partner_id, company_id) the new user gets, if `p` may create it: an admin of the
    owner makes users of any level, a partner's or company's admin those of its own tenant."""
    level = Role.level_of(body.role)
    if level == Level.OWNER:
        if p.level != Level.OWNER or not p.is_admin:
            raise forbidden("only owner_admin may create owner users")
        return None, None
    if level == Level.PARTNER:
        if body.partner_id is None or body.company_id is not None:
            raise invalid(f"a {body.role} needs partner_id and no company_id")
        partner = access.visible_partner(session, p, body.partner_id)
        if p.level != Level.OWNER and not (p.level == Level.PARTNER and p.partner_id == partner.id):
            raise forbidden(f"role {p.role} may not create users of partner {partner.id}")
        require(p, min_grade=Grade.ADMIN)
        return partner.id, None
    if body.company_id is None or body.partner_id is not None:
        raise invalid(f"a {body.role} needs company_id and no partner_id")
    company = access.visible_company(session, p, body.company_id)
    if p.level != Level.OWNER and not (p.level == Level.COMPANY and p.company_id == company.id):
        raise forbidden(f"role {p.role} may not create users of company {company.id}")
    require(p, min_grade=Grade.ADMIN)
    return None, company.id


@router.post(
    "/users",
    status_code=201,
    response_model=UserCreated,
    summary="Create a user with a role (a grade at one level; admins only); returns its first token once",
)
def create_user(body: UserIn, session: SessionDep, p: PrincipalDep) -> UserCreated:
    partner_id, company_id = _check_new_user(session, p, body)
    user = User(
        name=body.name,
        role=body.role,
        owner_id=p.owner_id,
        partner_id=partner_id,
        company_id=company_id,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    _row, token = issue_token(session, user, label="first")
    session.commit()
    return UserCreated(user=UserOut.model_validate(user), token=token)


@router.get("/users", response_model=list[UserOut], summary="Users of your tenant")
def list_users(session: SessionDep, p: PrincipalDep) -> list[User]:
    return list(session.scalars(select(User).where(access.user_scope(p)).order_by(User.id)))


@router.get("/users/{user_id}", response_model=UserOut, summary="One user")
def get_user(user_id: IdPath, session: SessionDep, p: PrincipalDep) -> User:
    return access.visible_user(session, p, user_id)


def _managed_user(session: SessionDep, p: Principal, user_id: int) -> User:
    user = access.visible_user(session, p, user_id)
    if not access.manages_user(p, user):
        needs = "" if p.is_admin else ": you manage your own tokens; others' need an admin"
        raise forbidden(f"role {p.role} may not manage the tokens of user {user.id}{needs}")
    return user


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=NewToken,
    summary="Issue another token for a user (yours, or one you manage); shown once",
)
def create_token(user_id: IdPath, body: TokenIn, session: SessionDep, p: PrincipalDep) -> NewToken:
    user = _managed_user(session, p, user_id)
    row, token = issue_token(session, user, label=body.label)
    session.commit()
    return NewToken(token=token, info=TokenOut.model_validate(row))


@router.get(
    "/users/{user_id}/tokens",
    response_model=list[TokenOut],
    summary="A user's tokens (metadata only; the tokens themselves are never shown again)",
)
def list_tokens(user_id: IdPath, session: SessionDep, p: PrincipalDep) -> list[ApiToken]:
    user = _managed_user(session, p, user_id)
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke_token(token_id: IdPath, session: SessionDep, p: PrincipalDep) -> ApiToken:
    row = session.get(ApiToken, token_id)
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not access.manages_user(p, user):
        raise not_found(f"token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
