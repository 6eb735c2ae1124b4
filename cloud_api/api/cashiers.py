"""Cashier endpoints: the company's cashier book, PINs, allowed devices, details, the login
audit, and the roster a device gets.

Managers and admins of the company (and of the owner) change, viewers read, other tenants get
404. The rules live in cloud_api/cashiers/service.py; every change there publishes new rosters.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.roster import check_pin_format, hash_pin
from cloud_api.api.cashier_schemas import (
    CashierEventOut,
    CashierEventsPage,
    CashierIn,
    CashierOut,
    CashierPatch,
    DetailsIn,
    DetailsOut,
    DevicesIn,
    PinIn,
    RosterCashierOut,
    RosterDetailsOut,
    RosterOut,
)
from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, ApiError
from cloud_api.api.schemas import DEVICE_ID_PATTERN, MAX_ID
from cloud_api.cashiers import codes, service
from cloud_api.cashiers.models import Cashier, CashierDetailsSet, CashierDevice
from cloud_api.cashiers.roster import build_rosters
from cloud_api.ingest.models import DeviceEvent
from cloud_api.pushes.models import DesiredState
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Device, PointOfSale

log = logging.getLogger(__name__)
router = APIRouter(tags=["cashiers"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
CASHIERS = "/companies/{company_id}/cashiers"
CASHIER = CASHIERS + "/{cashier_id}"
NO_CONTENT: dict[str, Any] = {"status_code": 204, "response_class": Response}


# ------------------------------------------------------------------------------ helpers
def _outs(session: Session, cashiers: list[Cashier]) -> list[CashierOut]:
    """The API view of `cashiers`, with their devices and details in two queries."""
    ids = [cashier.id for cashier in cashiers]
    devices: dict[int, list[str]] = defaultdict(list)
    details: dict[int, list[DetailsOut]] = defaultdict(list)
    if ids:
        for cashier_id, device_id in session.execute(
            select(CashierDevice.cashier_id, CashierDevice.device_id)
            .where(CashierDevice.cashier_id.in_(ids))
            .order_by(CashierDevice.device_id)
        ):
            devices[cashier_id].append(device_id)
        own = {cashier.id: cashier.operator_code for cashier in cashiers}
        for row, pos_code in session.execute(
            select(CashierDetailsSet, PointOfSale.code)
            .join(PointOfSale, PointOfSale.id == CashierDetailsSet.point_of_sale_id)
            .where(CashierDetailsSet.cashier_id.in_(ids))
            .order_by(PointOfSale.code)
        ):
            details[row.cashier_id].append(
                DetailsOut(
                    point_of_sale_id=row.point_of_sale_id,
                    point_of_sale_code=pos_code,
                    terminal_id=row.terminal_id,
                    operator_code=row.operator_code or own[row.cashier_id],
                    own_operator_code=row.operator_code is None,
                    session_label=row.session_label,
                )
            )
    return [
        CashierOut(
            id=c.id,
            company_id=c.company_id,
            code=c.code,
            name=c.name,
            operator_code=c.operator_code,
            roles=list(c.roles),
            enabled=c.enabled,
            pin_set=c.pin_hash is not None,
            pin_set_at=c.pin_set_at,
            devices="all" if c.all_devices else devices[c.id],
            details=details[c.id],
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
        for c in cashiers
    ]


def _out(session: Session, cashier: Cashier) -> CashierOut:
    return _outs(session, [cashier])[0]


def _pin_hash(session: Session, pin: str) -> str:
    """The hash of a well-formed PIN, made outside any transaction (about 130 ms of CPU)."""
    try:
        check_pin_format(pin)
    except ValueError:
        raise ApiError(422, "cashier.pin_format", "a PIN is 4 to 12 digits (0-9)") from None
    session.rollback()  # ends the read transaction of the checks before the slow hash
    return hash_pin(pin)


# ------------------------------------------------------------------------------ the book
@router.post(
    CASHIERS,
    status_code=201,
    response_model=CashierOut,
    summary="Create a cashier (company/owner managers, admins); pushed to the devices it may use",
)
def create_cashier(company_id: IdPath, body: CashierIn, session: SessionDep, p: PrincipalDep) -> CashierOut:
    company = access.company_data(session, p, company_id, write=True)
    codes.check_operator_code(body.operator_code)  # a cheap refusal before the slow hash
    pin_hash = _pin_hash(session, body.pin) if body.pin is not None else None
    new = service.NewCashier(
        name=body.name,
        operator_code=body.operator_code,
        code=body.code,
        roles=[role.value for role in body.roles],
        enabled=body.enabled,
        devices=body.devices,
        pin_hash=pin_hash,
    )
    cashier = service.create_cashier(session, company.id, new, by_user=p.user_id)
    log.info("cashier %s (%s) created in company %s by user %s", cashier.id, cashier.code, company.id, p.user_id)
    return _out(session, cashier)


@router.get(CASHIERS, response_model=list[CashierOut], summary="A company's cashiers (deleted ones are not listed)")
def list_cashiers(company_id: IdPath, session: SessionDep, p: PrincipalDep) -> list[CashierOut]:
    company = access.company_data(session, p, company_id)
    return _outs(session, service.list_cashiers(session, company.id))


@router.get(CASHIER, response_model=CashierOut, summary="One cashier")
def get_cashier(company_id: IdPath, cashier_id: IdPath, session: SessionDep, p: PrincipalDep) -> CashierOut:
    company = access.company_data(session, p, company_id)
    return _out(session, service.get_cashier(session, company.id, cashier_id))


@router.patch(
    CASHIER,
    response_model=CashierOut,
    summary="Change a cashier's name, operator code, roles or enabled flag (company/owner managers, admins)",
)
def patch_cashier(
    company_id: IdPath, cashier_id: IdPath, body: CashierPatch, session: SessionDep, p: PrincipalDep
) -> CashierOut:
    company = access.company_data(session, p, company_id, write=True)
    changes = service.CashierChanges(
        name=body.name,
        operator_code=body.operator_code,
        enabled=body.enabled,
        roles=[role.value for role in body.roles] if body.roles is not None else None,
    )
    return _out(session, service.update_cashier(session, company.id, cashier_id, changes, by_user=p.user_id))


@router.delete(
    CASHIER, **NO_CONTENT, summary="Delete a cashier: it leaves every roster; its codes are never given out again"
)
def delete_cashier(company_id: IdPath, cashier_id: IdPath, session: SessionDep, p: PrincipalDep) -> Response:
    company = access.company_data(session, p, company_id, write=True)
    service.delete_cashier(session, company.id, cashier_id, by_user=p.user_id)
    log.info("cashier %s deleted in company %s by user %s", cashier_id, company.id, p.user_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ PIN, devices, details
@router.put(
    f"{CASHIER}/pin",
    **NO_CONTENT,
    summary="Set or reset a cashier's PIN (company/owner managers, admins); only its hash is kept and pushed",
)
def set_pin(company_id: IdPath, cashier_id: IdPath, body: PinIn, session: SessionDep, p: PrincipalDep) -> Response:
    company = access.company_data(session, p, company_id, write=True)
    service.get_cashier(session, company.id, cashier_id)  # 404 before spending the hash
    pin_hash = _pin_hash(session, body.pin)
    service.set_pin_hash(session, company.id, cashier_id, pin_hash, by_user=p.user_id)
    log.info("PIN of cashier %s set by user %s", cashier_id, p.user_id)
    return Response(status_code=204)


@router.delete(f"{CASHIER}/pin", **NO_CONTENT, summary="Clear a cashier's PIN: it cannot log in until a new one is set")
def clear_pin(company_id: IdPath, cashier_id: IdPath, session: SessionDep, p: PrincipalDep) -> Response:
    company = access.company_data(session, p, company_id, write=True)
    service.set_pin_hash(session, company.id, cashier_id, None, by_user=p.user_id)
    log.info("PIN of cashier %s cleared by user %s", cashier_id, p.user_id)
    return Response(status_code=204)


@router.put(
    f"{CASHIER}/devices",
    response_model=CashierOut,
    summary='The devices a cashier may use: a list of device ids or "all" (company/owner managers, admins)',
)
def set_devices(
    company_id: IdPath, cashier_id: IdPath, body: DevicesIn, session: SessionDep, p: PrincipalDep
) -> CashierOut:
    company = access.company_data(session, p, company_id, write=True)
    return _out(session, service.set_devices(session, company.id, cashier_id, body.devices, by_user=p.user_id))


@router.put(
    f"{CASHIER}/details/{{point_of_sale_id}}",
    response_model=CashierOut,
    summary="Set or replace the cashier's details (terminal id, operator code, session label) for a point of sale",
)
def put_details(
    company_id: IdPath,
    cashier_id: IdPath,
    point_of_sale_id: IdPath,
    body: DetailsIn,
    session: SessionDep,
    p: PrincipalDep,
) -> CashierOut:
    company = access.company_data(session, p, company_id, write=True)
    cashier = service.put_details(
        session,
        company.id,
        cashier_id,
        point_of_sale_id,
        body.terminal_id,
        body.operator_code,
        session_label=body.session_label,
        by_user=p.user_id,
    )
    return _out(session, cashier)


@router.delete(
    f"{CASHIER}/details/{{point_of_sale_id}}",
    **NO_CONTENT,
    summary="Remove the cashier's details for a point of sale (its operator code stays the cashier's)",
)
def remove_details(
    company_id: IdPath, cashier_id: IdPath, point_of_sale_id: IdPath, session: SessionDep, p: PrincipalDep
) -> Response:
    company = access.company_data(session, p, company_id, write=True)
    service.remove_details(session, company.id, cashier_id, point_of_sale_id, by_user=p.user_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ audit and rosters
@router.get(
    f"{CASHIER}/events",
    response_model=CashierEventsPage,
    summary="The cashier's events from the company's devices (logins, failed logins, lockouts), newest first",
)
def cashier_events(
    company_id: IdPath,
    cashier_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    kind: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
            description="only this kind, e.g. cashier.login_failed",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CashierEventsPage:
    company = access.company_data(session, p, company_id)
    cashier = service.get_cashier(session, company.id, cashier_id)
    query = select(DeviceEvent).where(
        DeviceEvent.cashier_id == cashier.code,
        DeviceEvent.device_id.in_(select(Device.device_id).where(Device.company_id == company.id)),
    )
    if kind is not None:
        query = query.where(DeviceEvent.kind == kind)
    rows = list(
        session.scalars(
            query.order_by(DeviceEvent.occurred_at.desc(), DeviceEvent.message_id.desc())
            .limit(limit + 1)
            .offset(offset)
        )
    )
    items = [
        CashierEventOut(
            message_id=e.message_id,
            device_id=e.device_id,
            kind=e.kind,
            occurred_at=e.occurred_at,
            details=e.details if isinstance(e.details, dict) else {},
        )
        for e in rows[:limit]
    ]
    return CashierEventsPage(items=items, next_offset=offset + limit if len(rows) > limit else None)


@router.get(
    "/companies/{company_id}/devices/{device_id}/roster",
    response_model=RosterOut,
    summary="The cashier roster a device gets (without PIN hashes), with its version",
)
def device_roster(company_id: IdPath, device_id: DeviceIdPath, session: SessionDep, p: PrincipalDep) -> RosterOut:
    company = access.company_data(session, p, company_id)
    device = access.company_device(session, company, device_id)
    row = session.get(DesiredState, (device.device_id, kc.StateDomain.CASHIERS.value))
    doc = row.doc if row is not None else build_rosters(session, company.id, [device.device_id])[device.device_id]
    cashiers = [
        RosterCashierOut(
            cashier_id=c["cashier_id"],
            name=c["name"],
            operator_code=c["operator_code"],
            pin_set=c.get("pin_hash") is not None,
            roles=list(c["roles"]),
            enabled=c["enabled"],
            details=[RosterDetailsOut(**d) for d in c.get("details", [])],
        )
        for c in doc.get("cashiers", [])
    ]
    return RosterOut(
        device_id=device.device_id,
        version=row.version if row else None,
        published_version=row.published_version if row else None,
        updated_at=row.updated_at if row else None,
        cashiers=cashiers,
    )
