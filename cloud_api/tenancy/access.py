"""Tenant scoping: which rows a principal may see and change.

Every read goes through a `*_scope` condition or a `visible_*` lookup; an object outside the
caller's tenant raises `not_found`, never `forbidden`, so ids of other tenants leak nothing.
`forbidden` is only for objects the caller can see but whose role may not change them.

What a caller sees follows its level alone (every grade of a level sees the same):

| object | owner | partner | company |
|---|---|---|---|
| partner | every one of the owner | its own | the owner's partners (directory, to pick one) |
| company | every one of the owner | companies with an active link to it | its own |
| points of sale, devices, sales | every company of the owner | none | its own company's |
| link | every one of the owner | its own | its company's |
| licence | every one of the owner | those it sold | those it holds |
| user | every one of the owner | its partner's | its company's |

What it may change follows its grade: viewers nothing, managers the data of what they see,
admins also people (users) and the tokens of others (`manages_user`).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, select
from sqlalchemy.orm import Session

from cloud_api.api.deps import require
from cloud_api.api.errors import forbidden, not_found
from cloud_api.licences.models import Licence
from cloud_api.tenancy.models import Company, Device, Level, LinkState, Partner, PartnerLink, PointOfSale, Role, User
from cloud_api.tenancy.tokens import Principal


def partner_scope(p: Principal) -> ColumnElement[bool]:
    if p.level == Level.PARTNER:
        return Partner.id == p.partner_id
    return Partner.owner_id == p.owner_id


def company_scope(p: Principal) -> ColumnElement[bool]:
    if p.level == Level.OWNER:
        return Company.owner_id == p.owner_id
    if p.level == Level.PARTNER:
        return exists().where(
            PartnerLink.company_id == Company.id,
            PartnerLink.partner_id == p.partner_id,
            PartnerLink.state == LinkState.ACTIVE,
        )
    return Company.id == p.company_id


def licence_scope(p: Principal) -> ColumnElement[bool]:
    """The owner sees all of its licences, a partner those it sold, a company those it holds."""
    if p.level == Level.OWNER:
        return Licence.owner_id == p.owner_id
    if p.level == Level.PARTNER:
        return Licence.partner_id == p.partner_id
    return Licence.company_id == p.company_id


def company_data_scope(p: Principal, company_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Rows keyed by a company (points of sale, devices, sales): the company's own users and
    the owner. Partners see the company record only."""
    if p.level == Level.OWNER:
        return company_id.in_(select(Company.id).where(Company.owner_id == p.owner_id))
    if p.level == Level.COMPANY:
        return company_id == p.company_id
    return false()


def link_scope(p: Principal) -> ColumnElement[bool]:
    if p.level == Level.OWNER:
        return PartnerLink.company_id.in_(select(Company.id).where(Company.owner_id == p.owner_id))
    if p.level == Level.PARTNER:
        return PartnerLink.partner_id == p.partner_id
    return PartnerLink.company_id == p.company_id


def user_scope(p: Principal) -> ColumnElement[bool]:
    if p.level == Level.OWNER:
        return User.owner_id == p.owner_id
    if p.level == Level.PARTNER:
        return User.partner_id == p.partner_id
    return User.company_id == p.company_id


def visible_partner(session: Session, p: Principal, partner_id: int) -> Partner:
    partner = session.scalar(select(Partner).where(Partner.id == partner_id, partner_scope(p)))
    if partner is None:
        raise not_found(f"partner {partner_id}")
    return partner


def visible_company(session: Session, p: Principal, company_id: int) -> Company:
    company = session.scalar(select(Company).where(Company.id == company_id, company_scope(p)))
    if company is None:
        raise not_found(f"company {company_id}")
    return company


def company_data(session: Session, p: Principal, company_id: int, *, write: bool = False) -> Company:
    """The company whose points of sale / devices / sales are asked for, if the caller may.

    A partner linked to the company sees that it exists (403); anyone else gets 404.
    """
    company = visible_company(session, p, company_id)
    if p.level == Level.PARTNER:
        raise forbidden("partners see their client companies, not their data")
    if write:
        require(p)
    return company


def visible_point_of_sale(session: Session, company: Company, pos_id: int) -> PointOfSale:
    pos = session.scalar(select(PointOfSale).where(PointOfSale.id == pos_id, PointOfSale.company_id == company.id))
    if pos is None:
        raise not_found(f"point of sale {pos_id}")
    return pos


def company_device(session: Session, company: Company, device_id: str) -> Device:
    """The company's device, else 404 (another company's device is not shown)."""
    device = session.scalar(select(Device).where(Device.device_id == device_id, Device.company_id == company.id))
    if device is None:
        raise not_found(f"device {device_id}")
    return device


def visible_link(session: Session, p: Principal, link_id: int) -> PartnerLink:
    link = session.scalar(select(PartnerLink).where(PartnerLink.id == link_id, link_scope(p)))
    if link is None:
        raise not_found(f"link {link_id}")
    return link


def visible_user(session: Session, p: Principal, user_id: int) -> User:
    user = session.scalar(select(User).where(User.id == user_id, user_scope(p)))
    if user is None and user_id == p.user_id:
        user = session.get(User, user_id)
    if user is None:
        raise not_found(f"user {user_id}")
    return user


def manages_user(p: Principal, user: User) -> bool:
    """May `p` issue or revoke tokens of `user` (and create users like it)? Everyone manages
    their own tokens (they carry the user's grade, so a viewer's stay read-only); those of
    others need an admin of the other user's level and tenant, or of the owner."""
    if user.id == p.user_id:
        return True
    if not p.is_admin:
        return False
    if p.level == Level.OWNER:
        return user.owner_id == p.owner_id
    if p.level == Level.PARTNER:
        return Role.level_of(user.role) == Level.PARTNER and user.partner_id == p.partner_id
    return Role.level_of(user.role) == Level.COMPANY and user.company_id == p.company_id
