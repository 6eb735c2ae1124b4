"""Requests and results of the sales component (what the POS API sends and gets back).

Money is integer minor units everywhere. The request models check types only (strict
integers, no floats); the values (quantities, prices, payments covering the total, ...) are
checked by ``agent.sales.compute`` so that every refusal carries a stable code. Parse a
JSON body with ``parse(SaleRequest, data)``: malformed input becomes ``SalesRefused``
with code ``sale.invalid_request`` (or ``refund.invalid_request``), never a crash.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, model_validator

from agent.refusal import Refused
from broker.contract.sales import PaymentMethod, RefundScope

__all__ = [
    "DrawerOutcome",
    "DrawerResult",
    "PaymentIn",
    "PaymentMethod",
    "PrintResult",
    "RefundLineIn",
    "RefundRequest",
    "RefundResult",
    "RefundScope",
    "ReportResult",
    "SaleLineIn",
    "SaleRequest",
    "SaleResult",
    "SalesRefused",
    "WholeBody",
    "parse",
]

RequestId = StrictStr


_SURROGATE = re.compile("[\ud800-\udfff]")


def refuse_lone_surrogates(data: Any) -> Any:
    """JSON may escape half of a UTF-16 pair ("\\ud800"): text that no store, printer or
    message can hold. Refused as invalid input (a ValueError, so pydantic reports it)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValueError("text holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return data


class WholeBody(BaseModel):
    """A whole request body (here and the POS API's own): checked for lone surrogates once, at
    the top, not again per nested line."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return refuse_lone_surrogates(data)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(WholeBody, _In):
    pass


class SaleLineIn(_In):
    sku: StrictStr
    name: StrictStr
    qty_milli: StrictInt  # 1000 = one piece; 250 = 0.25 kg
    unit_price: StrictInt  # minor units, as shown on the shelf (gross when tax_included)
    tax_rate_bp: StrictInt  # 1900 = 19 %
    discount: StrictInt = 0  # minor units off this line


class PaymentIn(_In):
    method: PaymentMethod
    amount: StrictInt  # tendered (cash may exceed the total: change is given)
    reference: StrictStr | None = None  # card authorisation code, voucher number


class SaleRequest(_Request):
    request_id: RequestId = Field(min_length=1, max_length=64)  # the client's idempotency key
    currency: StrictStr
    tax_included: StrictBool = True
    lines: list[SaleLineIn]
    discount: StrictInt = 0  # receipt-level, minor units, spread over the lines
    payments: list[PaymentIn]
    print_receipt: StrictBool = True


class RefundLineIn(_In):
    line_index: StrictInt  # index into the sale's lines
    qty_milli: StrictInt


class RefundRequest(_Request):
    request_id: RequestId = Field(min_length=1, max_length=64)
    sale_id: StrictStr
    scope: RefundScope = RefundScope.WHOLE
    lines: list[RefundLineIn] = Field(default_factory=list)
    # How the money goes back; None: the sale's methods, cash first.
    payments: list[PaymentIn] | None = None
    reason: StrictStr = Field(min_length=1, max_length=500)
    print_receipt: StrictBool = True


class DrawerOutcome(StrEnum):
    NOT_NEEDED = "not_needed"  # no cash involved
    OPENED = "opened"
    FAILED = "failed"  # the sale stands; `drawer_error` says why
    NO_DRAWER = "no_drawer"  # none configured


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SaleResult(_Out):
    sale_id: str  # UUIDv7
    request_id: str
    receipt_no: int
    created_at: float  # unix seconds
    currency: str
    tax_included: bool
    total: int
    tax_total: int
    discount_total: int
    paid: int
    change: int
    sale: dict[str, Any]  # the kc.Sale body as sent to the cloud (lines with spread discounts, taxes)
    print_job_id: str | None
    drawer: DrawerOutcome
    drawer_error: str | None = None
    replayed: bool = False  # True: this request_id was committed before; nothing was sold again


class RefundResult(_Out):
    refund_id: str
    request_id: str
    sale_id: str
    receipt_no: int
    created_at: float
    currency: str
    amount: int
    refund: dict[str, Any]  # the kc.Refund body
    remaining: int  # what may still be refunded of the sale
    print_job_id: str | None
    drawer: DrawerOutcome
    drawer_error: str | None = None
    replayed: bool = False


class DrawerResult(_Out):
    drawer: str
    state: str


class PrintResult(_Out):
    job_id: str
    printer: str


class ReportResult(_Out):
    kind: str  # "x" or "z"
    z_no: int | None  # the Z number (None for X)
    report_id: str | None
    currency: str
    opened_at: float
    closed_at: float | None
    first_receipt_no: int | None
    last_receipt_no: int | None
    sales_count: int
    refunds_count: int
    sales_total: int
    refunds_total: int
    tax_total: int
    payments: list[dict[str, Any]]  # {method, taken, paid_out}
    taxes: list[dict[str, Any]]  # {rate_bp, base, tax}
    print_job_id: str | None = None


class SalesRefused(Refused):
    """A refused sales action: stable ``code`` (agent/refusal.py maps it to an HTTP status), a
    message for the cashier, and optional ``details`` (e.g. the amount missing). Gate refusals
    keep their code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(code, message, **details)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """``model`` from JSON-like data; SalesRefused ``<sale|refund>.invalid_request`` otherwise."""
    family = "refund" if model is RefundRequest else "sale"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise SalesRefused(f"{family}.invalid_request", f"the request is malformed: {problems}") from None
