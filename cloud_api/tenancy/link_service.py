"""Company <-> partner links, the rules: a company's admin or manager asks a partner, the partner accepts
or rejects, either side ends an active link, the company withdraws a pending request.

States: pending -> active | rejected | withdrawn; active -> ended. A company has at most one
open (pending or active) link. The JSON API (api/links.py) and the cabinets call these
functions; each writes an audit row for both sides, and none commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.accounts import audit
from cloud_api.accounts.audit import Actor
from cloud_api.db import rows_matched
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Grade, LinkState, PartnerLink, Role


def _need(actor: Actor, level: str, grade: str = Grade.MANAGER) -> None:
    role = actor.principal.role
    if Role.level_of(role) != level:
        message = N_("Only the partner may do this.") if level == "partner" else N_("Only the company may do this.")
        raise Refused("forbidden", message, kind="forbidden")
    if Role.grade_of(role) == Grade.VIEWER:
        raise Refused(
            "forbidden", N_("Your role is read-only: ask an admin or manager of your organisation."), kind="forbidden"
        )
    if not Grade.at_least(Role.grade_of(role), grade):
        raise Refused("forbidden", N_("Only an admin of your organisation may do this."), kind="forbidden")


def _both_sides(session: Session, actor: Actor, link: PartnerLink, action: str, now: datetime) -> None:
    detail = f"company {link.company_id} - partner {link.partner_id}"
    audit.record(
        session, actor, action, target=f"link {link.id}", detail=detail, org=("company", link.company_id), now=now
    )
    audit.record(
        session, actor, action, target=f"link {link.id}", detail=detail, org=("partner", link.partner_id), now=now
    )


def request_link(
    session: Session, actor: Actor, *, company_id: int, partner_id: int, message: str | None, now: datetime
) -> PartnerLink:
    p = actor.principal
    company = access.visible_company(session, p, company_id)
    _need(actor, "company")
    partner = access.visible_partner(session, p, partner_id)
    open_link = session.scalar(select(PartnerLink).where(PartnerLink.open_company_id == company.id))
    if open_link is not None:
        raise Refused(
            "link_exists",
            N_("The company already has a partner or a pending request: end it (or withdraw the request) first."),
        )
    link = PartnerLink(
        company_id=company.id,
        partner_id=partner.id,
        state=LinkState.PENDING,
        open_company_id=company.id,
        message=message,
        requested_by=p.user_id,
        requested_at=now,
    )
    session.add(link)
    session.flush()
    _both_sides(session, actor, link, "link.requested", now)
    return link


def _transition(session: Session, actor: Actor, link: PartnerLink, new_state: str, now: datetime) -> PartnerLink:
    """Move `link` from the state it was read in to `new_state`; a conditional UPDATE, so two
    answers racing cannot both win (the loser is told to look again)."""
    values: dict[str, object] = {"state": new_state}
    if link.state == LinkState.PENDING:
        values["decided_at"] = now
    if new_state != LinkState.ACTIVE:
        values.update(open_company_id=None, closed_at=now, closed_by=actor.principal.user_id)
    changed = rows_matched(
        session,
        update(PartnerLink)
        .where(PartnerLink.id == link.id, PartnerLink.state == link.state)
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    if changed != 1:
        raise Refused("link_state", N_("This link changed meanwhile. Look at it again."))
    session.refresh(link)
    _both_sides(session, actor, link, f"link.{new_state}", now)
    return link


def answer(session: Session, actor: Actor, link_id: int, *, accept: bool, now: datetime) -> PartnerLink:
    """The partner accepts or rejects a pending request."""
    link = access.visible_link(session, actor.principal, link_id)
    _need(actor, "partner")
    if link.state != LinkState.PENDING:
        raise Refused("link_state", N_("This request was answered or withdrawn meanwhile."))
    return _transition(session, actor, link, LinkState.ACTIVE if accept else LinkState.REJECTED, now)


def end(session: Session, actor: Actor, link_id: int, *, now: datetime) -> PartnerLink:
    """Either side ends an active link; the company withdraws its pending request."""
    link = access.visible_link(session, actor.principal, link_id)
    level = Role.level_of(actor.principal.role)
    if level == "owner":
        raise Refused("forbidden", N_("Only the company or the partner may end a link."), kind="forbidden")
    _need(actor, level)
    if link.state == LinkState.ACTIVE:
        return _transition(session, actor, link, LinkState.ENDED, now)
    if link.state == LinkState.PENDING and level == "company":
        return _transition(session, actor, link, LinkState.WITHDRAWN, now)
    if link.state == LinkState.PENDING:
        raise Refused("link_state", N_("This request is pending: accept or reject it."))
    raise Refused("link_state", N_("This link has already ended."))
