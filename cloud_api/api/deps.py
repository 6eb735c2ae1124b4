"""Request dependencies: a database session per request and the authenticated principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloud_api.accounts.audit import Actor
from cloud_api.api.errors import forbidden, unauthenticated
from cloud_api.tenancy.models import ApiToken, Grade
from cloud_api.tenancy.tokens import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer kst_...`")


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; handlers commit their writes, anything else rolls back."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise unauthenticated("send an API token: Authorization: Bearer <token>")
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise unauthenticated("unknown or revoked token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_actor(session: SessionDep, principal: PrincipalDep, request: Request) -> Actor:
    """Who acts, for the audit: a machine through its API token, named by the token's prefix."""
    token = session.get(ApiToken, principal.token_id)
    name = f"token {token.prefix}…" if token is not None else f"user {principal.user_id}"
    return Actor(principal, name, None, request.client.host if request.client else None)


ActorDep = Annotated[Actor, Depends(get_actor)]


def require(principal: Principal, *levels: str, min_grade: str = Grade.MANAGER) -> None:
    """403 unless the caller is at one of `levels` (any level when none is given) with at
    least `min_grade`: reads need a viewer, changes a manager, people and tokens an admin."""
    if levels and principal.level not in levels:
        raise forbidden(f"role {principal.role} may not do this (only {' or '.join(levels)} users may)")
    if not Grade.at_least(principal.grade, min_grade):
        if principal.grade == Grade.VIEWER:
            raise forbidden(f"role {principal.role} is read-only: ask a manager or admin of your {principal.level}")
        raise forbidden(f"role {principal.role} may not do this: it needs an admin of your {principal.level}")
