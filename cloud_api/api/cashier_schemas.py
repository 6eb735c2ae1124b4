"""Request and response bodies of the cashier endpoints (cloud_api/api/cashiers.py).

Operator codes, PINs, cashier codes and terminal ids arrive as plain bounded strings and are
checked by the service, so a bad one gets its own stable error code
(`cashier.operator_code_format`, `cashier.pin_format`, ...) instead of a generic 422.
Responses never carry a PIN hash: `pin_set` says whether there is one.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from broker.contract.roster import CashierRole
from cloud_api.api.schemas import DEVICE_ID_PATTERN, Name, Utc

DeviceIdText = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN, max_length=64)]
DeviceChoice = Annotated[
    Literal["all"] | list[DeviceIdText],
    Field(
        description='"all" (every device of the company, also those added later) or a list of the company\'s device ids'
    ),
]
OperatorCodeText = Annotated[
    str,
    Field(
        max_length=16,
        description="exactly 4 digits: a new code (never used in "
        "the company) or one that is already this cashier's; a code belongs to "
        "one cashier for ever, also after it is deleted",
    ),
]
SessionLabelText = Annotated[
    str,
    Field(
        max_length=200,
        description="free text naming the airline session or counter, up to 100 characters; blank or omitted: no label",
    ),
]
PinText = Annotated[str, Field(max_length=64, description="4 to 12 digits; stored only as a slow salted hash")]
CodeText = Annotated[str, Field(max_length=64, description="1-64 characters, no spaces")]
Roles = Annotated[
    list[CashierRole],
    Field(
        min_length=1,
        max_length=8,
        description="cashier: sell; refund: refund own till session's sales; "
        "admin: refund any sale; no_sale: open the drawer; void: void lines",
    ),
]


class CashierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: CodeText | None = Field(
        None,
        description="the cashier id typed at login, unique in the company; omitted: the next free C-0001-style code",
    )
    name: Name
    operator_code: OperatorCodeText
    roles: Roles = [CashierRole.CASHIER]
    enabled: bool = True
    devices: DeviceChoice = []
    pin: PinText | None = Field(None, description="optional: set the PIN at once")


class CashierPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    operator_code: OperatorCodeText | None = Field(
        None, description="a new operator code, or one the cashier had before; the old one stays the cashier's"
    )
    roles: Roles | None = None
    enabled: bool | None = Field(None, description="a disabled cashier stays in rosters, marked disabled")


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: PinText


class DevicesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    devices: DeviceChoice


class DetailsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal_id: CodeText
    operator_code: OperatorCodeText | None = Field(
        None, description="omitted: the set carries the cashier's own operator code (also after it changes)"
    )
    session_label: SessionLabelText | None = None


class DetailsOut(BaseModel):
    point_of_sale_id: int
    point_of_sale_code: str
    terminal_id: str
    operator_code: str = Field(description="the operator code sales under this set carry")
    own_operator_code: bool = Field(
        description="true: the set names no code of its own and carries the cashier's operator code"
    )
    session_label: str | None


class CashierOut(BaseModel):
    id: int
    company_id: int
    code: str = Field(description="the cashier id typed at login (cashier_id in sales)")
    name: str
    operator_code: str
    roles: list[str]
    enabled: bool
    pin_set: bool = Field(description="a PIN is set (the cashier can log in)")
    pin_set_at: Utc | None
    devices: Literal["all"] | list[str]
    details: list[DetailsOut]
    created_at: Utc
    updated_at: Utc


class RosterDetailsOut(BaseModel):
    point_of_sale: str
    terminal_id: str
    operator_code: str
    session_label: str | None = None


class RosterCashierOut(BaseModel):
    cashier_id: str
    name: str
    operator_code: str
    pin_set: bool
    roles: list[str]
    enabled: bool
    details: list[RosterDetailsOut]


class RosterOut(BaseModel):
    device_id: str
    version: int | None = Field(
        description="version of the roster document (null: none was made yet; "
        "cashiers then shows what the device would get)"
    )
    published_version: int | None = Field(description="newest version the broker has accepted")
    updated_at: Utc | None
    cashiers: list[RosterCashierOut]


class CashierEventOut(BaseModel):
    message_id: uuid.UUID
    device_id: str
    kind: str = Field(description="cashier.login, cashier.login_failed, cashier.locked, cashier.logout, ...")
    occurred_at: Utc
    details: dict[str, Any]


class CashierEventsPage(BaseModel):
    items: list[CashierEventOut]
    next_offset: int | None = Field(description="offset of the next page; null on the last page")
