"""The company's points of sale: the list, adding one, its page (devices and cashiers there),
renaming or recoding it, archiving and restoring it.

The rules live in cloud_api/tenancy/points_of_sale.py (the JSON API calls the same functions);
these pages only show and ask.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import func, or_, select
from starlette.responses import Response

from cloud_api.api.schemas import MAX_ID, PointOfSaleIn
from cloud_api.cashiers.models import Cashier, CashierDetailsSet
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access, points_of_sale
from cloud_api.tenancy.models import Company, Device, PointOfSale
from cloud_api.web.context import CompanyDep, FormDep, Member, now
from cloud_api.web.forms import refusal_errors, translate, validate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
LIST = "/company/points-of-sale"
SHOWN = {"active": N_("In use"), "archived": N_("Archived"), "all": N_("All")}
PAIRING_LABELS = {"paired": N_("paired"), "waiting": N_("waiting for pairing"), "unpaired": N_("not paired")}


def _company(m: Member) -> Company:
    assert m.membership is not None
    return access.company_data(m.db, m.principal, m.membership.org_id)


def _pos(m: Member, pos_id: int) -> tuple[Company, PointOfSale]:
    company = _company(m)
    return company, access.visible_point_of_sale(m.db, company, pos_id)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def pairing_state(device: Device) -> str:
    if device.public_key is not None:
        return "paired"
    return "waiting" if device.pairing_code is not None else "unpaired"


# ------------------------------------------------------------------------------ the list
@router.get(LIST)
def points_of_sale_page(m: CompanyDep) -> Response:
    company = _company(m)
    args = m.request.query_params
    shown = args.get("state", "active")
    shown = shown if shown in SHOWN else "active"
    search = args.get("q", "").strip()[:100]
    query = select(PointOfSale).where(PointOfSale.company_id == company.id)
    if shown == "active":
        query = query.where(PointOfSale.archived_at.is_(None))
    elif shown == "archived":
        query = query.where(PointOfSale.archived_at.is_not(None))
    if search:
        pattern = f"%{_escaped(search)}%"
        query = query.where(
            or_(PointOfSale.name.ilike(pattern, escape="\\"), PointOfSale.code.ilike(pattern, escape="\\"))
        )
    listing = page_of(
        m.db,
        m.request,
        query,
        sorts={"name": PointOfSale.name, "code": PointOfSale.code, "created": PointOfSale.created_at},
        default_sort="name",
        lang=m.lang,
        keep=("q", "state"),
    )
    ids = [pos.id for pos in listing.rows]
    devices: dict[int | None, int] = dict(
        m.db.execute(
            select(Device.point_of_sale_id, func.count())
            .where(Device.point_of_sale_id.in_(ids))
            .group_by(Device.point_of_sale_id)
        ).all()
    )
    cashiers: dict[int, int] = dict(
        m.db.execute(
            select(CashierDetailsSet.point_of_sale_id, func.count())
            .join(Cashier, Cashier.id == CashierDetailsSet.cashier_id)
            .where(CashierDetailsSet.point_of_sale_id.in_(ids), Cashier.deleted_at.is_(None))
            .group_by(CashierDetailsSet.point_of_sale_id)
        ).all()
    )
    total = m.db.scalar(select(func.count()).select_from(PointOfSale).where(PointOfSale.company_id == company.id)) or 0
    return page(
        m,
        "company/points_of_sale.html",
        m.lang.gettext("Points of sale"),
        listing=listing,
        devices=devices,
        cashiers=cashiers,
        total=total,
        shown=shown,
        shown_labels=SHOWN,
        q=search,
    )


# ------------------------------------------------------------------------------ add, edit
def _form_page(
    m: Member,
    pos: PointOfSale | None,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    _ = m.lang.gettext
    usage = points_of_sale.usage(m.db, pos.id) if pos is not None else None
    title = _("Add a point of sale") if pos is None else _("Edit {name}").format(name=pos.name)
    if values is None:
        values = {"name": pos.name, "code": pos.code} if pos is not None else {}
    return page(
        m,
        "company/point_of_sale_form.html",
        title,
        status=status,
        pos=pos,
        usage=usage,
        errors=errors or {},
        values=values,
    )


def _posted(form: dict[str, Any]) -> dict[str, str]:
    return {"name": str(form.get("name", ""))[:200], "code": str(form.get("code", ""))[:64]}


@router.get(f"{LIST}/new")
def new_page(m: CompanyDep) -> Response:
    m.require_write()
    return _form_page(m, None)


@router.post(f"{LIST}/new")
def create(m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company = _company(m)
    data, errors = validate(PointOfSaleIn, form, m.lang)
    if data is None:
        return _form_page(m, None, status=422, errors=errors, values=_posted(form))
    try:
        pos = points_of_sale.create(m.db, m.actor, company.id, data.name, data.code, now())
    except Refused as refused:
        m.db.rollback()
        return _form_page(m, None, status=refused.status, errors=refusal_errors(refused, m.lang), values=_posted(form))
    m.db.commit()
    notice = m.lang.gettext("The point of sale {name} is added.").format(name=pos.name)
    return redirect(f"{LIST}/{pos.id}", m, notice=notice)


@router.get(f"{LIST}/{{pos_id}}/edit")
def edit_page(pos_id: IdPath, m: CompanyDep) -> Response:
    m.require_write()
    pos = _pos(m, pos_id)[1]
    return _form_page(m, pos)


@router.post(f"{LIST}/{{pos_id}}/edit")
def edit(pos_id: IdPath, m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company, pos = _pos(m, pos_id)
    data, errors = validate(PointOfSaleIn, form, m.lang)
    if data is None:
        return _form_page(m, pos, status=422, errors=errors, values=_posted(form))
    try:
        pos = points_of_sale.edit(m.db, m.actor, company.id, pos.id, data.name, data.code, now())
    except Refused as refused:
        m.db.rollback()
        return _form_page(m, pos, status=refused.status, errors=refusal_errors(refused, m.lang), values=_posted(form))
    m.db.commit()
    notice = m.lang.gettext("The point of sale {name} is saved.").format(name=pos.name)
    return redirect(f"{LIST}/{pos.id}", m, notice=notice)


# ------------------------------------------------------------------------------ one point of sale
def _detail_page(m: Member, pos: PointOfSale, *, status: int = 200, errors: dict[str, str] | None = None) -> Response:
    devices = list(m.db.scalars(points_of_sale.devices_at(pos.id).order_by(Device.device_id)))
    cashiers = m.db.execute(points_of_sale.cashiers_at(pos.id).order_by(Cashier.code)).all()
    return page(
        m,
        "company/point_of_sale.html",
        pos.name,
        status=status,
        pos=pos,
        devices=devices,
        cashiers=cashiers,
        pairing={device.device_id: pairing_state(device) for device in devices},
        pairing_labels=PAIRING_LABELS,
        errors=errors or {},
    )


@router.get(f"{LIST}/{{pos_id}}")
def detail(pos_id: IdPath, m: CompanyDep) -> Response:
    pos = _pos(m, pos_id)[1]
    return _detail_page(m, pos)


# ------------------------------------------------------------------------------ archive, restore
@router.get(f"{LIST}/{{pos_id}}/archive")
def archive_page(pos_id: IdPath, m: CompanyDep) -> Response:
    m.require_write()
    pos = _pos(m, pos_id)[1]
    if pos.archived_at is not None:
        return redirect(f"{LIST}/{pos.id}", m)
    title = m.lang.gettext("Archive {name}?").format(name=pos.name)
    return page(m, "company/point_of_sale_archive.html", title, pos=pos, usage=points_of_sale.usage(m.db, pos.id))


@router.post(f"{LIST}/{{pos_id}}/archive")
def archive(pos_id: IdPath, m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company, pos = _pos(m, pos_id)
    try:
        points_of_sale.archive(m.db, m.actor, company.id, pos.id, now())
    except Refused as refused:
        m.db.rollback()
        return _detail_page(m, pos, status=refused.status, errors={"__all__": translate(refused, m.lang)})
    m.db.commit()
    notice = m.lang.gettext("The point of sale {name} is archived.").format(name=pos.name)
    return redirect(f"{LIST}/{pos.id}", m, notice=notice)


@router.post(f"{LIST}/{{pos_id}}/restore")
def restore(pos_id: IdPath, m: CompanyDep, form: FormDep) -> Response:
    m.require_write()
    company, pos = _pos(m, pos_id)
    points_of_sale.restore(m.db, m.actor, company.id, pos.id, now())
    m.db.commit()
    notice = m.lang.gettext("The point of sale {name} is in use again.").format(name=pos.name)
    return redirect(f"{LIST}/{pos.id}", m, notice=notice)
