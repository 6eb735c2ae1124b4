"""Tables of people: who signs in, their web sessions, the links mailed to them, the audit.

A *person* is an e-mail address with a password. What a person may do comes from their
memberships: a membership is a `users` row (the same row API tokens belong to) whose
`person_id` points here, with a role of one level and grade (owner/partner/company x
admin/manager/viewer). One person may hold a partner membership and a company membership
and picks the cabinet after signing in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base

EMAIL = String(254)  # RFC 5321's limit on a forward path


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(EMAIL, unique=True)  # lower-cased
    name: Mapped[str] = mapped_column(String(200))
    # None until the person sets one (an invited person has not yet).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email_verified_at: Mapped[datetime | None]
    locale: Mapped[str | None] = mapped_column(String(16))  # None: from the browser's Accept-Language
    failed_signins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie is kept (as for API tokens)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    # The membership whose cabinet is open; None until the person picks one.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    csrf_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class LinkPurpose:
    VERIFY = "verify"  # confirms the e-mail address of a self-registered person
    RESET = "reset"  # sets a new password
    INVITE = "invite"  # an invited person accepts a membership (and sets a password if new)

    ALL = (VERIFY, RESET, INVITE)


class ActionLink(Base):
    """A link mailed to a person: single use, expires; only its SHA-256 is kept."""

    __tablename__ = "action_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the membership an invitation offers
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One change a person (or a token) made: who, what, when, from where, in which organisation.

    `org_level` + `org_id` name the organisation whose admins see the row (its own cabinet's
    audit page); one index serves that page's newest-first paging.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    org_level: Mapped[str] = mapped_column(String(8))
    org_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254))  # the e-mail, or "token <prefix>" for machines
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(120))
    detail: Mapped[str | None] = mapped_column(String(1000))
    ip: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_events_org_at", "org_level", "org_id", "at"),)
