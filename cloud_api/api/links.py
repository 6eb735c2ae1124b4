"""Company <-> partner links: the company asks, the partner accepts or rejects; either ends it.

The rules live in cloud_api/tenancy/link_service.py (the cabinets call them too).

States: pending -> active | rejected | withdrawn (the company took the request back);
active -> ended. A company has at most one open (pending or active) link: the partner that
serves it. Only the two sides act; the owner reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from cloud_api.api.deps import ActorDep, PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES
from cloud_api.api.schemas import MAX_ID, LinkOut, LinkRequestIn, LinkStateName
from cloud_api.tenancy import access, link_service
from cloud_api.tenancy.models import PartnerLink
from cloud_api.tenancy.tokens import utcnow

router = APIRouter(tags=["partner links"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post(
    "/companies/{company_id}/link-requests",
    status_code=201,
    response_model=LinkOut,
    summary="Ask a partner to serve the company (admin or manager of the company)",
)
def request_link(company_id: IdPath, body: LinkRequestIn, session: SessionDep, actor: ActorDep) -> PartnerLink:
    link = link_service.request_link(
        session, actor, company_id=company_id, partner_id=body.partner_id, message=body.message, now=utcnow()
    )
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


@router.post(
    "/links/{link_id}/accept",
    response_model=LinkOut,
    summary="Accept a pending request (admin or manager of the partner)",
)
def accept_link(link_id: IdPath, session: SessionDep, actor: ActorDep) -> PartnerLink:
    link = link_service.answer(session, actor, link_id, accept=True, now=utcnow())
    session.commit()
    return link


@router.post(
    "/links/{link_id}/reject",
    response_model=LinkOut,
    summary="Reject a pending request (admin or manager of the partner)",
)
def reject_link(link_id: IdPath, session: SessionDep, actor: ActorDep) -> PartnerLink:
    link = link_service.answer(session, actor, link_id, accept=False, now=utcnow())
    session.commit()
    return link


@router.post(
    "/links/{link_id}/end",
    response_model=LinkOut,
    summary="End an active link (either side), or withdraw a pending request (the company)",
)
def end_link(link_id: IdPath, session: SessionDep, actor: ActorDep) -> PartnerLink:
    link = link_service.end(session, actor, link_id, now=utcnow())
    session.commit()
    return link
