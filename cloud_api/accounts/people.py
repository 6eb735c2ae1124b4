"""What people do with their accounts: register a company, accept an invitation, verify an
address, reset a password, sign in; and what admins do: invite people, register partners.

The JSON API and the web pages call these functions (no second copy of a rule). None of them
commits: the caller commits, and the mails they queue are sent only after that commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.accounts import audit, links
from cloud_api.accounts.audit import Actor
from cloud_api.accounts.mails import Mailer
from cloud_api.accounts.models import ActionLink, LinkPurpose, Person
from cloud_api.accounts.passwords import check_strength, hash_password, needs_rehash, verify_password
from cloud_api.db import utc
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.models import Company, Owner, Partner, Role, User

MAX_FAILED_SIGNINS = 5
LOCKOUT = timedelta(minutes=15)
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}$")


def normalise_email(email: str) -> str:
    email = email.strip()
    # ASCII only: SMTP without SMTPUTF8 (most relays) cannot deliver to anything else.
    if len(email) > 254 or not email.isascii() or not _EMAIL.match(email):
        raise Refused(
            "email.invalid", N_("Enter an e-mail address like name@example.com."), field="email", kind="invalid"
        )
    local, domain = email.rsplit("@", 1)
    return f"{local}@{domain.lower()}".lower()


def person_by_email(session: Session, email: str) -> Person | None:
    return session.scalar(select(Person).where(Person.email == email.strip().lower()))


@dataclass(frozen=True)
class Membership:
    """One cabinet a person may open."""

    user: User
    level: str
    org_id: int
    org_name: str


def pending_invitations(session: Session, user_ids: list[int]) -> set[int]:
    """Of these memberships, the ones offered by an invitation nobody has accepted yet."""
    if not user_ids:
        return set()
    rows = session.execute(
        select(ActionLink.user_id, func.max(ActionLink.used_at))
        .where(ActionLink.purpose == LinkPurpose.INVITE, ActionLink.user_id.in_(user_ids))
        .group_by(ActionLink.user_id)
    )
    return {user_id for user_id, used in rows if user_id is not None and used is None}


def memberships(session: Session, person_id: int) -> list[Membership]:
    """The cabinets a person may open: every membership but those still waiting for the person
    to accept its invitation (an invited person's consent counts, even with an account)."""
    users = list(session.scalars(select(User).where(User.person_id == person_id).order_by(User.id)))
    pending = pending_invitations(session, [user.id for user in users])
    return [membership_of(session, user) for user in users if user.id not in pending]


def membership_of(session: Session, user: User) -> Membership:
    """A membership with its organisation's level, id and name."""
    org: Company | Partner | Owner | None
    if user.company_id is not None:
        level, org_id, org = "company", user.company_id, session.get(Company, user.company_id)
    elif user.partner_id is not None:
        level, org_id, org = "partner", user.partner_id, session.get(Partner, user.partner_id)
    else:
        level, org_id, org = "owner", user.owner_id, session.get(Owner, user.owner_id)
    return Membership(user, level, org_id, org.name if org is not None else "?")


# ------------------------------------------------------------------------------ sign-in
def sign_in(session: Session, email: str, password: str, now: datetime) -> Person:
    """The person if the password is right; counts failures and locks the account for a while
    after `MAX_FAILED_SIGNINS`. Raises Refused with a message the person can act on.
    The caller commits in every case (the failure counter is a change too)."""
    person = person_by_email(session, email) if len(email) <= 254 else None
    if person is not None and person.locked_until is not None and utc(person.locked_until) > now:
        raise Refused(
            "signin.locked",
            N_("Too many failed sign-ins. Try again after {time} (UTC), or reset your password."),
            kind="locked",
            time=utc(person.locked_until).strftime("%H:%M"),
        )
    if not verify_password(person.password_hash if person else None, password) or person is None:
        if person is not None:
            person.failed_signins += 1
            if person.failed_signins >= MAX_FAILED_SIGNINS:
                person.failed_signins = 0
                person.locked_until = now + LOCKOUT
        raise Refused("signin.wrong", N_("The e-mail or the password is wrong."), kind="unauthenticated")
    if person.email_verified_at is None:
        raise Refused(
            "signin.unverified",
            N_("Confirm your e-mail address first: open the link we sent to {email}."),
            kind="forbidden",
            email=person.email,
        )
    person.failed_signins = 0
    person.locked_until = None
    if person.password_hash and needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    return person


# ------------------------------------------------------------------------------ self-registration
def registration_owner(session: Session) -> Owner:
    """The owner self-registered companies join: the cloud's owner (the first, if several)."""
    owner = session.scalar(select(Owner).order_by(Owner.id).limit(1))
    if owner is None:
        raise Refused("registration.closed", N_("This cloud is not set up yet: its owner must be created first."))
    return owner


def register_company(
    session: Session,
    *,
    company_name: str,
    person_name: str,
    email: str,
    password: str,
    locale: str | None,
    ip: str | None,
    now: datetime,
    mailer: Mailer,
) -> tuple[Company, Person, str | None]:
    """A company registers itself with its first admin. A new address gets a verification link
    (returned, and mailed); an existing account must give its own password, and gets a
    company membership beside the ones it has (the seed's "register again as a company")."""
    email = normalise_email(email)
    person = person_by_email(session, email)
    if person is not None:
        if not verify_password(person.password_hash, password):
            raise Refused(
                "registration.email_taken",
                N_(
                    "This e-mail already has an account. Enter its password to add the company to it, "
                    "or reset the password."
                ),
                field="email",
            )
    else:
        check_strength(password)
        person = Person(
            email=email,
            name=person_name,
            password_hash=hash_password(password),
            email_verified_at=None,
            locale=locale,
            failed_signins=0,
            created_at=now,
        )
        session.add(person)
        session.flush()
    owner = registration_owner(session)
    company = Company(owner_id=owner.id, name=company_name, created_at=now)
    session.add(company)
    session.flush()
    session.add(
        User(
            name=person.name,
            role=Role.COMPANY_ADMIN,
            owner_id=owner.id,
            company_id=company.id,
            person_id=person.id,
            created_at=now,
        )
    )
    audit.record_anonymous(
        session,
        org=("company", company.id),
        name=email,
        action="company.registered",
        target=company_name,
        ip=ip,
        now=now,
    )
    token = None
    if person.email_verified_at is None:
        token = links.new_link(session, purpose=LinkPurpose.VERIFY, person_id=person.id, now=now)
        mailer.verify_address(session, person, token)
    return company, person, token


def verify_email(session: Session, token: str, now: datetime) -> Person:
    link = links.take_link(session, token, LinkPurpose.VERIFY, now)
    person = session.get(Person, link.person_id)
    assert person is not None  # a link's person is never deleted
    person.email_verified_at = person.email_verified_at or now
    return person


def resend_verification(session: Session, email: str, now: datetime, mailer: Mailer) -> None:
    """Mail a new verification link if the address has an unverified account (silently nothing
    otherwise: the answer must not tell which addresses have accounts)."""
    person = person_by_email(session, email) if len(email) <= 254 else None
    if person is not None and person.email_verified_at is None:
        token = links.new_link(session, purpose=LinkPurpose.VERIFY, person_id=person.id, now=now)
        mailer.verify_address(session, person, token)


# ------------------------------------------------------------------------------ password reset
def request_password_reset(session: Session, email: str, now: datetime, mailer: Mailer) -> str | None:
    """Mail a reset link when the address has an account; the page answers the same either way."""
    person = person_by_email(session, email) if len(email) <= 254 else None
    if person is None:
        return None
    token = links.new_link(session, purpose=LinkPurpose.RESET, person_id=person.id, now=now)
    mailer.password_reset(session, person, token)
    return token


def reset_password(session: Session, token: str, password: str, now: datetime) -> Person:
    """Set a new password from a reset link; every session of the person is signed out."""
    from cloud_api.accounts.sessions import close_all_sessions

    check_strength(password)
    link = links.take_link(session, token, LinkPurpose.RESET, now)
    person = session.get(Person, link.person_id)
    assert person is not None
    person.password_hash = hash_password(password)
    person.failed_signins = 0
    person.locked_until = None
    person.email_verified_at = person.email_verified_at or now  # the link reached the address
    close_all_sessions(session, person.id, now)
    return person


# ------------------------------------------------------------------------------ invitations
def invite(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str,
    org: tuple[str, int],
    org_name: str,
    now: datetime,
    mailer: Mailer,
) -> tuple[User, str]:
    """Offer `email` a membership with `role` in the organisation `org`; mails the invitation
    link and returns the new membership and the link's token. The caller checks that `actor`
    may invite into `org`."""
    email = normalise_email(email)
    level, org_id = org
    if Role.level_of(role) != level:
        raise Refused("invite.role", N_("Choose one of the roles offered."), field="role", kind="invalid")
    person = person_by_email(session, email)
    if person is None:
        person = Person(
            email=email,
            name=name or email,
            password_hash=None,
            email_verified_at=None,
            locale=None,
            failed_signins=0,
            created_at=now,
        )
        session.add(person)
        session.flush()
    column = {"owner": User.owner_id, "partner": User.partner_id, "company": User.company_id}[level]
    already = session.scalar(
        select(User)
        .where(User.person_id == person.id, column == org_id)
        .where(*([User.partner_id.is_(None), User.company_id.is_(None)] if level == "owner" else []))
    )
    if already is not None and already.id not in pending_invitations(session, [already.id]):
        raise Refused("invite.member", N_("{email} is already a member here."), field="email", email=email)
    if already is not None:  # invited before and not accepted yet: the same membership, a fresh link
        token = links.new_link(session, purpose=LinkPurpose.INVITE, person_id=person.id, user_id=already.id, now=now)
        mailer.invitation(
            session, person, token, org_name=org_name, inviter=actor.name, has_password=person.password_hash is not None
        )
        audit.record(session, actor, "person.invited", target=email, detail=f"{already.role} (again)", org=org, now=now)
        return already, token
    p = actor.principal
    user = User(
        name=name or person.name,
        role=role,
        owner_id=p.owner_id,
        partner_id=org_id if level == "partner" else None,
        company_id=org_id if level == "company" else None,
        person_id=person.id,
        created_at=now,
    )
    session.add(user)
    session.flush()
    token = links.new_link(session, purpose=LinkPurpose.INVITE, person_id=person.id, user_id=user.id, now=now)
    mailer.invitation(
        session, person, token, org_name=org_name, inviter=actor.name, has_password=person.password_hash is not None
    )
    audit.record(session, actor, "person.invited", target=email, detail=role, org=org, now=now)
    return user, token


def register_partner(
    session: Session,
    actor: Actor,
    *,
    partner_name: str,
    admin_email: str,
    admin_name: str,
    now: datetime,
    mailer: Mailer,
) -> tuple[Partner, User, str]:
    """The owner registers a partner and invites its first admin by e-mail."""
    partner = Partner(owner_id=actor.principal.owner_id, name=partner_name, created_at=now)
    session.add(partner)
    session.flush()
    audit.record(session, actor, "partner.registered", target=f"partner {partner.id}", detail=partner_name, now=now)
    user, token = invite(
        session,
        actor,
        email=admin_email,
        name=admin_name,
        role=Role.PARTNER_ADMIN,
        org=("partner", partner.id),
        org_name=partner_name,
        now=now,
        mailer=mailer,
    )
    return partner, user, token


def invitation(session: Session, token: str, now: datetime) -> tuple[Person, User]:
    """The person and membership an invitation link offers (to show its page)."""
    link = links.peek_link(session, token, LinkPurpose.INVITE, now)
    person, user = session.get(Person, link.person_id), session.get(User, link.user_id or 0)
    if person is None or user is None:
        raise Refused("link.unknown", N_("This invitation was withdrawn."), kind="not_found")
    return person, user


def accept_invitation(session: Session, token: str, *, password: str | None, name: str | None, now: datetime) -> Person:
    """Accept an invitation: a person without a password sets one now. The link proves the
    address, so it counts as verified."""
    link = links.peek_link(session, token, LinkPurpose.INVITE, now)
    person = session.get(Person, link.person_id)
    assert person is not None
    if person.password_hash is None:
        person.password_hash = hash_password(password or "")
    if name:
        person.name = name
    links.take_link(session, token, LinkPurpose.INVITE, now)
    person.email_verified_at = person.email_verified_at or now
    return person
