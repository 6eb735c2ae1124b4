"""Tenancy tables: owner, partners, companies, links, points of sale, users, API tokens, devices.

They share `cloud_api.db.Base`, so one metadata describes the whole schema (Alembic
compares the migrations against it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import cloud_api.accounts.models  # noqa: F401 - the people table, which users.person_id references
from cloud_api.db import DEVICE_ID, Base

NAME = String(200)


class Level:
    """Where in the tenancy tree a membership sits: it decides what the member sees."""

    OWNER = "owner"
    PARTNER = "partner"
    COMPANY = "company"

    ALL = (OWNER, PARTNER, COMPANY)


class Grade:
    """How much a member may do at its level: admins also manage people and their tokens,
    managers change operational data, viewers only read."""

    ADMIN = "admin"
    MANAGER = "manager"
    VIEWER = "viewer"

    ALL = (ADMIN, MANAGER, VIEWER)  # strongest first

    @staticmethod
    def at_least(grade: str, minimum: str) -> bool:
        return Grade.ALL.index(grade) <= Grade.ALL.index(minimum)


class Role:
    """A user's role: `<level>_<grade>`, one grade at one level of the tenancy tree."""

    OWNER_ADMIN = "owner_admin"
    OWNER_MANAGER = "owner_manager"
    OWNER_VIEWER = "owner_viewer"
    PARTNER_ADMIN = "partner_admin"
    PARTNER_MANAGER = "partner_manager"
    PARTNER_VIEWER = "partner_viewer"
    COMPANY_ADMIN = "company_admin"
    COMPANY_MANAGER = "company_manager"
    COMPANY_VIEWER = "company_viewer"

    OWNER = (OWNER_ADMIN, OWNER_MANAGER, OWNER_VIEWER)
    PARTNER = (PARTNER_ADMIN, PARTNER_MANAGER, PARTNER_VIEWER)
    COMPANY = (COMPANY_ADMIN, COMPANY_MANAGER, COMPANY_VIEWER)
    ALL = OWNER + PARTNER + COMPANY

    @staticmethod
    def of(level: str, grade: str) -> str:
        if level not in Level.ALL or grade not in Grade.ALL:
            raise ValueError(f"no role for level {level!r} and grade {grade!r}")
        return f"{level}_{grade}"

    @staticmethod
    def level_of(role: str) -> str:
        return Role._split(role)[0]

    @staticmethod
    def grade_of(role: str) -> str:
        return Role._split(role)[1]

    @staticmethod
    def _split(role: str) -> tuple[str, str]:
        if role not in Role.ALL:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(Role.ALL)}")
        level, grade = role.split("_")
        return level, grade


def _quoted(roles: tuple[str, ...]) -> str:
    return ", ".join(f"'{role}'" for role in roles)


# Each role's tenant columns: owner roles name no partner or company, partner roles their
# partner only, company roles their company only. Migration 0012 writes the same text.
USERS_ROLE_LEVEL_RULE = (
    f"(role IN ({_quoted(Role.OWNER)}) AND partner_id IS NULL AND company_id IS NULL)"
    f" OR (role IN ({_quoted(Role.PARTNER)}) AND partner_id IS NOT NULL AND company_id IS NULL)"
    f" OR (role IN ({_quoted(Role.COMPANY)}) AND partner_id IS NULL AND company_id IS NOT NULL)"
)


class LinkState:
    PENDING = "pending"  # the company asked, the partner has not answered
    ACTIVE = "active"  # the partner accepted: both sides agree
    REJECTED = "rejected"  # the partner said no
    WITHDRAWN = "withdrawn"  # the company took back its pending request
    ENDED = "ended"  # either side ended an active link

    OPEN = (PENDING, ACTIVE)


class Owner(Base):
    """The operator of the cloud (normally exactly one); registers partners and companies."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class PartnerLink(Base):
    """A company's request to work with a partner, and the link once the partner accepts.

    `open_company_id` equals `company_id` while the link is pending or active and is NULL
    once it is closed: its unique constraint lets a company have at most one open link (one
    partner serves it) even when two requests race, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "partner_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    open_company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), unique=True)
    message: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]  # accepted or rejected
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class PointOfSale(Base):
    """A store / sales point of a company. `code` is what terminals report as point_of_sale_id."""

    __tablename__ = "points_of_sale"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    # Set while archived (no longer used; its devices moved elsewhere); it is never deleted.
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("company_id", "code", name="uq_points_of_sale_company_code"),)


class User(Base):
    """A person or integration with one role (a grade at a level): the tenant columns say where."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    created_at: Mapped[datetime]
    # The person holding this membership (cloud_api/accounts); None for a machine user.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)

    __table_args__ = (CheckConstraint(USERS_ROLE_LEVEL_RULE, name="ck_users_role_level"),)


class ApiToken(Base):
    """A bearer token of a user. Only the SHA-256 of the token is stored (see auth.tokens)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to tell tokens apart
    label: Mapped[str | None] = mapped_column(NAME)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Device(Base):
    """A terminal owned by a company. Pairing (public key, pairing code) is filled in later."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(DEVICE_ID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    point_of_sale_id: Mapped[int | None] = mapped_column(ForeignKey("points_of_sale.id"), index=True)
    public_key: Mapped[str | None] = mapped_column(Text)
    pairing_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # Set when its broker certificates were revoked (retired or stolen): it renews nothing more.
    broker_access_revoked_at: Mapped[datetime | None] = mapped_column(default=None)
