"""The rules of licence documents, called by the JSON API and the cabinets alike.

- `sell`: the owner sells sealed licences to a partner (issues them into its stock).
- `move_sealed`: a partner hands N sealed licences of its stock to a company it has an active
  link with (the oldest first, so stock rotates).
- `unseal_to_self`: a partner opens one sealed licence for a buyer without a cabinet, recording
  the buyer's firm, tax number (INN) and e-mail; the key is shown once, then on request.
- `reveal_key`: shows the key of a licence in the partner's unsealed stock again, with an
  audit row each time.

Each writes its document, its lines, the licence book's own events and one audit row, in the
caller's transaction (none commits).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.accounts import audit
from cloud_api.accounts.audit import Actor
from cloud_api.documents.models import NUMBER_PREFIX, DocumentKind, LicenceDocument, LicenceDocumentLine
from cloud_api.documents.tax_numbers import valid_inn
from cloud_api.licences import book
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.records import LicenceRefused
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Company, Grade, LinkState, PartnerLink, Role
from cloud_api.tenancy.tokens import Principal

MAX_MOVE = 1000


def _require(p: Principal, level: str) -> None:
    if Role.level_of(p.role) != level:
        message = {
            "owner": N_("Only the owner's people may do this."),
            "partner": N_("Only a partner may do this."),
        }.get(level, N_("Only a company may do this."))
        raise Refused("forbidden", message, kind="forbidden")
    if not Grade.at_least(Role.grade_of(p.role), Grade.MANAGER):
        raise Refused(
            "forbidden", N_("Your role here is read-only: ask an admin of your organisation."), kind="forbidden"
        )


def _refused(exc: LicenceRefused) -> Refused:
    kind = (
        "not_found" if exc.code == "not_found" else "invalid" if exc.code.startswith("licence.invalid") else "conflict"
    )
    return Refused(exc.code, exc.message, kind=kind)


def _document(
    session: Session, actor: Actor, kind: str, *, partner_id: int, quantity: int, now: datetime, **fields: Any
) -> LicenceDocument:
    p = actor.principal
    document = LicenceDocument(
        number=f"pending-{now.timestamp()}-{p.user_id}",
        kind=kind,
        owner_id=p.owner_id,
        partner_id=partner_id,
        quantity=quantity,
        created_by_user_id=p.user_id,
        created_by=actor.name[:254],
        created_at=now,
        **fields,
    )
    session.add(document)
    session.flush()
    document.number = f"{NUMBER_PREFIX[kind]}-{document.id:06d}"
    return document


def sent_before(session: Session, actor: Actor, request_id: str | None) -> LicenceDocument | None:
    """The document this member's request `request_id` already made, if any (a form sent twice)."""
    if request_id is None:
        return None
    return session.scalar(
        select(LicenceDocument).where(
            LicenceDocument.created_by_user_id == actor.principal.user_id, LicenceDocument.request_id == request_id
        )
    )


def _lines(session: Session, document: LicenceDocument, licence_ids: list[str]) -> None:
    session.add_all(LicenceDocumentLine(document_id=document.id, licence_id=licence_id) for licence_id in licence_ids)


# ------------------------------------------------------------------------------ owner
def sell(
    session: Session,
    actor: Actor,
    *,
    partner_id: int,
    quantity: int,
    valid_until: datetime,
    entitlements: dict[str, Any] | None = None,
    note: str | None = None,
    request_id: str | None = None,
    now: datetime,
) -> LicenceDocument:
    p = actor.principal
    _require(p, "owner")
    if (earlier := sent_before(session, actor, request_id)) is not None:
        return earlier
    partner = access.visible_partner(session, p, partner_id)
    try:
        issued = book.issue_licences(
            session, partner, quantity, entitlements or {}, valid_until, by_user=p.user_id, now=now
        )
    except LicenceRefused as exc:
        if exc.code == "licence.invalid_count":
            raise Refused(
                exc.code, N_("Enter a number from 1 to {most}."), field="quantity", kind="invalid", most=book.MAX_ISSUE
            ) from None
        raise Refused(exc.code, N_("Choose a date after today."), field="valid_until", kind="invalid") from None
    document = _document(
        session,
        actor,
        DocumentKind.SALE,
        partner_id=partner.id,
        quantity=quantity,
        now=now,
        valid_until=valid_until,
        note=note,
        request_id=request_id,
    )
    _lines(session, document, [licence.id for licence in issued])
    audit.record(
        session,
        actor,
        "licences.sold",
        target=document.number,
        detail=f"{quantity} sealed licences to partner {partner.id} ({partner.name})",
        now=now,
    )
    # The partner sees it in its own audit too.
    audit.record(
        session,
        actor,
        "licences.received",
        target=document.number,
        detail=f"{quantity} sealed licences bought",
        org=("partner", partner.id),
        now=now,
    )
    return document


