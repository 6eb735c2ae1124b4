"""The partner's documents: the list and its CSV, a document's page and print view, and the two
documents a partner makes (move sealed licences to a client company, unseal one for a buyer)."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Select, or_, select
from starlette.responses import Response

from broker.contract import licence as kl
from cloud_api.db import utc
from cloud_api.documents import service
from cloud_api.documents.models import LicenceDocument, LicenceDocumentLine
from cloud_api.documents.schemas import MoveIn, UnsealIn
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.models import Company, LinkState, PartnerLink
from cloud_api.web.context import FormDep, Member, PartnerDep, new_request_id, now
from cloud_api.web.forms import refusal_errors, validate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page, redirect
from cloud_api.web.partner_pages._common import (
    KIND_LABELS,
    STATE_LABELS,
    IdPath,
    company_names,
    like,
    partner_id_of,
    stock_state,
)
from cloud_api.web.render import SECURITY_HEADERS

router = APIRouter()


def _documents_query(member: Member, kind: str, q: str) -> Select[Any]:
    query = select(LicenceDocument).where(LicenceDocument.partner_id == partner_id_of(member))
    if kind in KIND_LABELS:
        query = query.where(LicenceDocument.kind == kind)
    if q:
        pattern = like(q)
        query = query.where(
            or_(
                LicenceDocument.number.ilike(pattern, escape="\\"),
                LicenceDocument.firm_name.ilike(pattern, escape="\\"),
            )
        )
    return query


@router.get("/partner/documents")
def documents_page(member: PartnerDep, kind: str = "", q: str = "") -> Response:
    q = q.strip()[:100]
    listing = page_of(
        member.db,
        member.request,
        _documents_query(member, kind, q),
        sorts={"date": LicenceDocument.id, "number": LicenceDocument.number, "quantity": LicenceDocument.quantity},
        default_sort="date",
        default_descending=True,
        lang=member.lang,
        keep=("q", "kind"),
    )
    return page(
        member,
        "partner/documents.html",
        member.lang.gettext("Documents"),
        listing=listing,
        companies=company_names(member, {document.company_id for document in listing.rows}),
        kind=kind if kind in KIND_LABELS else "",
        q=q,
        kind_labels=KIND_LABELS,
        csv_query=listing.params,
    )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@router.get("/partner/documents.csv")
def documents_csv(member: PartnerDep, kind: str = "", q: str = "") -> Response:
    query = _documents_query(member, kind, q.strip()[:100])
    documents = list(member.db.scalars(query.order_by(LicenceDocument.id)))
    licence_ids: dict[int, list[str]] = {}
    lines = member.db.execute(
        select(LicenceDocumentLine.document_id, LicenceDocumentLine.licence_id)
        .where(LicenceDocumentLine.document_id.in_(query.with_only_columns(LicenceDocument.id).scalar_subquery()))
        .order_by(LicenceDocumentLine.licence_id)
    )
    for document_id, licence_id in lines:
        licence_ids.setdefault(document_id, []).append(licence_id)
    companies = company_names(member, {document.company_id for document in documents})
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads the file as UTF-8 (Cyrillic firm names) only with a BOM
    writer = csv.writer(out)
    gettext = member.lang.gettext
    writer.writerow(
        gettext(column)
        for column in (
            N_("Number"),
            N_("Kind"),
            N_("Date"),
            N_("Company"),
            N_("Firm"),
            N_("Tax number (INN)"),
            N_("Buyer e-mail"),
            N_("Quantity"),
            N_("Created by"),
            N_("Licences"),
        )
    )
    for document in documents:
        row = (
            document.number,
            gettext(KIND_LABELS.get(document.kind, document.kind)),
            utc(document.created_at).isoformat(),
            companies.get(document.company_id or 0),
            document.firm_name,
            document.tax_number,
            document.buyer_email,
            document.quantity,
            document.created_by,
            " ".join(licence_ids.get(document.id, [])),
        )
        writer.writerow(_cell(value) for value in row)
    headers = {**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="documents.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _document_page(member: Member, document_id: int, template: str) -> Response:
    document = service.visible_document(member.db, member.principal, document_id)
    licences = service.document_licences(member.db, document)
    return page(
        member,
        template,
        member.lang.gettext("Document {number}").format(number=document.number),
        document=document,
        kind_label=KIND_LABELS.get(document.kind, document.kind),
        company=company_names(member, {document.company_id}).get(document.company_id or 0),
        licences=licences,
        stock_state=stock_state,
        state_labels=STATE_LABELS,
    )


@router.get("/partner/documents/{document_id}")
def document_page(member: PartnerDep, document_id: IdPath) -> Response:
    return _document_page(member, document_id, "partner/document.html")


@router.get("/partner/documents/{document_id}/print")
def document_print(member: PartnerDep, document_id: IdPath) -> Response:
    return _document_page(member, document_id, "partner/document_print.html")


def _client_companies(member: Member) -> list[tuple[int, str]]:
    rows = member.db.execute(
        select(Company.id, Company.name)
        .join(PartnerLink, PartnerLink.company_id == Company.id)
        .where(PartnerLink.partner_id == partner_id_of(member), PartnerLink.state == LinkState.ACTIVE)
        .order_by(Company.name, Company.id)
    )
    return [(company_id, name) for company_id, name in rows]


def _move_form(member: Member, values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    return page(
        member,
        "partner/move.html",
        member.lang.gettext("Move sealed licences to a company"),
        companies=_client_companies(member),
        stock=service.sealed_stock(member.db, partner_id_of(member)),
        values=values,
        errors=errors,
        status=status,
    )


@router.get("/partner/documents/new/move")
def move_page(member: PartnerDep, company_id: str = "") -> Response:
    return _move_form(member, {"company_id": company_id, "quantity": "1", "request_id": new_request_id()}, {})


@router.post("/partner/documents/new/move")
def move_licences(member: PartnerDep, form: FormDep) -> Response:
    member.require_write()
    data, errors = validate(MoveIn, form, member.lang)
    if data is None:
        return _move_form(member, form, errors, 422)
    try:
        document = service.move_sealed(
            member.db,
            member.actor,
            company_id=data.company_id,
            quantity=data.quantity,
            note=data.note,
            request_id=data.request_id,
            now=now(),
        )
    except Refused as refused:
        member.db.rollback()  # a refusal halfway leaves nothing moved
        return _move_form(member, form, refusal_errors(refused, member.lang), refused.status)
    member.db.commit()
    notice = member.lang.ngettext(
        "Document {number}: {count} licence moved to the company.",
        "Document {number}: {count} licences moved to the company.",
        document.quantity,
    ).format(number=document.number, count=member.lang.number(document.quantity))
    return redirect(f"/partner/documents/{document.id}", member, notice=notice)


def _unseal_form(member: Member, values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    return page(
        member,
        "partner/unseal.html",
        member.lang.gettext("Unseal a licence for a buyer"),
        stock=service.sealed_stock(member.db, partner_id_of(member)),
        values=values,
        errors=errors,
        status=status,
    )


@router.get("/partner/documents/new/unseal")
def unseal_page(member: PartnerDep) -> Response:
    return _unseal_form(member, {"request_id": new_request_id()}, {})


@router.post("/partner/documents/new/unseal")
def unseal_licence(member: PartnerDep, form: FormDep) -> Response:
    member.require_write()
    data, errors = validate(UnsealIn, form, member.lang)
    if data is None:
        return _unseal_form(member, form, errors, 422)
    try:
        document, licence = service.unseal_to_self(
            member.db,
            member.actor,
            firm_name=data.firm_name,
            tax_number=data.tax_number,
            buyer_email=data.buyer_email,
            note=data.note,
            request_id=data.request_id,
            now=now(),
        )
    except Refused as refused:
        member.db.rollback()
        return _unseal_form(member, form, refusal_errors(refused, member.lang), refused.status)
    member.db.commit()
    # Shown in this response only (no redirect): the key is never in a URL or a page a GET can fetch.
    return page(
        member,
        "partner/unsealed.html",
        member.lang.gettext("Licence unsealed"),
        document=document,
        licence=licence,
        key=kl.format_licence_key(licence.licence_key),
    )
