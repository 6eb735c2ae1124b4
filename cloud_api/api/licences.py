"""The licence book over HTTP: the owner issues licences to partners, partners assign them to
companies (or unseal them for themselves), companies see and move theirs and release them back
to the partner's stock, sellers and the owner revoke, technicians upload offline release
receipts. Devices bind keys over MQTT (cloud_api/licences/binding.py), not here.

Who sees a licence: the owner's users (all of the owner's), the seller's partner users, the
holder company's users. Anyone else gets 404. Changes need a manager or admin. The key is
shown only to its holder's managers and admins: the partner's while the licence is in its
unsealed stock, the company's once it is theirs. A company's moves and releases go through
cloud_api/licences/company_desk.py, shared with the company cabinet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.api.deps import ActorDep, PrincipalDep, SessionDep, require
from cloud_api.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse, conflict, not_found
from cloud_api.api.licence_schemas import (
    LICENCE_ID_PATTERN,
    AssignIn,
    IssueIn,
    LicenceEventOut,
    LicenceOut,
    MoveIn,
    ReleaseFileIn,
    ReleaseUploadOut,
    ReleasingOut,
    RevokeIn,
)
from cloud_api.api.schemas import MAX_ID
from cloud_api.licences import book, company_desk
from cloud_api.licences.binding import accept_release
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.policy import LicencePolicy, policy_from_settings
from cloud_api.licences.records import LicenceRefused, user_actor
from cloud_api.tenancy import access
from cloud_api.tenancy.access import licence_scope
from cloud_api.tenancy.models import Company, Device, Grade, Level, LinkState, PartnerLink
from cloud_api.tenancy.tokens import Principal

router = APIRouter(tags=["licences"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
LicenceIdPath = Annotated[str, Path(pattern=LICENCE_ID_PATTERN, max_length=40)]
# Only when the service has no lease signing key (misconfiguration).
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "the cloud cannot sign leases now"}
}
_INVALID = {"licence.invalid_count", "licence.invalid_expiry", "licence.key_invalid"}


# ------------------------------------------------------------------------------ helpers
def _now() -> datetime:
    return datetime.now(UTC)


def policy_of(request: Request) -> LicencePolicy:
    """The app's licence policy, built from its settings on first use (the cabinet uses it too)."""
    policy = getattr(request.app.state, "licence_policy", None)
    if policy is None:
        policy = request.app.state.licence_policy = policy_from_settings(request.app.state.settings)
    return policy


def _refused(exc: LicenceRefused) -> ApiError:
    if exc.code == "not_found":
        return ApiError(404, "not_found", exc.message)
    if exc.code in _INVALID:
        return ApiError(422, exc.code, exc.message)
    if exc.code == "licence.unavailable":
        return ApiError(503, exc.code, exc.message)
    return conflict(exc.code, exc.message)


def visible_licence(session: Session, p: Principal, licence_id: str) -> Licence:
    licence = session.scalar(select(Licence).where(Licence.id == licence_id, licence_scope(p)))
    if licence is None:
        raise not_found(f"licence {licence_id}")
    return licence


def _shows_key(p: Principal, licence: Licence) -> bool:
    if licence.state == LicenceState.SEALED or not p.may_write:
        return False
    if p.level == Level.PARTNER:
        return licence.company_id is None and licence.partner_id == p.partner_id
    return p.level == Level.COMPANY and licence.company_id == p.company_id


def licence_out(p: Principal, licence: Licence) -> LicenceOut:
    releasing = None
    if licence.state == LicenceState.RELEASING:
        releasing = ReleasingOut(
            from_device_id=licence.releasing_from_device_id,
            from_epoch=licence.releasing_from_epoch,
            to_device_id=licence.releasing_to_device_id,
            deadline=licence.release_deadline,
        )
    return LicenceOut(
        id=licence.id,
        state=licence.state,
        partner_id=licence.partner_id,
        company_id=licence.company_id,
        key=kl.format_licence_key(licence.licence_key) if _shows_key(p, licence) else None,
        entitlements=licence.entitlements,
        valid_until=licence.valid_until,
        device_id=licence.device_id if licence.state in (LicenceState.BOUND, LicenceState.RELEASING) else None,
        epoch=licence.epoch,
        lease_expires_at=book.lease_expiry(licence),
        releasing=releasing,
        created_at=licence.created_at,
        updated_at=licence.updated_at,
    )


