"""Fields of the licence documents: the JSON API's bodies and the cabinets' forms are the same models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud_api.api.schemas import MAX_ID, Utc


class SaleIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    partner_id: int = Field(ge=1, le=MAX_ID, description="the partner buying the licences")
    quantity: int = Field(ge=1, le=1000, description="how many sealed licences")
    valid_until: date = Field(description="the licences' own expiry date (end of that day, UTC)")
    note: str | None = Field(None, max_length=500, description="printed on the document")
    entitlements: dict[str, Any] = Field(default_factory=dict, description="copied into every lease token")
    request_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="your id for this request: sending it again returns the same document instead of a second one",
    )


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    company_id: int = Field(ge=1, le=MAX_ID, description="a client company with an active link")
    quantity: int = Field(ge=1, le=1000, description="how many sealed licences of your stock")
    note: str | None = Field(None, max_length=500)
    request_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="your id for this request: sending it again returns the same document instead of a second one",
    )


class UnsealIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    firm_name: str = Field(min_length=1, max_length=200, description="the buyer's firm")
    tax_number: str = Field(min_length=10, max_length=12, pattern=r"^[0-9]+$", description="the buyer's INN")
    buyer_email: str = Field(min_length=3, max_length=254, description="the buyer's e-mail")
    note: str | None = Field(None, max_length=500)
    request_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="your id for this request: sending it again returns the same document instead of a second one",
    )


class DocumentOut(BaseModel):
    id: int
    number: str
    kind: str = Field(description="sale, move or unseal")
    partner_id: int
    company_id: int | None
    quantity: int
    valid_until: Utc | None
    firm_name: str | None
    tax_number: str | None
    buyer_email: str | None
    note: str | None
    request_id: str | None
    created_by: str
    created_at: Utc
    licence_ids: list[str] = Field(default_factory=list)


class UnsealOut(BaseModel):
    document: DocumentOut
    licence_id: str
    key: str = Field(description="the licence key, shown now; later only through POST /licences/{id}/key (audited)")


class KeyOut(BaseModel):
    licence_id: str
    key: str


def end_of_day(day: date) -> datetime:
    from datetime import UTC, time

    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
