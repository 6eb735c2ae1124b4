"""The company's devices: the live list (presence refreshed by htmx), claiming a terminal by its
pairing code, one device's page and moving it to another point of sale.

The rows come from cloud_api/tenancy/devices.py (the JSON API's GET .../devices reads the same),
the claim is cloud_api/pairing/service.py's (the API's POST .../pairing/claims), the move is
tenancy/devices.move_device (the API's PATCH .../devices/{id}); these pages only show and ask.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path
from sqlalchemy import select
from starlette.responses import Response

from cloud_api.api.errors import ApiError
from cloud_api.api.pairing import ClaimIn
from cloud_api.api.schemas import DEVICE_ID_PATTERN, DeviceOut
from cloud_api.licences.models import Licence
from cloud_api.pairing import service as pairing
from cloud_api.pairing.models import DeviceCertificate
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access, devices
from cloud_api.tenancy.models import Company, Device, PointOfSale
from cloud_api.web.company_pages_licences import STATE_LABELS, company_state
from cloud_api.web.context import CompanyDep, FormDep, Member, now
from cloud_api.web.forms import refusal_errors, validate
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
LIST = "/company/devices"
PRESENCE_LABELS = {"online": N_("Online"), "offline": N_("Offline"), "unknown": N_("Unknown")}
# What the claim's refusals mean for the person at the form, and which field they concern.
CLAIM_REFUSALS = {
    "pairing_code_unknown": ("pairing_code", N_("No terminal waits with this code. Check the code on the terminal.")),
    "already_claimed": (
        "pairing_code",
        N_("This code was already used. The terminal shows a new one if it needs one."),
    ),
    "pairing_code_expired": (
        "pairing_code",
        N_("This code has expired. Restart pairing on the terminal and enter the new code it shows."),
    ),
    "device_paired": ("pairing_code", N_("This terminal already belongs to a company.")),
    "too_many_attempts": (
        "__all__",
        N_("Too many wrong codes in a short time. Check the terminal and try again later."),
    ),
    "pairing_unavailable": ("__all__", N_("Pairing is not available on this cloud yet. Ask the cloud's operator.")),
}


def _company(m: Member) -> Company:
    assert m.membership is not None
    return access.company_data(m.db, m.principal, m.membership.org_id)


def _points_of_sale(m: Member, company: Company, *, in_use: bool = False) -> list[PointOfSale]:
    query = select(PointOfSale).where(PointOfSale.company_id == company.id)
    if in_use:
        query = query.where(PointOfSale.archived_at.is_(None))
    return list(m.db.scalars(query.order_by(PointOfSale.name)))


def _licences(m: Member, company: Company, device_ids: list[str]) -> dict[str, Licence]:
    """The licence each device holds (at most one per device)."""
    if not device_ids:
        return {}
    held = m.db.scalars(select(Licence).where(Licence.company_id == company.id, Licence.device_id.in_(device_ids)))
    return {licence.device_id: licence for licence in held if licence.device_id is not None}


def _table(m: Member) -> dict[str, Any]:
    """The list's rows for the filters in the query string (the page and its live fragment)."""
    company = _company(m)
    args = m.request.query_params
    stores = _points_of_sale(m, company)
    names = {pos.id: pos.name for pos in stores}
    pos_filter = args.get("pos", "")
    pos_id = int(pos_filter) if pos_filter.isdigit() and int(pos_filter) in names else None
    presence = args.get("presence", "")
    presence = presence if presence in PRESENCE_LABELS else ""
    rows = devices.company_devices(m.db, company.id, point_of_sale_id=pos_id, presence=presence or None)
    any_device = (
        bool(rows) or m.db.scalar(select(Device.device_id).where(Device.company_id == company.id).limit(1)) is not None
    )
    return {
        "rows": rows,
        "any_device": any_device,
        "stores": stores,
        "store_names": names,
        "pos_filter": str(pos_id or ""),
        "presence": presence,
        "presence_labels": PRESENCE_LABELS,
        "licences": _licences(m, company, [row.device_id for row in rows]),
        "licence_states": STATE_LABELS,
        "company_state": company_state,
        "filter_query": urlencode({key: value for key, value in (("pos", pos_id), ("presence", presence)) if value}),
    }


@router.get(LIST)
def devices_page(m: CompanyDep) -> Response:
    return page(m, "company/devices.html", m.lang.gettext("Devices"), **_table(m))


@router.get(f"{LIST}/rows")
def device_rows(m: CompanyDep) -> Response:
    """The table body alone: the list page asks for it every few seconds (presence changes)."""
    return page(m, "company/device_rows.html", m.lang.gettext("Devices"), **_table(m))


