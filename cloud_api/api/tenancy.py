"""Partners, companies and their points of sale."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from cloud_api.api.deps import ActorDep, PrincipalDep, SessionDep, require
from cloud_api.api.errors import ERROR_RESPONSES
from cloud_api.api.schemas import MAX_ID, ArchivedFilter, CompanyOut, NameIn, PartnerOut, PointOfSaleIn, PointOfSaleOut
from cloud_api.tenancy import access, points_of_sale
from cloud_api.tenancy.models import Company, Level, Partner, PointOfSale
from cloud_api.tenancy.tokens import utcnow

router = APIRouter(tags=["tenancy"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


# ------------------------------------------------------------------------------ partners
@router.post(
    "/partners", status_code=201, response_model=PartnerOut, summary="Register a partner (owner admin or manager)"
)
def create_partner(body: NameIn, session: SessionDep, p: PrincipalDep) -> Partner:
    require(p, Level.OWNER)
    partner = Partner(owner_id=p.owner_id, name=body.name, created_at=utcnow())
    session.add(partner)
    session.commit()
    return partner


@router.get(
    "/partners",
    response_model=list[PartnerOut],
    summary="Partners: all (owner), your own (partner), the directory to choose from (company)",
)
def list_partners(session: SessionDep, p: PrincipalDep) -> list[Partner]:
    return list(session.scalars(select(Partner).where(access.partner_scope(p)).order_by(Partner.id)))


@router.get("/partners/{partner_id}", response_model=PartnerOut, summary="One partner")
def get_partner(partner_id: IdPath, session: SessionDep, p: PrincipalDep) -> Partner:
    return access.visible_partner(session, p, partner_id)


# ------------------------------------------------------------------------------ companies
@router.post(
    "/companies", status_code=201, response_model=CompanyOut, summary="Register a company (owner admin or manager)"
)
def create_company(body: NameIn, session: SessionDep, p: PrincipalDep) -> Company:
    require(p, Level.OWNER)
    company = Company(owner_id=p.owner_id, name=body.name, created_at=utcnow())
    session.add(company)
    session.commit()
    return company


@router.get(
    "/companies",
    response_model=list[CompanyOut],
    summary="Companies: all (owner), linked clients (partner), your own (company)",
)
def list_companies(session: SessionDep, p: PrincipalDep) -> list[Company]:
    return list(session.scalars(select(Company).where(access.company_scope(p)).order_by(Company.id)))


@router.get("/companies/{company_id}", response_model=CompanyOut, summary="One company")
def get_company(company_id: IdPath, session: SessionDep, p: PrincipalDep) -> Company:
    return access.visible_company(session, p, company_id)


# ------------------------------------------------------------------------------ points of sale
@router.post(
    "/companies/{company_id}/points-of-sale",
    status_code=201,
    response_model=PointOfSaleOut,
    summary="Add a point of sale (store) to a company (admins and managers of the company or the owner)",
)
def create_point_of_sale(company_id: IdPath, body: PointOfSaleIn, session: SessionDep, actor: ActorDep) -> PointOfSale:
    pos = points_of_sale.create(session, actor, company_id, body.name, body.code, utcnow())
    session.commit()
    return pos


@router.get(
    "/companies/{company_id}/points-of-sale",
    response_model=list[PointOfSaleOut],
    summary="A company's points of sale",
    description="`archived=false`: only those in use; `true`: only archived ones; `all` (the default): both.",
)
def list_points_of_sale(
    company_id: IdPath, session: SessionDep, p: PrincipalDep, archived: ArchivedFilter = "all"
) -> list[PointOfSale]:
    company = access.company_data(session, p, company_id)
    query = select(PointOfSale).where(PointOfSale.company_id == company.id)
    if archived == "false":
        query = query.where(PointOfSale.archived_at.is_(None))
    elif archived == "true":
        query = query.where(PointOfSale.archived_at.is_not(None))
    return list(session.scalars(query.order_by(PointOfSale.id)))


@router.patch(
    "/companies/{company_id}/points-of-sale/{pos_id}",
    response_model=PointOfSaleOut,
    summary="Rename a point of sale or change its code (the code only while no device or cashier uses it)",
)
def edit_point_of_sale(
    company_id: IdPath, pos_id: IdPath, body: PointOfSaleIn, session: SessionDep, actor: ActorDep
) -> PointOfSale:
    pos = points_of_sale.edit(session, actor, company_id, pos_id, body.name, body.code, utcnow())
    session.commit()
    return pos


@router.post(
    "/companies/{company_id}/points-of-sale/{pos_id}/archive",
    response_model=PointOfSaleOut,
    summary="Archive a point of sale (once no device is assigned to it; again changes nothing)",
)
def archive_point_of_sale(company_id: IdPath, pos_id: IdPath, session: SessionDep, actor: ActorDep) -> PointOfSale:
    pos = points_of_sale.archive(session, actor, company_id, pos_id, utcnow())
    session.commit()
    return pos


@router.post(
    "/companies/{company_id}/points-of-sale/{pos_id}/restore",
    response_model=PointOfSaleOut,
    summary="Take a point of sale out of the archive",
)
def restore_point_of_sale(company_id: IdPath, pos_id: IdPath, session: SessionDep, actor: ActorDep) -> PointOfSale:
    pos = points_of_sale.restore(session, actor, company_id, pos_id, utcnow())
    session.commit()
    return pos


@router.get(
    "/companies/{company_id}/points-of-sale/{pos_id}", response_model=PointOfSaleOut, summary="One point of sale"
)
def get_point_of_sale(company_id: IdPath, pos_id: IdPath, session: SessionDep, p: PrincipalDep) -> PointOfSale:
    company = access.company_data(session, p, company_id)
    return access.visible_point_of_sale(session, company, pos_id)