# ------------------------------------------------------------------------------ partners
def sealed_stock(session: Session, partner_id: int) -> int:
    from sqlalchemy import func

    return (
        session.scalar(
            select(func.count())
            .select_from(Licence)
            .where(Licence.partner_id == partner_id, Licence.state == LicenceState.SEALED, Licence.company_id.is_(None))
        )
        or 0
    )


def move_sealed(
    session: Session,
    actor: Actor,
    *,
    company_id: int,
    quantity: int,
    note: str | None = None,
    request_id: str | None = None,
    now: datetime,
) -> LicenceDocument:
    p = actor.principal
    _require(p, "partner")
    assert p.partner_id is not None
    if (earlier := sent_before(session, actor, request_id)) is not None:
        return earlier
    if not 1 <= quantity <= MAX_MOVE:
        raise Refused(
            "document.quantity", N_("Enter a number from 1 to {most}."), field="quantity", kind="invalid", most=MAX_MOVE
        )
    linked = session.scalar(
        select(Company)
        .join(PartnerLink, PartnerLink.company_id == Company.id)
        .where(Company.id == company_id, PartnerLink.partner_id == p.partner_id, PartnerLink.state == LinkState.ACTIVE)
    )
    if linked is None:
        raise Refused(
            "document.company", N_("Choose one of your client companies."), field="company_id", kind="invalid"
        )
    picked = list(
        session.scalars(
            select(Licence.id)
            .where(
                Licence.partner_id == p.partner_id, Licence.state == LicenceState.SEALED, Licence.company_id.is_(None)
            )
            .order_by(Licence.created_at, Licence.id)
            .limit(quantity)
        )
    )
    if len(picked) < quantity:
        raise Refused(
            "document.stock",
            N_("You have {available} sealed licences: enter at most that many, or buy more from the owner."),
            field="quantity",
            available=len(picked),
        )
    for licence_id in picked:
        try:
            book.assign(session, licence_id, linked.id, by_user=p.user_id, now=now)
        except LicenceRefused as exc:  # moved by a concurrent document: the whole document stops
            raise Refused(
                "document.changed",
                N_("Your stock changed meanwhile. Check it and send the document again."),
                detail=exc.message,
            ) from None
    document = _document(
        session,
        actor,
        DocumentKind.MOVE,
        partner_id=p.partner_id,
        quantity=quantity,
        now=now,
        company_id=linked.id,
        note=note,
        request_id=request_id,
    )
    _lines(session, document, picked)
    audit.record(
        session,
        actor,
        "licences.moved",
        target=document.number,
        detail=f"{quantity} sealed licences to company {linked.id} ({linked.name})",
        now=now,
    )
    audit.record(
        session,
        actor,
        "licences.received",
        target=document.number,
        detail=f"{quantity} licences from the partner",
        org=("company", linked.id),
        now=now,
    )
    return document


