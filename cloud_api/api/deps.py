"""Request dependencies: a database session per request and the authenticated principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloud_api.api.errors import forbidden, unauthenticated
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


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise forbidden(f"role {principal.role} may not do this (needs {' or '.join(roles)})")
