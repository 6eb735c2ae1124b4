"""The owner's cabinet: partners (register, invite their people, their stock at a glance),
selling sealed licences to a partner, and the licence documents of the whole tree.

The owner never sees a licence key: documents list licences by id and state only. Stock counts
for a page of partners come from one grouped query over the page's partner ids, so the list
stays fast however many licences the partners hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, aliased
from starlette.responses import Response

from cloud_api.accounts import people
from cloud_api.accounts.models import Person
from cloud_api.accounts.schemas import InviteForm, RegisterPartnerForm
from cloud_api.api.errors import ApiError
from cloud_api.api.schemas import MAX_ID
from cloud_api.documents import service as documents
from cloud_api.documents.models import DocumentKind, LicenceDocument
from cloud_api.documents.schemas import SaleIn, end_of_day
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Company, Grade, LinkState, Partner, PartnerLink, Role, User
from cloud_api.web.context import FormDep, Member, OwnerDep, new_request_id, now
from cloud_api.web.forms import refusal_errors, validate
from cloud_api.web.listing import page_of
from cloud_api.web.nav import GRADE_LABELS
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)

PartnerId = Annotated[int, Path(ge=1, le=MAX_ID)]
DocumentId = Annotated[int, Path(ge=1, le=MAX_ID)]

SEARCH_MAX = 100  # a search box longer than any name finds nothing more
KEPT_MAX = 500  # a refused form shows back at most this much of each field

KIND_LABELS = {
    DocumentKind.SALE: N_("Sale to a partner"),
    DocumentKind.MOVE: N_("Move to a company"),
    DocumentKind.UNSEAL: N_("Unsealing"),
}
STATE_LABELS = {
    LicenceState.SEALED: N_("Sealed"),
    LicenceState.ASSIGNED: N_("Unsealed, not on a device"),
    LicenceState.BOUND: N_("On a device"),
    LicenceState.RELEASING: N_("Moving between devices"),
    LicenceState.REVOKED: N_("Revoked"),
}


# ------------------------------------------------------------------------------ stock counts
@dataclass
class Stock:
    """A partner's licences by where they are."""

    sealed: int = 0  # in its stock, key hidden
    unsealed: int = 0  # in its stock, key opened (sold to a buyer without a cabinet)
    with_companies: int = 0  # held by client companies
    bound: int = 0  # running on a device (whoever holds them)
    revoked: int = 0


