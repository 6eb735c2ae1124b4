"""Links mailed to people (verify an address, reset a password, accept an invitation).

A link carries 32 random bytes; only their SHA-256 is stored, as for API tokens (nobody can
guess 2**256 values, so a plain hash is enough). A link is taken with a conditional UPDATE
(`used_at IS NULL`), so two clicks racing each other cannot both use it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.accounts.models import ActionLink, LinkPurpose
from cloud_api.db import rows_matched, utc
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.tokens import token_hash

LIFETIME = {
    LinkPurpose.VERIFY: timedelta(days=2),
    LinkPurpose.RESET: timedelta(hours=1),
    LinkPurpose.INVITE: timedelta(days=7),
}
MAX_TOKEN_LENGTH = 100


def new_link(session: Session, *, purpose: str, person_id: int, now: datetime, user_id: int | None = None) -> str:
    """Store a link and return its token (put it in the mail; it is never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        ActionLink(
            token_hash=token_hash(token),
            purpose=purpose,
            person_id=person_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + LIFETIME[purpose],
        )
    )
    session.flush()
    return token


def peek_link(session: Session, token: str, purpose: str, now: datetime) -> ActionLink:
    """The link if it can still be used (to show its form); raises Refused otherwise."""
    link = None
    if len(token) <= MAX_TOKEN_LENGTH:
        link = session.scalar(select(ActionLink).where(ActionLink.token_hash == token_hash(token)))
    if link is None or link.purpose != purpose:
        raise Refused(
            "link.unknown",
            N_("This link is not valid. Copy the whole link from the e-mail, or ask for a new one."),
            kind="not_found",
        )
    if link.used_at is not None:
        raise Refused("link.used", N_("This link has already been used. Ask for a new one if you need it."))
    if utc(link.expires_at) <= now:
        raise Refused("link.expired", N_("This link has expired. Ask for a new one."))
    return link


def take_link(session: Session, token: str, purpose: str, now: datetime) -> ActionLink:
    """Use the link once (in the caller's transaction); raises Refused if it cannot be used."""
    link = peek_link(session, token, purpose, now)
    taken = rows_matched(
        session,
        update(ActionLink)
        .where(ActionLink.id == link.id, ActionLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False),
    )
    if taken != 1:
        raise Refused("link.used", N_("This link has already been used. Ask for a new one if you need it."))
    return link
