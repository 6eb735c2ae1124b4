"""Licence documents over HTTP: the owner sells sealed licences to a partner, a partner moves
sealed licences to a linked company or unseals one for a buyer; the same service functions
the cabinets call (cloud_api/documents/service.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from cloud_api.api.deps import ActorDep, PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES
from cloud_api.api.licence_schemas import LICENCE_ID_PATTERN
from cloud_api.api.schemas import MAX_ID
from cloud_api.documents import service
from cloud_api.documents.models import LicenceDocument
from cloud_api.documents.schemas import DocumentOut, KeyOut, MoveIn, SaleIn, UnsealIn, UnsealOut, end_of_day

router = APIRouter(tags=["licence documents"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def document_out(session: SessionDep, document: LicenceDocument) -> DocumentOut:
    out = DocumentOut.model_validate(document, from_attributes=True)
    out.licence_ids = [licence.id for licence in service.document_licences(session, document)]
    return out


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/licence-documents/sales",
    status_code=201,
    response_model=DocumentOut,
    summary="Sell sealed licences to a partner (owner admin or manager)",
)
def sell(body: SaleIn, session: SessionDep, actor: ActorDep) -> DocumentOut:
    document = service.sell(
        session,
        actor,
        partner_id=body.partner_id,
        quantity=body.quantity,
        valid_until=end_of_day(body.valid_until),
        entitlements=body.entitlements,
        note=body.note,
        request_id=body.request_id,
        now=_now(),
    )
    session.commit()
    return document_out(session, document)


@router.post(
    "/licence-documents/moves",
    status_code=201,
    response_model=DocumentOut,
    summary="Move sealed licences of your stock to a linked company (partner admin or manager)",
)
def move(body: MoveIn, session: SessionDep, actor: ActorDep) -> DocumentOut:
    document = service.move_sealed(
        session,
        actor,
        company_id=body.company_id,
        quantity=body.quantity,
        note=body.note,
        request_id=body.request_id,
        now=_now(),
    )
    session.commit()
    return document_out(session, document)


@router.post(
    "/licence-documents/unsealings",
    status_code=201,
    response_model=UnsealOut,
    summary="Unseal one licence to yourself for a buyer (firm, INN, e-mail); the key is in the answer",
)
def unseal(body: UnsealIn, session: SessionDep, actor: ActorDep) -> UnsealOut:
    document, licence = service.unseal_to_self(
        session,
        actor,
        firm_name=body.firm_name,
        tax_number=body.tax_number,
        buyer_email=body.buyer_email,
        note=body.note,
        request_id=body.request_id,
        now=_now(),
    )
    key = service.reveal_key(session, actor, licence.id, now=_now())
    session.commit()
    return UnsealOut(document=document_out(session, document), licence_id=licence.id, key=key)


@router.get(
    "/licence-documents", response_model=list[DocumentOut], summary="Documents of your organisation, newest first"
)
def list_documents(
    session: SessionDep,
    p: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[DocumentOut]:
    rows = session.scalars(
        select(LicenceDocument)
        .where(service.document_scope(p))
        .order_by(LicenceDocument.created_at.desc(), LicenceDocument.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [document_out(session, row) for row in rows]


@router.get("/licence-documents/{document_id}", response_model=DocumentOut, summary="One document with its licences")
def get_document(document_id: IdPath, session: SessionDep, p: PrincipalDep) -> DocumentOut:
    return document_out(session, service.visible_document(session, p, document_id))


@router.post(
    "/licences/{licence_id}/key",
    response_model=KeyOut,
    summary="Show the key of a licence in your unsealed stock again (audited)",
)
def reveal_key(
    licence_id: Annotated[str, Path(pattern=LICENCE_ID_PATTERN, max_length=40)],
    session: SessionDep,
    actor: ActorDep,
) -> KeyOut:
    key = service.reveal_key(session, actor, licence_id, now=_now())
    session.commit()
    return KeyOut(licence_id=licence_id, key=key)
