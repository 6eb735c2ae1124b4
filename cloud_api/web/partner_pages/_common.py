"""What the partner's pages share: the words for a licence's state and a document's kind, and
small lookups (the partner's id, company names for a page of rows)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from sqlalchemy import ColumnElement, select

from cloud_api.api.schemas import MAX_ID
from cloud_api.documents.models import DocumentKind
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.refusals import N_
from cloud_api.tenancy.models import Company
from cloud_api.web.context import Member

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]  # a number the database can hold, else the 422 page
NOT_FOUND = N_("This page does not exist, or it belongs to another organisation.")

# The stock as a partner thinks of it: ASSIGNED splits by whether a company holds the licence.
STATE_LABELS = {
    "sealed": N_("Sealed"),
    "unsealed": N_("Unsealed"),
    "with_company": N_("With company"),
    "bound": N_("Bound"),
    "releasing": N_("Moving/returning"),
    "revoked": N_("Revoked"),
}
STATE_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "sealed": Licence.state == LicenceState.SEALED,
    "unsealed": (Licence.state == LicenceState.ASSIGNED) & Licence.company_id.is_(None),
    "with_company": (Licence.state == LicenceState.ASSIGNED) & Licence.company_id.is_not(None),
    "bound": Licence.state == LicenceState.BOUND,
    "releasing": Licence.state == LicenceState.RELEASING,
    "revoked": Licence.state == LicenceState.REVOKED,
}
KIND_LABELS = {
    DocumentKind.SALE: N_("Purchase from the owner"),
    DocumentKind.MOVE: N_("Move to a company"),
    DocumentKind.UNSEAL: N_("Unsealed for a buyer"),
}


def stock_state(licence: Licence) -> str:
    if licence.state == LicenceState.ASSIGNED:
        return "unsealed" if licence.company_id is None else "with_company"
    return licence.state


def shows_key(licence: Licence) -> bool:
    """The partner's unsealed stock: the only licences whose key the partner may look at again."""
    return licence.state != LicenceState.SEALED and licence.company_id is None


def partner_id_of(member: Member) -> int:
    partner_id = member.principal.partner_id
    assert partner_id is not None
    return partner_id


def like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def company_names(member: Member, company_ids: set[int | None]) -> dict[int, str]:
    wanted = {company_id for company_id in company_ids if company_id is not None}
    if not wanted:
        return {}
    return dict(member.db.execute(select(Company.id, Company.name).where(Company.id.in_(wanted))).all())
