"""API tokens and the owner bootstrap.

A token is 32 random bytes from `secrets` (256 bits), URL-safe base64 behind a `kst_` prefix.
Only its SHA-256 is stored. A plain fast hash is enough here, unlike for passwords: slow,
salted hashes exist to make guessing low-entropy secrets expensive, but nobody can enumerate
2**256 candidates, so a stolen table of hashes yields no tokens either way. It also lets the
lookup be one indexed equality on the hash (no per-user salt to fetch first).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.tenancy.models import ApiToken, Grade, Owner, Role, User

TOKEN_PREFIX = "kst_"
MAX_TOKEN_LENGTH = 128
# last_used_at is refreshed at most this often, so reads do not each cost a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind the bearer token, with the user's role and tenant."""

    user_id: int
    role: str
    owner_id: int
    partner_id: int | None
    company_id: int | None
    token_id: int

    @property
    def level(self) -> str:
        """owner, partner or company: decides what the caller sees."""
        return Role.level_of(self.role)

    @property
    def grade(self) -> str:
        """admin, manager or viewer: decides what the caller may change."""
        return Role.grade_of(self.role)

    @property
    def may_write(self) -> bool:
        return Grade.at_least(self.grade, Grade.MANAGER)

    @property
    def is_admin(self) -> bool:
        return self.grade == Grade.ADMIN


def issue_token(session: Session, user: User, label: str | None = None) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the token text (never stored)."""
    token = new_token()
    row = ApiToken(user_id=user.id, token_hash=token_hash(token), prefix=token[:12], label=label, created_at=utcnow())
    session.add(row)
    session.flush()
    return row, token


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal of a valid, unrevoked token, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    found = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if row.last_used_at is None or _aware(row.last_used_at) < now - LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return Principal(user.id, user.role, user.owner_id, user.partner_id, user.company_id, row.id)


def _aware(moment: datetime) -> datetime:
    # SQLite gives timestamps back without their zone; every stored timestamp is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_owner(session: Session, name: str, admin_name: str | None = None) -> tuple[Owner, User, str]:
    """Register an owner with its first owner_admin user; returns the admin's token text."""
    now = utcnow()
    owner = Owner(name=name, created_at=now)
    session.add(owner)
    session.flush()
    admin = User(name=admin_name or f"{name} admin", role=Role.OWNER_ADMIN, owner_id=owner.id, created_at=now)
    session.add(admin)
    session.flush()
    _row, token = issue_token(session, admin, label="bootstrap")
    session.commit()
    return owner, admin, token
