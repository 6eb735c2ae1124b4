"""Link requests (the inbox, answered with or without htmx) and the client companies (with the
count of this partner's licences each holds, and ending a link after one confirmation)."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter
from sqlalchemy import Select, func, select
from starlette.responses import Response

from cloud_api.licences.models import Licence
from cloud_api.refusals import Refused
from cloud_api.tenancy import link_service
from cloud_api.tenancy.models import Company, LinkState, PartnerLink
from cloud_api.web.context import FormDep, Member, PageRefused, PartnerDep, now
from cloud_api.web.forms import translate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page, redirect
from cloud_api.web.partner_pages._common import NOT_FOUND, IdPath, partner_id_of

router = APIRouter()


def _is_htmx(member: Member) -> bool:
    return member.request.headers.get("hx-request") == "true"


def _link_row(member: Member, link: PartnerLink, company_name: str, *, error: str | None = None) -> Response:
    return page(member, "partner/link_row.html", "", link=link, company_name=company_name, error=error)


def _links_in(member: Member, state: str) -> Select[Any]:
    """The partner's links in `state`, each row with its company's name."""
    query = (
        select(PartnerLink, Company.name)
        .join(Company, Company.id == PartnerLink.company_id)
        .where(PartnerLink.partner_id == partner_id_of(member), PartnerLink.state == state)
    )
    return cast("Select[Any]", query)  # page_of takes any select; rows of two are not Select[Any] to mypy


@router.get("/partner/links")
def links_page(member: PartnerDep) -> Response:
    listing = page_of(
        member.db,
        member.request,
        _links_in(member, LinkState.PENDING),
        sorts={"requested": PartnerLink.requested_at, "company": Company.name},
        default_sort="requested",
        lang=member.lang,
        scalars=False,
    )
    return page(member, "partner/links.html", member.lang.gettext("Link requests"), listing=listing)


def _answer(member: Member, link_id: int, *, accept: bool) -> Response:
    member.require_write()
    try:
        link = link_service.answer(member.db, member.actor, link_id, accept=accept, now=now())
    except Refused as refused:
        if not _is_htmx(member):
            raise
        # htmx swaps only a 2xx answer: the row says why nothing changed.
        member.db.rollback()
        link = member.db.scalars(
            select(PartnerLink).where(PartnerLink.id == link_id, PartnerLink.partner_id == partner_id_of(member))
        ).one()
        name = member.db.get_one(Company, link.company_id).name
        return _link_row(member, link, name, error=translate(refused, member.lang))
    member.db.commit()
    name = member.db.get_one(Company, link.company_id).name
    if _is_htmx(member):
        return _link_row(member, link, name)
    _ = member.lang.gettext
    text = _("{company} is now your client.") if accept else _("You rejected the request of {company}.")
    return redirect("/partner/links", member, notice=text.format(company=name))


@router.post("/partner/links/{link_id}/accept")
def accept_link(member: PartnerDep, form: FormDep, link_id: IdPath) -> Response:
    return _answer(member, link_id, accept=True)


@router.post("/partner/links/{link_id}/reject")
def reject_link(member: PartnerDep, form: FormDep, link_id: IdPath) -> Response:
    return _answer(member, link_id, accept=False)


@router.get("/partner/clients")
def clients_page(member: PartnerDep) -> Response:
    listing = page_of(
        member.db,
        member.request,
        _links_in(member, LinkState.ACTIVE),
        sorts={"company": Company.name, "since": PartnerLink.decided_at},
        default_sort="company",
        lang=member.lang,
        scalars=False,
    )
    return page(
        member,
        "partner/clients.html",
        member.lang.gettext("Clients"),
        listing=listing,
        held=_held_counts(member, {link.company_id for link, _name in listing.rows}),
    )


def _held_counts(member: Member, company_ids: set[int]) -> dict[int, int]:
    """How many of this partner's licences each company holds."""
    if not company_ids:
        return {}
    rows = member.db.execute(
        select(Licence.company_id, func.count())
        .where(Licence.partner_id == partner_id_of(member), Licence.company_id.in_(company_ids))
        .group_by(Licence.company_id)
    )
    return {company_id: count for company_id, count in rows if company_id is not None}


def _active_link(member: Member, link_id: int) -> tuple[PartnerLink, str]:
    found = member.db.execute(_links_in(member, LinkState.ACTIVE).where(PartnerLink.id == link_id)).first()
    if found is None:
        raise PageRefused(404, NOT_FOUND)
    return found[0], found[1]


@router.get("/partner/clients/{link_id}/end")
def end_link_page(member: PartnerDep, link_id: IdPath) -> Response:
    link, name = _active_link(member, link_id)
    return page(
        member,
        "partner/end_link.html",
        member.lang.gettext("End the link with {company}").format(company=name),
        link=link,
        company_name=name,
        held=_held_counts(member, {link.company_id}).get(link.company_id, 0),
    )


@router.post("/partner/clients/{link_id}/end")
def end_link(member: PartnerDep, form: FormDep, link_id: IdPath) -> Response:
    member.require_write()
    link, name = _active_link(member, link_id)
    link_service.end(member.db, member.actor, link.id, now=now())
    member.db.commit()
    notice = member.lang.gettext("The link with {company} has ended.").format(company=name)
    return redirect("/partner/clients", member, notice=notice)