def stock_of(db: Session, partner_ids: list[int]) -> dict[int, Stock]:
    """Each partner's Stock, in one grouped query over the licences' partner index."""
    if not partner_ids:
        return {}
    live = Licence.state != LicenceState.REVOKED

    def tally(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = db.execute(
        select(
            Licence.partner_id,
            tally(Licence.state == LicenceState.SEALED),
            tally(live & (Licence.state != LicenceState.SEALED) & Licence.company_id.is_(None)),
            tally(live & Licence.company_id.is_not(None)),
            tally(Licence.state == LicenceState.BOUND),
            tally(Licence.state == LicenceState.REVOKED),
        )
        .where(Licence.partner_id.in_(partner_ids))
        .group_by(Licence.partner_id)
    )
    found = {row[0]: Stock(*(int(n or 0) for n in row[1:])) for row in rows}
    return {partner_id: found.get(partner_id, Stock()) for partner_id in partner_ids}


def clients_of(db: Session, partner_ids: list[int]) -> dict[int, int]:
    """How many companies each partner serves (active links), in one grouped query."""
    if not partner_ids:
        return {}
    rows = db.execute(
        select(PartnerLink.partner_id, func.count())
        .where(PartnerLink.partner_id.in_(partner_ids), PartnerLink.state == LinkState.ACTIVE)
        .group_by(PartnerLink.partner_id)
    )
    return {row[0]: row[1] for row in rows}


def _labels(member: Member, labels: dict[str, str]) -> dict[str, str]:
    return {key: member.lang.gettext(text) for key, text in labels.items()}


def _kept(form: dict[str, str], *names: str) -> dict[str, str]:
    return {name: form.get(name, "")[:KEPT_MAX] for name in names}


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ------------------------------------------------------------------------------ partners
@router.get("/owner")
def owner_home(member: OwnerDep) -> Response:
    return redirect("/owner/partners", member)


@router.get("/owner/partners")
def partners_page(member: OwnerDep) -> Response:
    query_text = member.request.query_params.get("q", "").strip()[:SEARCH_MAX]
    query = select(Partner).where(access.partner_scope(member.principal))
    if query_text:
        query = query.where(Partner.name.ilike(_like(query_text), escape="\\"))
    listing = page_of(
        member.db,
        member.request,
        query,
        sorts={"name": Partner.name, "registered": Partner.created_at},
        default_sort="name",
        lang=member.lang,
        keep=("q",),
    )
    ids = [partner.id for partner in listing.rows]
    return page(
        member,
        "owner/partners.html",
        member.lang.gettext("Partners"),
        listing=listing,
        q=query_text,
        stock=stock_of(member.db, ids),
        clients=clients_of(member.db, ids),
    )


@router.get("/owner/partners/new")
def new_partner_page(member: OwnerDep) -> Response:
    member.require_write()
    return page(member, "owner/partner_new.html", member.lang.gettext("Register a partner"), values={})


@router.post("/owner/partners/new")
def register_partner(member: OwnerDep, form: FormDep) -> Response:
    member.require_write()
    _ = member.lang.gettext
    values = _kept(form, "partner_name", "admin_name", "admin_email")
    data, errors = validate(RegisterPartnerForm, form, member.lang)
    if data is not None:
        try:
            partner, _user, _token = people.register_partner(
                member.db,
                member.actor,
                partner_name=data.partner_name,
                admin_email=data.admin_email,
                admin_name=data.admin_name,
                now=now(),
                mailer=member.mailer(),
            )
        except Refused as refused:
            member.db.rollback()
            errors = refusal_errors(refused, member.lang)
            if "email" in errors:  # the service names the invitee's field "email"
                errors["admin_email"] = errors.pop("email")
        else:
            member.db.commit()
            member.wake_mail()
            notice = _("Partner registered. We sent an invitation to {email}.").format(email=data.admin_email)
            return redirect(f"/owner/partners/{partner.id}", member, notice=notice)
    return page(member, "owner/partner_new.html", _("Register a partner"), values=values, errors=errors, status=422)


def _partner_page(member: Member, partner: Partner, *, status: int = 200, **context: Any) -> Response:
    db = member.db
    people_rows = db.execute(
        select(User, Person)
        .join(Person, Person.id == User.person_id)
        .where(User.partner_id == partner.id)
        .order_by(Person.email)
    ).all()
    documents_listing = page_of(
        db,
        member.request,
        select(LicenceDocument).where(
            LicenceDocument.partner_id == partner.id, documents.document_scope(member.principal)
        ),
        sorts={"date": LicenceDocument.created_at, "number": LicenceDocument.id},
        default_sort="date",
        default_descending=True,
        lang=member.lang,
    )
    context.setdefault("values", {"grade": Grade.ADMIN})
    return page(
        member,
        "owner/partner.html",
        partner.name,
        status=status,
        partner=partner,
        stock=stock_of(db, [partner.id])[partner.id],
        clients=clients_of(db, [partner.id]).get(partner.id, 0),
        people=[
            (user, person, member.lang.gettext(GRADE_LABELS[Role.grade_of(user.role)])) for user, person in people_rows
        ],
        listing=documents_listing,
        kinds=_labels(member, KIND_LABELS),
        grades=[(grade, member.lang.gettext(GRADE_LABELS[grade])) for grade in Grade.ALL],
        **context,
    )


@router.get("/owner/partners/{partner_id}")
def partner_page(member: OwnerDep, partner_id: PartnerId) -> Response:
    return _partner_page(member, access.visible_partner(member.db, member.principal, partner_id))


@router.post("/owner/partners/{partner_id}/invite")
def invite_to_partner(member: OwnerDep, partner_id: PartnerId, form: FormDep) -> Response:
    member.require_write()
    _ = member.lang.gettext
    partner = access.visible_partner(member.db, member.principal, partner_id)
    data, errors = validate(InviteForm, form, member.lang)
    if data is not None:
        try:
            people.invite(
                member.db,
                member.actor,
                email=data.email,
                name=data.name,
                role=Role.of("partner", data.grade),
                org=("partner", partner.id),
                org_name=partner.name,
                now=now(),
                mailer=member.mailer(),
            )
        except Refused as refused:
            member.db.rollback()
            errors = refusal_errors(refused, member.lang)
        else:
            member.db.commit()
            member.wake_mail()
            notice = _("We sent an invitation to {email}.").format(email=data.email)
            return redirect(f"/owner/partners/{partner.id}", member, notice=notice)
    values = _kept(form, "email", "name", "grade")
    return _partner_page(member, partner, status=422, values=values, errors=errors)


# ------------------------------------------------------------------------------ selling
def _partner_choices(member: Member) -> list[tuple[int | str, str]]:
    rows = member.db.execute(
        select(Partner.id, Partner.name).where(access.partner_scope(member.principal)).order_by(Partner.name)
    )
    return [("", member.lang.gettext("Choose a partner"))] + [(row[0], row[1]) for row in rows]


def _a_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day + timedelta(days=365)


def _sale_form(member: Member, values: dict[str, str], *, errors: dict[str, str] | None = None) -> Response:
    return page(
        member,
        "owner/sale_new.html",
        member.lang.gettext("Sell licences"),
        status=422 if errors else 200,
        values=values,
        errors=errors or {},
        partners=_partner_choices(member),
    )


@router.get("/owner/sales/new")
def new_sale_page(member: OwnerDep) -> Response:
    member.require_write()
    chosen = member.request.query_params.get("partner_id", "")[:20]
    values = {
        "partner_id": chosen,
        "quantity": "",
        "valid_until": _a_year_after(now().date()).isoformat(),
        "request_id": new_request_id(),
    }
    return _sale_form(member, values)


@router.post("/owner/sales/new")
def sell(member: OwnerDep, form: FormDep) -> Response:
    member.require_write()
    _ = member.lang.gettext
    values = _kept(form, "partner_id", "quantity", "valid_until", "note", "request_id")
    data, errors = validate(SaleIn, {key: form.get(key, "") for key in values}, member.lang)
    if data is None:
        return _sale_form(member, values, errors=errors)
    try:
        document = documents.sell(
            member.db,
            member.actor,
            partner_id=data.partner_id,
            quantity=data.quantity,
            valid_until=end_of_day(data.valid_until),
            note=data.note,
            request_id=data.request_id,
            now=now(),
        )
    except ApiError:  # not one of this owner's partners
        member.db.rollback()
        return _sale_form(member, values, errors={"partner_id": _("Choose one of the partners offered.")})
    except Refused as refused:
        member.db.rollback()
        return _sale_form(member, values, errors=_sale_refusal(member, refused))
    member.db.commit()
    notice = member.lang.ngettext(
        "{number}: {quantity} sealed licence sold.", "{number}: {quantity} sealed licences sold.", document.quantity
    ).format(number=document.number, quantity=member.lang.number(document.quantity))
    return redirect(f"/owner/documents/{document.id}", member, notice=notice)


def _sale_refusal(member: Member, refused: Refused) -> dict[str, str]:
    return refusal_errors(refused, member.lang)


# ------------------------------------------------------------------------------ documents
@router.get("/owner/documents")
def documents_page(member: OwnerDep) -> Response:
    args = member.request.query_params
    number = args.get("q", "").strip()[:SEARCH_MAX]
    kind = args.get("kind", "")
    partner_filter = args.get("partner_id", "")
    company = aliased(Company)
    # Three columns a row; page_of is typed for one (SQLAlchemy's Select is variadic).
    query: Select[Any] = (
        select(LicenceDocument, Partner.name, company.name)  # type: ignore[assignment]
        .join(Partner, Partner.id == LicenceDocument.partner_id)
        .outerjoin(company, company.id == LicenceDocument.company_id)
        .where(documents.document_scope(member.principal))
    )
    if number:
        query = query.where(LicenceDocument.number.ilike(_like(number), escape="\\"))
    if kind in DocumentKind.ALL:
        query = query.where(LicenceDocument.kind == kind)
    if partner_filter.isdigit() and 1 <= int(partner_filter) <= MAX_ID:
        query = query.where(LicenceDocument.partner_id == int(partner_filter))
    listing = page_of(
        member.db,
        member.request,
        query,
        sorts={"date": LicenceDocument.created_at, "number": LicenceDocument.id, "quantity": LicenceDocument.quantity},
        default_sort="date",
        default_descending=True,
        lang=member.lang,
        keep=("q", "kind", "partner_id"),
        scalars=False,
    )
    kinds = _labels(member, KIND_LABELS)
    return page(
        member,
        "owner/documents.html",
        member.lang.gettext("Documents"),
        listing=listing,
        kinds=kinds,
        kind_options=[("", member.lang.gettext("All kinds")), *kinds.items()],
        partner_options=[("", member.lang.gettext("All partners")), *_partner_choices(member)[1:]],
        values={"q": number, "kind": kind, "partner_id": partner_filter},
        filtered=bool(number or kind or partner_filter),
    )


def _document_context(member: Member, document_id: int) -> dict[str, Any]:
    document = documents.visible_document(member.db, member.principal, document_id)
    partner = member.db.get_one(Partner, document.partner_id)
    company = member.db.get(Company, document.company_id) if document.company_id else None
    # Only ids and states leave this function: the keys stay in the licence book.
    licences = [(licence.id, licence.state) for licence in documents.document_licences(member.db, document)]
    return {
        "document": document,
        "partner": partner,
        "company": company,
        "licences": licences,
        "kinds": _labels(member, KIND_LABELS),
        "states": _labels(member, STATE_LABELS),
    }


@router.get("/owner/documents/{document_id}")
def document_page(member: OwnerDep, document_id: DocumentId) -> Response:
    context = _document_context(member, document_id)
    title = member.lang.gettext("Document {number}").format(number=context["document"].number)
    return page(member, "owner/document.html", title, **context)


@router.get("/owner/documents/{document_id}/print")
def document_print(member: OwnerDep, document_id: DocumentId) -> Response:
    context = _document_context(member, document_id)
    title = member.lang.gettext("Document {number}").format(number=context["document"].number)
    return page(member, "owner/document_print.html", title, **context)
