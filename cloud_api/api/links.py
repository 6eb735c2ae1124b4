"""Company <-> partner links: the company asks, the partner accepts or rejects; either ends it.

States: pending -> active | rejected | withdrawn (the company took the request back);
active -> ended. A company has at most one open (pending or active) link: the partner that
serves it. Only the two sides act; the owner reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select, update

from cloud_api.api.deps import PrincipalDep, SessionDep, require
from cloud_api.api.errors import ERROR_RESPONSES, conflict
from cloud_api.api.schemas import MAX_ID, LinkOut, LinkRequestIn, LinkStateName
from cloud_api.db import rows_matched
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Level, LinkState, PartnerLink
from cloud_api.tenancy.tokens import Principal, utcnow

router = APIRouter(tags=["partner links"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post(
    "/companies/{company_id}/link-requests",
    status_code=201,
    response_model=LinkOut,
    summary="Ask a partner to serve the company (admin or manager of the company)",
)
def request_link(company_id: IdPath, body: LinkRequestIn, session: SessionDep, p: PrincipalDep) -> PartnerLink:
    company = access.visible_company(session, p, company_id)
    require(p, Level.COMPANY)
    partner = access.visible_partner(session, p, body.partner_id)
    open_link = session.scalar(select(PartnerLink).where(PartnerLink.open_company_id == company.id))
    if open_link is not None:
        raise conflict(
            "link_exists",
            f"the company already has a {open_link.state} link "
            f"{open_link.id} with partner {open_link.partner_id}; end it first",
        )
    link = PartnerLink(
        company_id=company.id,
        partner_id=partner.id,
        state=LinkState.PENDING,
        open_company_id=company.id,
        message=body.message,
        requested_by=p.user_id,
        requested_at=utcnow(),
    )
    session.add(link)
    session.commit()
    return link


@router.get("/links", response_model=list[LinkOut], summary="Links and link requests of your tenant")
def list_links(
    session: SessionDep,
    p: PrincipalDep,
    state: Annotated[LinkStateName | None, Query(description="only links in this state")] = None,
) -> list[PartnerLink]:
    query = select(PartnerLink).where(access.link_scope(p))
    if state is not None:
        query = query.where(PartnerLink.state == state)
    return list(session.scalars(query.order_by(PartnerLink.id)))


@router.get("/links/{link_id}", response_model=LinkOut, summary="One link")
def get_link(link_id: IdPath, session: SessionDep, p: PrincipalDep) -> PartnerLink:
    return access.visible_link(session, p, link_id)


def _transition(session: SessionDep, link: PartnerLink, p: Principal, new_state: str) -> PartnerLink:
    """Move `link` from the state it was read in to `new_state`, or 409 if a concurrent
    request moved it first (a conditional UPDATE, so two answers cannot both win)."""
    now = utcnow()
    values: dict[str, object] = {"state": new_state}
    if link.state == LinkState.PENDING:
        values["decided_at"] = now
    if new_state != LinkState.ACTIVE:
        values.update(open_company_id=None, closed_at=now, closed_by=p.user_id)
    changed = rows_matched(
        session,
        update(PartnerLink)
        .where(PartnerLink.id == link.id, PartnerLink.state == link.state)
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    if changed != 1:
        session.rollback()
        raise conflict("link_state", f"link {link.id} changed meanwhile; read it again")
    session.commit()
    session.refresh(link)
    return link


def _partner_answer(session: SessionDep, p: Principal, link_id: int, new_state: str) -> PartnerLink:
    link = access.visible_link(session, p, link_id)
    require(p, Level.PARTNER)
    if link.state != LinkState.PENDING:
        raise conflict("link_state", f"link {link.id} is {link.state}, not pending")
    return _transition(session, link, p, new_state)


@router.post(
    "/links/{link_id}/accept",
    response_model=LinkOut,
    summary="Accept a pending request (admin or manager of the partner)",
)
def accept_link(link_id: IdPath, session: SessionDep, p: PrincipalDep) -> PartnerLink:
    return _partner_answer(session, p, link_id, LinkState.ACTIVE)


@router.post(
    "/links/{link_id}/reject",
    response_model=LinkOut,
    summary="Reject a pending request (admin or manager of the partner)",
)
def reject_link(link_id: IdPath, session: SessionDep, p: PrincipalDep) -> PartnerLink:
    return _partner_answer(session, p, link_id, LinkState.REJECTED)


@router.post(
    "/links/{link_id}/end",
    response_model=LinkOut,
    summary="End an active link (either side), or withdraw a pending request (the company)",
)
def end_link(link_id: IdPath, session: SessionDep, p: PrincipalDep) -> PartnerLink:
    link = access.visible_link(session, p, link_id)
    require(p, Level.PARTNER, Level.COMPANY)
    if link.state == LinkState.ACTIVE:
        return _transition(session, link, p, LinkState.ENDED)
    if link.state == LinkState.PENDING and p.level == Level.COMPANY:
        return _transition(session, link, p, LinkState.WITHDRAWN)
    if link.state == LinkState.PENDING:
        raise conflict("link_state", f"link {link.id} is pending: accept or reject it")
    raise conflict("link_state", f"link {link.id} is already {link.state}")
