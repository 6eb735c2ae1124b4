"""Request and response bodies of the licence endpoints (api/licences.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud_api.api.schemas import DEVICE_ID_PATTERN, MAX_ID, Utc

LicenceStateName = Literal["sealed", "assigned", "bound", "releasing", "revoked"]
LICENCE_ID_PATTERN = r"^lic_[0-9a-f]{20}$"


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(1, ge=1, le=1000, description="how many sealed licences to issue")
    entitlements: dict[str, Any] = Field(default_factory=dict, description="copied into every lease token")
    valid_until: datetime = Field(description="the licence's own expiry (with a time zone); no lease outlives it")


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_id: int = Field(ge=1, le=MAX_ID, description="a company with an active link to the seller")


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: Annotated[
        str, Field(pattern=DEVICE_ID_PATTERN, max_length=64, description="another device of the licence's company")
    ]


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=300, description="kept in the audit trail")


class ReleasingOut(BaseModel):
    from_device_id: str
    from_epoch: int
    to_device_id: str | None = Field(
        description="the new device; null: back to the partner's stock (the holder released it)"
    )
    deadline: Utc = Field(
        description="granted to the new device (or returned to the stock) at the latest then, receipt or not"
    )


class LicenceOut(BaseModel):
    id: str
    state: LicenceStateName
    partner_id: int = Field(description="the seller")
    company_id: int | None = Field(description="the holder company (null: still the partner's)")
    key: str | None = Field(description="the licence key (XXXX-XXXX-XXXX-XXXX), only for whoever holds it")
    entitlements: dict[str, Any]
    valid_until: Utc
    device_id: str | None = Field(description="the bound device (while releasing: the old one)")
    epoch: int = Field(description="raised on every binding; 0 before the first")
    lease_expires_at: Utc | None = Field(
        description="expiry of the newest lease of the bound device (while releasing: of the old device)"
    )
    releasing: ReleasingOut | None
    created_at: Utc
    updated_at: Utc


class LicenceEventOut(BaseModel):
    at: Utc
    actor: str = Field(description='"user:<id>", "device:<id>" or "system"')
    action: str
    from_state: LicenceStateName | None
    to_state: LicenceStateName
    from_device_id: str | None
    to_device_id: str | None
    epoch: int
    detail: str | None


class ReleaseFileIn(BaseModel):
    """The offline release file a device shows or writes (broker.contract.licence.ReleaseFile)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["kassa.licence-release.v1"] = "kassa.licence-release.v1"
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN, max_length=64)]
    licence_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
    epoch: int = Field(ge=1, le=2**31 - 1)
    receipt: Annotated[str, Field(max_length=8192, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]


class ReleaseUploadOut(BaseModel):
    accepted: bool = Field(description="true: the receipt moved the licence on; false: nothing was left to do")
    licence: LicenceOut
