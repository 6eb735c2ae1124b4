"""Request and response bodies of the admin API (they make the OpenAPI spec)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# Bounds keep every accepted value storable on both databases (32-bit ids, no NUL bytes,
# which PostgreSQL text cannot hold), so bad input is a 422, never a database error.
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Message = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
# `<level>_<grade>`: cloud_api.tenancy.models.Role.ALL (checked by tests/cloud/test_api_grades.py).
RoleName = Literal[
    "owner_admin",
    "owner_manager",
    "owner_viewer",
    "partner_admin",
    "partner_manager",
    "partner_viewer",
    "company_admin",
    "company_manager",
    "company_viewer",
]
LinkStateName = Literal["pending", "active", "rejected", "withdrawn", "ended"]


def _utc(value: object) -> object:
    # SQLite returns stored timestamps without a zone; every stored timestamp is UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Utc = Annotated[datetime, BeforeValidator(_utc)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class PartnerOut(Out):
    id: int
    name: str
    created_at: Utc


class CompanyOut(Out):
    id: int
    name: str
    created_at: Utc


class PointOfSaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    code: Code = Field(description="The id terminals report as point_of_sale_id in sales.")


class PointOfSaleOut(Out):
    id: int
    company_id: int
    name: str
    code: str
    created_at: Utc
    archived_at: Utc | None = Field(None, description="set while archived; null while in use")


# Which points of sale a list shows: archived ones, the ones in use, or both (the default).
ArchivedFilter = Literal["false", "true", "all"]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: RoleName = Field(description="`<level>_<grade>`: owner, partner or company; admin, manager or viewer")
    partner_id: Id | None = Field(None, description="required for partner roles")
    company_id: Id | None = Field(None, description="required for company roles")


class UserOut(Out):
    id: int
    name: str
    role: RoleName
    owner_id: int
    partner_id: int | None
    company_id: int | None
    created_at: Utc


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Name | None = None


class TokenOut(Out):
    id: int
    user_id: int
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    label: str | None
    created_at: Utc
    last_used_at: Utc | None
    revoked_at: Utc | None


class NewToken(BaseModel):
    token: str = Field(description="Shown this once; only its hash is stored.")
    info: TokenOut


class UserCreated(BaseModel):
    user: UserOut
    token: str = Field(description="The new user's first API token, shown this once.")


class LinkRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partner_id: Id
    message: Message | None = None


class LinkOut(Out):
    id: int
    company_id: int
    partner_id: int
    state: LinkStateName
    message: str | None
    requested_at: Utc
    decided_at: Utc | None
    closed_at: Utc | None


class RejectionOut(Out):
    message_id: uuid.UUID
    seq: int | None = Field(
        description=(
            "The seq the message carried, counted as delivered; null when its envelope held no usable one "
            "(not a version-1 up envelope)."
        )
    )
    type: str | None = Field(
        description=(
            "The message type (for a message refused unread, the one its up topic names); null for a line "
            "of an up/batch of a type the cloud does not know."
        )
    )
    reason: str = Field(
        description=(
            "A rejection reason of the protocol (schema, wrong_device, unknown_type, ...) or a business "
            "reason (sale.receipt_no_reused, ...)."
        )
    )
    detail: str
    received_at: Utc


PresenceName = Literal["online", "offline", "unknown"]


class DeviceOut(Out):
    device_id: str
    company_id: int
    point_of_sale_id: int | None
    paired: bool = Field(description="The device has registered its public key.")
    created_at: Utc
    presence: PresenceName = Field(
        description="From the device's retained status topic: online, offline (its MQTT will "
        "or a clean goodbye), unknown (never connected)."
    )
    last_seen_at: Utc | None = Field(
        description="When the cloud last heard from the device: a status change or an up message. Null if never."
    )
    high_water: int = Field(
        description=(
            "Every up message with a seq up to this one has been delivered: applied, or rejected for good "
            "(0: none yet)."
        )
    )
    max_seq: int = Field(description="The highest seq delivered; above high_water there are gaps.")
    open_gaps: int = Field(description="Runs of seqs skipped and not (yet) received: GET .../gaps lists them.")
    rejected: int = Field(
        description=(
            "Up messages the cloud refused for good (the device set them aside; their seqs count as "
            "delivered): GET .../rejections lists them."
        )
    )
    last_rejection: RejectionOut | None = Field(description="The latest of those; null if none.")


class GapOut(Out):
    first_missing: int
    last_missing: int
    detected_at: Utc
    closed_at: Utc | None = Field(description="When the last missing message arrived; null while open.")


class SaleOut(BaseModel):
    sale_id: uuid.UUID
    device_id: str
    point_of_sale: str = Field(description="point_of_sale_id the terminal reported")
    cashier_id: str
    receipt_number: int
    currency: str
    total_minor: int
    sold_at: Utc
    refunded_minor: int = Field(0, description="sum of the refunds of this sale made on the company's devices")
    refund_count: int = Field(0, description="how many such refunds")


class SalesPage(BaseModel):
    items: list[SaleOut]
    next_offset: int | None = Field(description="offset of the next page; null on the last page")


class SaleLineOut(Out):
    line_index: int = Field(description="0-based position on the receipt; refunds name lines by it")
    sku: str
    name: str
    qty_milli: int = Field(description="quantity in thousandths (1 piece = 1000)")
    unit_price_minor: int
    tax_rate_bp: int = Field(description="tax rate in basis points (7 % = 700)")
    discount_minor: int
    total_minor: int


class PaymentOut(Out):
    method: Literal["cash", "card", "other"]
    amount_minor: int
    reference: str | None


class TaxOut(BaseModel):
    rate_bp: int
    base_minor: int = Field(description="sum of the line totals at this rate")
    tax_minor: int


class RefundLineOut(Out):
    line_index: int = Field(description="the refunded line of the sale")
    qty_milli: int
    amount_minor: int


class RefundOut(Out):
    refund_id: uuid.UUID
    device_id: str = Field(description="the device the refund was made on")
    scope: Literal["whole", "lines"]
    cashier_id: str
    till_session_id: uuid.UUID
    reason: str
    currency: str
    amount_minor: int
    refunded_at: Utc
    lines: list[RefundLineOut]
    payments: list[PaymentOut]


class SaleDetail(SaleOut):
    till_session_id: uuid.UUID
    tax_included: bool = Field(description="prices and line totals include tax")
    tax_total_minor: int
    change_minor: int
    lines: list[SaleLineOut]
    taxes: list[TaxOut]
    payments: list[PaymentOut]
    refunds: list[RefundOut] = Field(description="refunds of this sale reported by the company's devices, oldest first")
    refunded_minor: int = Field(description="sum of the refunds' amounts")
