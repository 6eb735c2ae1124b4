"""The company's cabinet: its overview and its partner (the directory of the owner's partners,
asking one to serve the company, withdrawing that request or ending the link).

The rules live in cloud_api/tenancy/link_service.py; these pages only show and ask.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import func, select
from starlette.responses import Response

from cloud_api.api.schemas import MAX_ID, LinkRequestIn
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access, link_service
from cloud_api.tenancy.models import Company, LinkState, Partner, PartnerLink
from cloud_api.web.context import CompanyDep, FormDep, Member, PageRefused, now
from cloud_api.web.forms import refusal_errors, translate, validate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
HISTORY = 20  # past links shown under the current one

LINK_STATE_LABELS = {
    LinkState.PENDING: N_("pending"),
    LinkState.ACTIVE: N_("active"),
    LinkState.REJECTED: N_("rejected"),
    LinkState.WITHDRAWN: N_("withdrawn"),
    LinkState.ENDED: N_("ended"),
}


def _company(m: Member) -> Company:
    assert m.membership is not None
    return m.db.get_one(Company, m.membership.org_id)


def open_link(m: Member, company: Company) -> tuple[PartnerLink, Partner] | None:
    """The company's pending or active link and its partner, if it has one."""
    found = m.db.execute(
        select(PartnerLink, Partner)
        .join(Partner, Partner.id == PartnerLink.partner_id)
        .where(PartnerLink.open_company_id == company.id)
    ).first()
    return (found[0], found[1]) if found is not None else None


def _state_labels(m: Member) -> dict[str, str]:
    return {state: m.lang.gettext(label) for state, label in LINK_STATE_LABELS.items()}


# ------------------------------------------------------------------------------ overview
@router.get("/company")
def company_home(m: CompanyDep) -> Response:
    return redirect("/company/overview", m)


@router.get("/company/overview")
def overview(m: CompanyDep) -> Response:
    company = _company(m)
    licences = (
        m.db.scalar(
            select(func.count())
            .select_from(Licence)
            .where(Licence.company_id == company.id, Licence.state != LicenceState.REVOKED)
        )
        or 0
    )
    return page(
        m,
        "company/overview.html",
        m.lang.gettext("Overview"),
        company=company,
        current=open_link(m, company),
        licences=licences,
        state_labels=_state_labels(m),
    )


# ------------------------------------------------------------------------------ partner
def _partner_page(
    m: Member, *, status: int = 200, errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> Response:
    company = _company(m)
    principal = m.principal
    search = m.request.query_params.get("q", "").strip()[:100]
    directory = select(Partner).where(access.partner_scope(principal))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        directory = directory.where(Partner.name.ilike(f"%{escaped}%", escape="\\"))
    listing = page_of(
        m.db,
        m.request,
        directory,
        sorts={"name": Partner.name, "since": Partner.created_at},
        default_sort="name",
        lang=m.lang,
        keep=("q",),
    )
    current = open_link(m, company)
    choices: list[tuple[Any, str]] = []
    if current is None and m.is_admin:
        choices = [("", m.lang.gettext("Choose a partner"))] + [
            (partner.id, partner.name)
            for partner in m.db.scalars(select(Partner).where(access.partner_scope(principal)).order_by(Partner.name))
        ]
    history = m.db.execute(
        select(PartnerLink, Partner)
        .join(Partner, Partner.id == PartnerLink.partner_id)
        .where(access.link_scope(principal), PartnerLink.open_company_id.is_(None))
        .order_by(PartnerLink.requested_at.desc(), PartnerLink.id.desc())
        .limit(HISTORY)
    ).all()
    chosen = m.request.query_params.get("partner", "")
    return page(
        m,
        "company/partner.html",
        m.lang.gettext("Partner"),
        status=status,
        company=company,
        current=current,
        history=history,
        listing=listing,
        search=search,
        choices=choices,
        values=values or {"partner_id": chosen},
        errors=errors or {},
        state_labels=_state_labels(m),
    )


@router.get("/company/partner")
def partner_page(m: CompanyDep) -> Response:
    return _partner_page(m)


@router.post("/company/partner/request")
def request_link(m: CompanyDep, form: FormDep) -> Response:
    m.require_admin()
    _ = m.lang.gettext
    company = _company(m)
    values = {"partner_id": form.get("partner_id", "")[:20], "message": form.get("message", "")[:500]}
    data, errors = validate(LinkRequestIn, form, m.lang)
    partner = None
    if data is not None:
        partner = m.db.scalar(select(Partner).where(Partner.id == data.partner_id, access.partner_scope(m.principal)))
        if partner is None:
            errors = {"partner_id": _("Choose one of the partners offered.")}
    if data is None or partner is None:
        if "partner_id" in errors and not form.get("partner_id"):
            errors["partner_id"] = _("Choose a partner.")
        return _partner_page(m, status=422, errors=errors, values=values)
    try:
        link_service.request_link(
            m.db, m.actor, company_id=company.id, partner_id=partner.id, message=data.message, now=now()
        )
    except Refused as refused:
        m.db.rollback()
        return _partner_page(m, status=refused.status, errors=refusal_errors(refused, m.lang), values=values)
    m.db.commit()
    return redirect(
        "/company/partner",
        m,
        notice=_("Your request is sent to {partner}. You will see here when they answer.").format(partner=partner.name),
    )


def _link_of(m: Member, link_id: int) -> tuple[PartnerLink, Partner]:
    found = m.db.execute(
        select(PartnerLink, Partner)
        .join(Partner, Partner.id == PartnerLink.partner_id)
        .where(PartnerLink.id == link_id, access.link_scope(m.principal))
    ).first()
    if found is None:
        raise PageRefused(404, N_("This page does not exist, or it belongs to another organisation."))
    return found[0], found[1]


@router.get("/company/partner/links/{link_id}/end")
def end_link_page(link_id: IdPath, m: CompanyDep) -> Response:
    m.require_admin()
    link, partner = _link_of(m, link_id)
    if link.state != LinkState.ACTIVE:
        return redirect("/company/partner", m)
    return page(m, "company/end_link.html", m.lang.gettext("End the link"), link=link, partner=partner)


@router.post("/company/partner/links/{link_id}/end")
def end_link(link_id: IdPath, m: CompanyDep, form: FormDep) -> Response:
    """Withdraws a pending request, or ends an active link (after its confirmation page)."""
    m.require_admin()
    _ = m.lang.gettext
    _link, partner = _link_of(m, link_id)
    try:
        link = link_service.end(m.db, m.actor, link_id, now=now())
    except Refused as refused:
        m.db.rollback()
        return _partner_page(m, status=refused.status, errors={"__all__": translate(refused, m.lang)})
    m.db.commit()
    if link.state == LinkState.WITHDRAWN:
        notice = _("Your request to {partner} is withdrawn. You may ask a partner again.")
    else:
        notice = _("The link with {partner} has ended. You may ask a partner again.")
    return redirect("/company/partner", m, notice=notice.format(partner=partner.name))
