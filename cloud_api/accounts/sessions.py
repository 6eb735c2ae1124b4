"""Web sessions kept in the database, behind an HttpOnly cookie.

The cookie holds 32 random bytes; the table holds their SHA-256, so a copy of the table opens
no session. A session lives `IDLE` past its last request and never more than `ABSOLUTE` in all;
`last_seen_at` is written at most every `TOUCH` so reading pages does not cost a write each.
Signing out everywhere revokes every session of the person (a password reset does too).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.accounts.models import Person, WebSession
from cloud_api.db import utc
from cloud_api.tenancy.tokens import token_hash

IDLE = timedelta(hours=12)
ABSOLUTE = timedelta(days=7)
TOUCH = timedelta(minutes=5)
MAX_COOKIE_LENGTH = 100


def open_session(
    session: Session, person: Person, now: datetime, *, ip: str | None, user_agent: str | None
) -> tuple[WebSession, str]:
    """A new session for `person`; returns the row and the cookie value (never stored)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=token_hash(token),
        person_id=person.id,
        user_id=None,
        csrf_secret=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + IDLE,
        ip=ip[:64] if ip else None,
        user_agent=user_agent[:300] if user_agent else None,
    )
    session.add(row)
    session.flush()
    return row, token


def find_session(session: Session, cookie: str | None, now: datetime) -> WebSession | None:
    """The live session of a cookie, refreshed; None when unknown, expired or revoked."""
    if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(cookie)))
    if row is None or row.revoked_at is not None or utc(row.expires_at) <= now:
        return None
    if utc(row.last_seen_at) + TOUCH <= now:
        row.last_seen_at = now
        row.expires_at = min(now + IDLE, utc(row.created_at) + ABSOLUTE)
        session.commit()
    return row


def close_session(session: Session, row: WebSession, now: datetime) -> None:
    row.revoked_at = now


def close_all_sessions(session: Session, person_id: int, now: datetime) -> int:
    """Revoke every open session of a person (sign out everywhere); returns how many."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.person_id == person_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