def unseal_to_self(
    session: Session,
    actor: Actor,
    *,
    firm_name: str,
    tax_number: str,
    buyer_email: str,
    note: str | None = None,
    request_id: str | None = None,
    now: datetime,
) -> tuple[LicenceDocument, Licence]:
    """One licence unsealed for a buyer. The same request sent again returns the same document
    and licence (the caller shows its key again, so that showing is audited here)."""
    from cloud_api.accounts.people import normalise_email

    p = actor.principal
    _require(p, "partner")
    assert p.partner_id is not None
    if (earlier := sent_before(session, actor, request_id)) is not None:
        licence = document_licences(session, earlier)[0]
        audit.record(session, actor, "licence.key_shown", target=licence.id, detail=f"{earlier.number} sent again")
        return earlier, licence
    if not valid_inn(tax_number):
        raise Refused(
            "document.tax_number",
            N_("Enter a valid INN: 10 digits for an organisation, 12 for a sole trader."),
            field="tax_number",
            kind="invalid",
        )
    try:
        email = normalise_email(buyer_email)
    except Refused as exc:
        raise Refused(exc.code, exc.template, field="buyer_email", kind="invalid") from None
    licence_id = session.scalar(
        select(Licence.id)
        .where(Licence.partner_id == p.partner_id, Licence.state == LicenceState.SEALED, Licence.company_id.is_(None))
        .order_by(Licence.created_at, Licence.id)
        .limit(1)
    )
    if licence_id is None:
        raise Refused("document.stock", N_("You have no sealed licences left. Buy more from the owner."))
    try:
        licence = book.unseal(session, licence_id, by_user=p.user_id, now=now)
    except LicenceRefused as exc:
        raise _refused(exc) from None
    document = _document(
        session,
        actor,
        DocumentKind.UNSEAL,
        partner_id=p.partner_id,
        quantity=1,
        now=now,
        firm_name=firm_name,
        tax_number=tax_number,
        buyer_email=email,
        note=note,
        request_id=request_id,
    )
    _lines(session, document, [licence.id])
    audit.record(
        session,
        actor,
        "licence.unsealed",
        target=licence.id,
        detail=f"{document.number}: for {firm_name}, INN {tax_number}",
        now=now,
    )
    return document, licence


def reveal_key(session: Session, actor: Actor, licence_id: str, *, now: datetime) -> str:
    """The key of a licence in the partner's unsealed stock; every look is audited."""
    p = actor.principal
    _require(p, "partner")
    licence = session.scalar(select(Licence).where(Licence.id == licence_id, Licence.partner_id == p.partner_id))
    if licence is None:
        raise Refused("not_found", N_("No such licence in your stock."), kind="not_found")
    if licence.state == LicenceState.SEALED or licence.company_id is not None:
        raise Refused(
            "licence.key_hidden",
            N_(
                "The key is shown only for licences you unsealed and still hold (sealed ones keep it hidden; "
                "a company's licence shows it to the company)."
            ),
            kind="forbidden",
        )
    audit.record(session, actor, "licence.key_shown", target=licence.id, now=now)
    return kl.format_licence_key(licence.licence_key)


# ------------------------------------------------------------------------------ reading
def document_scope(p: Principal) -> Any:
    level = Role.level_of(p.role)
    if level == "owner":
        return LicenceDocument.owner_id == p.owner_id
    if level == "partner":
        return LicenceDocument.partner_id == p.partner_id
    return LicenceDocument.company_id == p.company_id


def visible_document(session: Session, p: Principal, document_id: int) -> LicenceDocument:
    document = session.scalar(select(LicenceDocument).where(LicenceDocument.id == document_id, document_scope(p)))
    if document is None:
        raise Refused("not_found", N_("No such document."), kind="not_found")
    return document


def document_licences(session: Session, document: LicenceDocument) -> list[Licence]:
    return list(
        session.scalars(
            select(Licence)
            .join(LicenceDocumentLine, LicenceDocumentLine.licence_id == Licence.id)
            .where(LicenceDocumentLine.document_id == document.id)
            .order_by(Licence.id)
        )
    )


def unsealing_of(session: Session, licence_id: str) -> LicenceDocument | None:
    """The unsealing document of a licence (firm, INN and e-mail of its buyer), if any."""
    return session.scalar(
        select(LicenceDocument)
        .join(LicenceDocumentLine, LicenceDocumentLine.document_id == LicenceDocument.id)
        .where(LicenceDocumentLine.licence_id == licence_id, LicenceDocument.kind == DocumentKind.UNSEAL)
    )