# ------------------------------------------------------------------------------ claim a terminal
def _claim_page(
    m: Member, *, status: int = 200, errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> Response:
    stores = _points_of_sale(m, _company(m), in_use=True)
    return page(
        m,
        "company/device_claim.html",
        m.lang.gettext("Claim a terminal"),
        status=status,
        stores=stores,
        pos_choices=[(str(pos.id), pos.name) for pos in stores],
        errors=errors or {},
        values=values or {},
    )


@router.get(f"{LIST}/claim")
def claim_page(m: CompanyDep) -> Response:
    m.require_write()
    return _claim_page(m)


@router.post(f"{LIST}/claim")
def claim(m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company = _company(m)
    values = {
        "pairing_code": str(form.get("pairing_code", ""))[:40],
        "point_of_sale_id": str(form.get("point_of_sale_id", ""))[:20],
    }
    data, errors = validate(ClaimIn, form, m.lang)
    if data is None:
        return _claim_page(m, status=422, errors=errors, values=values)
    pos = access.visible_point_of_sale(m.db, company, data.point_of_sale_id)
    if pos.archived_at is not None:
        message = m.lang.gettext("The point of sale {name} is archived: choose one in use.").format(name=pos.name)
        return _claim_page(m, status=422, errors={"point_of_sale_id": message}, values=values)
    settings = m.request.app.state.settings
    try:
        registration = pairing.claim(m.db, settings, m.principal, company, pos, data.pairing_code, now())
    except ApiError as refused:
        m.db.rollback()
        field, message = CLAIM_REFUSALS.get(refused.code, ("__all__", N_("The terminal could not be claimed.")))
        return _claim_page(m, status=refused.status, errors={field: m.lang.gettext(message)}, values=values)
    notice = m.lang.gettext("Terminal {device} is claimed into {name}. It connects within a minute.").format(
        device=registration.device_id, name=pos.name
    )
    return redirect(f"{LIST}/{registration.device_id}", m, notice=notice)


# ------------------------------------------------------------------------------ one device
def _device(m: Member, device_id: str) -> tuple[Company, DeviceOut]:
    company = _company(m)
    access.company_device(m.db, company, device_id)  # another company's device: 404
    return company, devices.company_devices(m.db, company.id, device_id=device_id)[0]


@router.get(f"{LIST}/{{device_id}}")
def device_page(device_id: DeviceIdPath, m: CompanyDep) -> Response:
    company, device = _device(m, device_id)
    pos = m.db.get(PointOfSale, device.point_of_sale_id) if device.point_of_sale_id is not None else None
    certificate = m.db.scalar(
        select(DeviceCertificate)
        .where(DeviceCertificate.device_id == device.device_id)
        .order_by(DeviceCertificate.issued_at.desc())
        .limit(1)
    )
    licence = _licences(m, company, [device.device_id]).get(device.device_id)
    return page(
        m,
        "company/device.html",
        m.lang.gettext("Device {device}").format(device=device.device_id),
        device=device,
        pos=pos,
        certificate=certificate,
        licence=licence,
        licence_state=company_state(licence) if licence is not None else None,
        licence_states=STATE_LABELS,
        presence_labels=PRESENCE_LABELS,
    )


def _move_page(
    m: Member, company: Company, device: DeviceOut, *, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    stores = _points_of_sale(m, company, in_use=True)
    return page(
        m,
        "company/device_move.html",
        m.lang.gettext("Move {device} to another point of sale").format(device=device.device_id),
        status=status,
        device=device,
        stores=stores,
        pos_choices=[(str(pos.id), pos.name) for pos in stores],
        errors=errors or {},
    )


@router.get(f"{LIST}/{{device_id}}/move")
def move_page(device_id: DeviceIdPath, m: CompanyDep) -> Response:
    m.require_write()
    company, device = _device(m, device_id)
    return _move_page(m, company, device)


@router.post(f"{LIST}/{{device_id}}/move")
def move(device_id: DeviceIdPath, m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company, device = _device(m, device_id)
    chosen = str(form.get("point_of_sale_id", ""))
    if not chosen.isdigit() or not 1 <= int(chosen) <= 2**31 - 1:
        errors = {"point_of_sale_id": m.lang.gettext("Choose one of the company's points of sale.")}
        return _move_page(m, company, device, status=422, errors=errors)
    try:
        moved = devices.move_device(m.db, m.actor, company.id, device.device_id, int(chosen), now())
    except Refused as refused:
        m.db.rollback()
        return _move_page(m, company, device, status=refused.status, errors=refusal_errors(refused, m.lang))
    m.db.commit()
    pos = m.db.get_one(PointOfSale, moved.point_of_sale_id)
    notice = m.lang.gettext("Device {device} now serves {name}.").format(device=moved.device_id, name=pos.name)
    return redirect(f"{LIST}/{moved.device_id}", m, notice=notice)
