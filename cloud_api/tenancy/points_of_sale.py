"""Points of sale, the rules: a company's admins and managers (or the owner's) create, rename,
recode, archive and restore them. The JSON API (api/tenancy.py) and the company cabinet
(web/company_pages_pos.py) call these functions; each change writes an audit row in the
company's audit (and the owner's, when the owner acts), and none commits.

The code is what terminals report as their point of sale and what cashier details are keyed
by on the devices, so it only changes while no device and no cashier depends on it. A point of
sale is never deleted (sales point at it): archiving hides it from daily use and needs its
devices moved elsewhere first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud_api.accounts import audit
from cloud_api.accounts.audit import Actor
from cloud_api.cashiers.models import Cashier, CashierDetailsSet
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Company, Device, Grade, Level, PointOfSale, Role


@dataclass(frozen=True)
class Usage:
    """What depends on a point of sale's code."""

    devices: int
    cashiers: int

    @property
    def any(self) -> bool:
        return bool(self.devices or self.cashiers)


def devices_at(pos_id: int) -> Select[Device]:
    return select(Device).where(Device.point_of_sale_id == pos_id)


def cashiers_at(pos_id: int) -> Select[CashierDetailsSet, Cashier]:
    """(details set, cashier) of the cashiers (not deleted) with details at the point of sale."""
    return (
        select(CashierDetailsSet, Cashier)
        .join(Cashier, Cashier.id == CashierDetailsSet.cashier_id)
        .where(CashierDetailsSet.point_of_sale_id == pos_id, Cashier.deleted_at.is_(None))
    )


def usage(session: Session, pos_id: int) -> Usage:
    devices = session.scalar(select(func.count()).select_from(devices_at(pos_id).subquery())) or 0
    cashiers = session.scalar(select(func.count()).select_from(cashiers_at(pos_id).subquery())) or 0
    return Usage(devices, cashiers)


def company_for_change(session: Session, actor: Actor, company_id: int) -> Company:
    """The company, if the actor sees its data (else 404, or 403 for its partner) and may change it."""
    company = access.company_data(session, actor.principal, company_id)
    role = actor.principal.role
    if Role.level_of(role) not in (Level.OWNER, Level.COMPANY) or not Grade.at_least(
        Role.grade_of(role), Grade.MANAGER
    ):
        raise Refused(
            "forbidden", N_("Your role is read-only: ask an admin or manager of your organisation."), kind="forbidden"
        )
    return company


def _audit(session: Session, actor: Actor, company: Company, action: str, pos: PointOfSale, now: datetime) -> None:
    detail = f"{pos.code} {pos.name}"
    target = f"point of sale {pos.id}"
    audit.record(session, actor, action, target=target, detail=detail, org=("company", company.id), now=now)
    if actor.org != ("company", company.id):
        audit.record(session, actor, action, target=target, detail=detail, now=now)


def _code_free(session: Session, company: Company, code: str, but: int | None = None) -> None:
    query = select(PointOfSale).where(PointOfSale.company_id == company.id, PointOfSale.code == code)
    if but is not None:
        query = query.where(PointOfSale.id != but)
    taken = session.scalar(query)
    if taken is not None:
        raise Refused(
            "code_taken",
            N_("The point of sale “{name}” already has this code. Choose another code."),
            field="code",
            name=taken.name,
        )


def create(session: Session, actor: Actor, company_id: int, name: str, code: str, now: datetime) -> PointOfSale:
    company = company_for_change(session, actor, company_id)
    _code_free(session, company, code)
    pos = PointOfSale(company_id=company.id, name=name, code=code, created_at=now)
    session.add(pos)
    session.flush()
    _audit(session, actor, company, "point_of_sale.created", pos, now)
    return pos


def edit(
    session: Session, actor: Actor, company_id: int, pos_id: int, name: str, code: str, now: datetime
) -> PointOfSale:
    company = company_for_change(session, actor, company_id)
    pos = access.visible_point_of_sale(session, company, pos_id)
    if code != pos.code:
        used = usage(session, pos.id)
        if used.any:
            raise Refused(
                "code_in_use",
                N_(
                    "Terminals report this code: {devices} device(s) are assigned here and {cashiers} cashier(s)"
                    " have details here. Move the devices to another point of sale and remove the cashiers'"
                    " details here first, or keep the code."
                ),
                field="code",
                devices=used.devices,
                cashiers=used.cashiers,
            )
        _code_free(session, company, code, but=pos.id)
    if (name, code) == (pos.name, pos.code):
        return pos
    pos.name, pos.code = name, code
    session.flush()
    _audit(session, actor, company, "point_of_sale.edited", pos, now)
    return pos


def archive(session: Session, actor: Actor, company_id: int, pos_id: int, now: datetime) -> PointOfSale:
    """Archives the point of sale; archiving an archived one changes nothing."""
    company = company_for_change(session, actor, company_id)
    pos = access.visible_point_of_sale(session, company, pos_id)
    if pos.archived_at is not None:
        return pos
    devices = usage(session, pos.id).devices
    if devices:
        raise Refused(
            "point_of_sale_in_use",
            N_(
                "{devices} device(s) are assigned to this point of sale."
                " Move its devices to another point of sale first."
            ),
            devices=devices,
        )
    pos.archived_at = now
    session.flush()
    _audit(session, actor, company, "point_of_sale.archived", pos, now)
    return pos


def restore(session: Session, actor: Actor, company_id: int, pos_id: int, now: datetime) -> PointOfSale:
    """Takes the point of sale out of the archive; restoring one in use changes nothing."""
    company = company_for_change(session, actor, company_id)
    pos = access.visible_point_of_sale(session, company, pos_id)
    if pos.archived_at is None:
        return pos
    pos.archived_at = None
    session.flush()
    _audit(session, actor, company, "point_of_sale.restored", pos, now)
    return pos
