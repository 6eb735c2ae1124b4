"""The audit trail: one row for every change a person or a token makes, in the organisation
whose admins may read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from cloud_api.accounts.models import AuditEvent
from cloud_api.tenancy.tokens import Principal

MAX_DETAIL = 1000


@dataclass(frozen=True)
class Actor:
    """Who acts: the membership (principal), the person's e-mail (or the token), from where."""

    principal: Principal
    name: str  # the e-mail of the person, or "token kst_abc…" for a machine
    person_id: int | None = None
    ip: str | None = None

    @property
    def org(self) -> tuple[str, int]:
        return org_of(self.principal)


def org_of(p: Principal) -> tuple[str, int]:
    """The (level, id) of the principal's organisation."""
    if p.company_id is not None:
        return "company", p.company_id
    if p.partner_id is not None:
        return "partner", p.partner_id
    return "owner", p.owner_id


def record(
    session: Session,
    actor: Actor,
    action: str,
    target: str | None = None,
    detail: str | None = None,
    *,
    org: tuple[str, int] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Add an audit row to the caller's transaction (it commits or rolls back with the change)."""
    level, org_id = org or actor.org
    event = AuditEvent(
        at=now or datetime.now(UTC),
        org_level=level,
        org_id=org_id,
        person_id=actor.person_id,
        user_id=actor.principal.user_id,
        actor=actor.name[:254],
        action=action,
        target=target[:120] if target else None,
        detail=detail[:MAX_DETAIL] if detail else None,
        ip=actor.ip[:64] if actor.ip else None,
    )
    session.add(event)
    return event


def record_anonymous(
    session: Session, *, org: tuple[str, int], name: str, action: str, target: str | None, ip: str | None, now: datetime
) -> AuditEvent:
    """A change made before anyone is signed in (a company registering itself)."""
    event = AuditEvent(
        at=now, org_level=org[0], org_id=org[1], actor=name[:254], action=action, target=target, ip=ip and ip[:64]
    )
    session.add(event)
    return event
