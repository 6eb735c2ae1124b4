"""The partner's licence stock: counts per state, the list (filter, search, sort, paging), a
licence's page, and its key on an audited request."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, or_, select
from starlette.responses import Response

from cloud_api.documents import service
from cloud_api.documents.models import LicenceDocument, LicenceDocumentLine
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.refusals import Refused
from cloud_api.tenancy.models import Company
from cloud_api.web.context import FormDep, Member, PageRefused, PartnerDep, now
from cloud_api.web.forms import translate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page
from cloud_api.web.partner_pages._common import (
    KIND_LABELS,
    NOT_FOUND,
    STATE_CONDITIONS,
    STATE_LABELS,
    company_names,
    like,
    partner_id_of,
    shows_key,
    stock_state,
)

router = APIRouter()


def _state_counts(member: Member) -> dict[str, int]:
    counts = dict.fromkeys(STATE_LABELS, 0)
    rows = member.db.execute(
        select(Licence.state, func.count(), func.count(Licence.company_id))
        .where(Licence.partner_id == partner_id_of(member))
        .group_by(Licence.state)
    )
    for state, total, held in rows:
        if state == LicenceState.ASSIGNED:
            counts["unsealed"], counts["with_company"] = total - held, held
        elif state in counts:
            counts[state] = total
    return counts


@router.get("/partner/licences")
def licences_page(member: PartnerDep, state: str = "", q: str = "") -> Response:
    # The partner's own rows first (indexed); companies are looked up for the shown page only.
    query = select(Licence).where(Licence.partner_id == partner_id_of(member))
    if state in STATE_CONDITIONS:
        query = query.where(STATE_CONDITIONS[state])
    q = q.strip()[:100]
    if q:
        # Only the partner's own clients' names are searched (not every company of the cloud).
        clients = select(Licence.company_id).where(Licence.partner_id == partner_id_of(member))
        named = select(Company.id).where(Company.id.in_(clients), Company.name.ilike(like(q), escape="\\"))
        query = query.where(or_(Licence.id.ilike(like(q), escape="\\"), Licence.company_id.in_(named)))
    listing = page_of(
        member.db,
        member.request,
        query,
        sorts={"id": Licence.id, "state": Licence.state, "valid_until": Licence.valid_until},
        default_sort="id",
        lang=member.lang,
        keep=("q", "state"),
    )
    counts = _state_counts(member)
    return page(
        member,
        "partner/licences.html",
        member.lang.gettext("Licences"),
        listing=listing,
        companies=company_names(member, {licence.company_id for licence in listing.rows}),
        counts=counts,
        total=sum(counts.values()),
        state=state if state in STATE_CONDITIONS else "",
        q=q,
        state_labels=STATE_LABELS,
        stock_state=stock_state,
    )


def _own_licence(member: Member, licence_id: str) -> Licence:
    licence = member.db.scalar(
        select(Licence).where(Licence.id == licence_id[:40], Licence.partner_id == partner_id_of(member))
    )
    if licence is None:
        raise PageRefused(404, NOT_FOUND)
    return licence


def _licence_page(
    member: Member, licence: Licence, *, key: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    documents = member.db.scalars(
        select(LicenceDocument)
        .join(LicenceDocumentLine, LicenceDocumentLine.document_id == LicenceDocument.id)
        .where(LicenceDocumentLine.licence_id == licence.id, LicenceDocument.partner_id == licence.partner_id)
        .order_by(LicenceDocument.id)
    )
    return page(
        member,
        "partner/licence.html",
        member.lang.gettext("Licence {id}").format(id=licence.id),
        licence=licence,
        state=stock_state(licence),
        state_labels=STATE_LABELS,
        kind_labels=KIND_LABELS,
        company=company_names(member, {licence.company_id}).get(licence.company_id or 0),
        unsealing=service.unsealing_of(member.db, licence.id),
        documents=list(documents),
        shows_key=shows_key(licence),
        key=key,
        error=error,
        status=status,
    )


@router.get("/partner/licences/{licence_id}")
def licence_page(member: PartnerDep, licence_id: str) -> Response:
    return _licence_page(member, _own_licence(member, licence_id))


@router.post("/partner/licences/{licence_id}/key")
def reveal_key(member: PartnerDep, form: FormDep, licence_id: str) -> Response:
    member.require_write()
    licence = _own_licence(member, licence_id)
    try:
        key = service.reveal_key(member.db, member.actor, licence.id, now=now())
    except Refused as refused:
        return _licence_page(member, licence, error=translate(refused, member.lang), status=refused.status)
    member.db.commit()
    return _licence_page(member, licence, key=key)