def _reread(session: Session, p: Principal, licence_id: str) -> LicenceOut:
    return licence_out(p, session.get_one(Licence, licence_id, populate_existing=True))


# ------------------------------------------------------------------------------ owner and partners
@router.post(
    "/partners/{partner_id}/licences",
    status_code=201,
    response_model=list[LicenceOut],
    summary="Issue sealed licences to a partner (owner admin or manager)",
)
def issue(partner_id: IdPath, body: IssueIn, session: SessionDep, p: PrincipalDep) -> list[LicenceOut]:
    require(p, Level.OWNER)
    partner = access.visible_partner(session, p, partner_id)
    valid_until = body.valid_until if body.valid_until.tzinfo else body.valid_until.replace(tzinfo=UTC)
    try:
        issued = book.issue_licences(
            session, partner, body.count, body.entitlements, valid_until, by_user=p.user_id, now=_now()
        )
    except LicenceRefused as exc:
        raise _refused(exc) from None
    ids = [licence.id for licence in issued]
    session.commit()
    return [_reread(session, p, licence_id) for licence_id in ids]


@router.get(
    "/partners/{partner_id}/licences",
    response_model=list[LicenceOut],
    summary="A partner's licences: its stock (sealed and unsealed), or all it sold",
)
def partner_licences(
    partner_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    scope: Annotated[Literal["stock", "all"], Query(description="stock: not yet with a company")] = "stock",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[LicenceOut]:
    require(p, Level.OWNER, Level.PARTNER, min_grade=Grade.VIEWER)
    partner = access.visible_partner(session, p, partner_id)
    query = select(Licence).where(Licence.partner_id == partner.id)
    if scope == "stock":
        query = query.where(Licence.company_id.is_(None))
    rows = session.scalars(query.order_by(Licence.created_at, Licence.id).limit(limit).offset(offset))
    return [licence_out(p, licence) for licence in rows]


@router.post(
    "/licences/{licence_id}/assign",
    response_model=LicenceOut,
    summary="Hand a licence of the partner's stock to a linked company (admin or manager of the seller)",
)
def assign(licence_id: LicenceIdPath, body: AssignIn, session: SessionDep, p: PrincipalDep) -> LicenceOut:
    visible_licence(session, p, licence_id)
    require(p, Level.PARTNER)
    try:
        book.assign(session, licence_id, body.company_id, by_user=p.user_id, now=_now())
    except LicenceRefused as exc:
        raise _refused(exc) from None
    session.commit()
    return _reread(session, p, licence_id)


@router.post(
    "/licences/{licence_id}/unseal",
    response_model=LicenceOut,
    summary="Unseal a licence for the partner itself: the response shows its key (admin or manager of the seller)",
)
def unseal(licence_id: LicenceIdPath, session: SessionDep, p: PrincipalDep) -> LicenceOut:
    visible_licence(session, p, licence_id)
    require(p, Level.PARTNER)
    try:
        book.unseal(session, licence_id, by_user=p.user_id, now=_now())
    except LicenceRefused as exc:
        raise _refused(exc) from None
    session.commit()
    return _reread(session, p, licence_id)


@router.post(
    "/licences/{licence_id}/revoke",
    response_model=LicenceOut,
    summary="Revoke a licence for good; its device drops the lease (admins and managers of the owner or the seller)",
)
def revoke(licence_id: LicenceIdPath, session: SessionDep, p: PrincipalDep, body: RevokeIn | None = None) -> LicenceOut:
    visible_licence(session, p, licence_id)
    require(p, Level.OWNER, Level.PARTNER)
    try:
        book.revoke(session, licence_id, by_user=p.user_id, now=_now(), reason=body.reason if body else None)
    except LicenceRefused as exc:
        raise _refused(exc) from None
    session.commit()
    return _reread(session, p, licence_id)


# ------------------------------------------------------------------------------ companies
@router.get(
    "/companies/{company_id}/licences",
    response_model=list[LicenceOut],
    summary="The licences a company holds, with bound device, state, epoch and lease expiry",
)
def company_licences(
    company_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[LicenceOut]:
    company = access.company_data(session, p, company_id)
    rows = session.scalars(
        select(Licence)
        .where(Licence.company_id == company.id)
        .order_by(Licence.created_at, Licence.id)
        .limit(limit)
        .offset(offset)
    )
    return [licence_out(p, licence) for licence in rows]


@router.post(
    "/licences/{licence_id}/move",
    response_model=LicenceOut,
    responses=_UNAVAILABLE,
    summary="Move a bound licence to another device of its company (admins and managers of the holder or "
    "the seller): the old device is told to release it first",
)
def move(licence_id: LicenceIdPath, body: MoveIn, request: Request, session: SessionDep, actor: ActorDep) -> LicenceOut:
    company_desk.move_licence(session, actor, licence_id, body.device_id, now=_now(), policy=policy_of(request))
    session.commit()
    return _reread(session, actor.principal, licence_id)


@router.post(
    "/licences/{licence_id}/release-to-partner",
    response_model=LicenceOut,
    summary="Give a licence back to the partner's stock (admin or manager of the holder): a free one at once, "
    "a bound one once its device has let go (release order, receipt or lease expiry + margin)",
)
def release_to_partner(licence_id: LicenceIdPath, request: Request, session: SessionDep, actor: ActorDep) -> LicenceOut:
    company_desk.release_licence(session, actor, licence_id, now=_now(), policy=policy_of(request))
    session.commit()
    return _reread(session, actor.principal, licence_id)


# ------------------------------------------------------------------------------ reading
@router.get("/licences/{licence_id}", response_model=LicenceOut, summary="One licence")
def get_licence(licence_id: LicenceIdPath, session: SessionDep, p: PrincipalDep) -> LicenceOut:
    return licence_out(p, visible_licence(session, p, licence_id))


@router.get(
    "/licences/{licence_id}/events",
    response_model=list[LicenceEventOut],
    summary="A licence's audit trail, oldest first: every transition for its partner and the owner; for a company, "
    "those while it held the licence",
)
def licence_events(licence_id: LicenceIdPath, session: SessionDep, p: PrincipalDep) -> list[LicenceEventOut]:
    licence = visible_licence(session, p, licence_id)
    return [
        LicenceEventOut(
            at=event.at,
            actor=event.actor,
            action=event.action,
            from_state=event.from_state,
            to_state=event.to_state,
            from_device_id=event.from_device_id,
            to_device_id=event.to_device_id,
            epoch=event.epoch,
            detail=event.detail,
        )
        for event in book.licence_events(
            session, licence.id, company_id=p.company_id if p.level == Level.COMPANY else None
        )
    ]


# ------------------------------------------------------------------------------ offline release
def _device_for_upload(session: Session, p: Principal, device_id: str) -> Device:
    """The device whose receipt is uploaded, if the caller may act for its company: its
    admins and managers, the owner's, or those of a partner linked to the company (the technician)."""
    device = session.get(Device, device_id)
    if device is None:
        raise not_found(f"device {device_id}")
    if p.level == Level.OWNER:
        visible = (
            session.scalar(select(Company.id).where(Company.id == device.company_id, Company.owner_id == p.owner_id))
            is not None
        )
    elif p.level == Level.PARTNER:
        visible = bool(
            session.scalar(
                select(
                    exists().where(
                        PartnerLink.company_id == device.company_id,
                        PartnerLink.partner_id == p.partner_id,
                        PartnerLink.state == LinkState.ACTIVE,
                    )
                )
            )
        )
    else:
        visible = device.company_id == p.company_id
    if not visible:
        raise not_found(f"device {device_id}")
    require(p)
    return device


@router.post(
    "/licences/release-receipts",
    response_model=ReleaseUploadOut,
    responses=_UNAVAILABLE,
    summary="Upload a release file from a device that will not come online again "
    "(admins and managers of the device's company, a linked partner or the owner)",
)
def upload_release(body: ReleaseFileIn, request: Request, session: SessionDep, p: PrincipalDep) -> ReleaseUploadOut:
    device = _device_for_upload(session, p, body.device_id)
    try:
        accepted = accept_release(
            session,
            device.device_id,
            body.licence_id,
            body.epoch,
            body.receipt,
            _now(),
            policy_of(request),
            actor=user_actor(p.user_id),
        )
    except LicenceRefused as exc:
        if exc.code == "licence.unknown":
            raise not_found(f"licence {body.licence_id}") from None
        raise _refused(exc) from None
    session.commit()
    licence = session.get(Licence, body.licence_id, populate_existing=True)
    assert licence is not None
    return ReleaseUploadOut(accepted=accepted, licence=licence_out(p, licence))
