"""Sale and refund bodies (up/sale, up/refund). All money is integer minor units.

Prices are tax-inclusive or tax-exclusive per receipt (`tax_included`). A line's total is its
gross (unit price x quantity, rounded half up to a minor unit) less its discount; receipt-level
discounts are spread over the lines by the sale module before the sale is recorded, so every
amount here can be checked from the lines alone.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StringConstraints, model_validator

from .fields import (
    BasisPoints,
    Code,
    CurrencyCode,
    DeviceId,
    MilliQuantity,
    MinorUnits,
    PositiveMinorUnits,
    Timestamp,
    WireModel,
    text,
)

__all__ = [
    "MAX_LINES",
    "Payment",
    "PaymentMethod",
    "PaymentTotal",
    "Refund",
    "RefundLine",
    "RefundScope",
    "Sale",
    "SaleLine",
    "TaxLine",
    "ZReport",
    "line_gross",
]

MAX_LINES = 500
MAX_PAYMENTS = 20
ItemName = Annotated[str, text(200)]
RefundReason = Annotated[str, text(500)]


def line_gross(unit_price: int, qty_milli: int) -> int:
    """Unit price x quantity in minor units, rounded half up (both operands are >= 0)."""
    return (unit_price * qty_milli + 500) // 1000


class PaymentMethod(StrEnum):
    CASH = "cash"
    CARD = "card"
    OTHER = "other"


class Payment(WireModel):
    method: PaymentMethod
    amount: PositiveMinorUnits
    reference: Code | None = None  # card authorisation code, voucher number, ...


class SaleLine(WireModel):
    sku: Code
    name: ItemName
    qty_milli: MilliQuantity
    unit_price: MinorUnits
    tax_rate_bp: BasisPoints
    discount: MinorUnits = 0
    total: MinorUnits

    @model_validator(mode="after")
    def _total_is_gross_less_discount(self) -> SaleLine:
        gross = line_gross(self.unit_price, self.qty_milli)
        if self.discount > gross:
            raise ValueError(f"discount {self.discount} exceeds the line gross {gross}")
        if self.total != gross - self.discount:
            raise ValueError(f"line total {self.total} != round(unit_price x qty) - discount = {gross - self.discount}")
        return self


class TaxLine(WireModel):
    rate_bp: BasisPoints
    base: MinorUnits  # sum of the line totals at this rate
    tax: MinorUnits


OperatorCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{4}$")]


class Sale(WireModel):
    sale_id: uuid.UUID
    receipt_no: StrictInt = Field(ge=1)
    cashier_id: Code
    point_of_sale_id: Code
    till_session_id: uuid.UUID
    # The cashier's details at this point of sale (terminal id + operator code), when set.
    terminal_id: Code | None = None
    operator_code: OperatorCode | None = None
    currency: CurrencyCode
    tax_included: StrictBool
    lines: list[SaleLine] = Field(min_length=1, max_length=MAX_LINES)
    taxes: list[TaxLine] = Field(max_length=MAX_LINES)
    payments: list[Payment] = Field(max_length=MAX_PAYMENTS)
    total: MinorUnits
    tax_total: MinorUnits
    change: MinorUnits = 0

    @model_validator(mode="after")
    def _amounts_add_up(self) -> Sale:
        _check_taxes(self.lines, self.taxes, self.tax_included)
        lines_total = sum(line.total for line in self.lines)
        tax_total = sum(tax.tax for tax in self.taxes)
        if self.tax_total != tax_total:
            raise ValueError(f"tax_total {self.tax_total} != sum of taxes {tax_total}")
        expected = lines_total if self.tax_included else lines_total + tax_total
        if self.total != expected:
            raise ValueError(f"total {self.total} != {expected} computed from lines and taxes")
        paid = sum(p.amount for p in self.payments)
        if paid - self.change != self.total:
            raise ValueError(f"payments {paid} - change {self.change} != total {self.total}")
        cash = sum(p.amount for p in self.payments if p.method is PaymentMethod.CASH)
        if self.change > cash:
            raise ValueError(f"change {self.change} exceeds the cash tendered {cash}")
        return self


def _check_taxes(lines: list[SaleLine], taxes: list[TaxLine], tax_included: bool) -> None:
    base_by_rate: dict[int, int] = {}
    for line in lines:
        base_by_rate[line.tax_rate_bp] = base_by_rate.get(line.tax_rate_bp, 0) + line.total
    rates = [tax.rate_bp for tax in taxes]
    if len(set(rates)) != len(rates):
        raise ValueError("taxes list a rate more than once")
    if set(rates) != set(base_by_rate):
        raise ValueError(f"taxes cover rates {sorted(rates)} but the lines use {sorted(base_by_rate)}")
    for tax in taxes:
        if tax.base != base_by_rate[tax.rate_bp]:
            raise ValueError(f"tax base {tax.base} at {tax.rate_bp} bp != sum of its lines {base_by_rate[tax.rate_bp]}")
        if tax_included and tax.tax > tax.base:
            raise ValueError(f"included tax {tax.tax} exceeds its base {tax.base}")


class RefundScope(StrEnum):
    WHOLE = "whole"
    LINES = "lines"


class RefundLine(WireModel):
    line_index: StrictInt = Field(ge=0, lt=MAX_LINES)  # index into the original sale's lines
    qty_milli: MilliQuantity
    amount: MinorUnits


class Refund(WireModel):
    refund_id: uuid.UUID
    original_sale_id: uuid.UUID
    # An admin may refund a sale made on another device of the company.
    original_device_id: DeviceId
    scope: RefundScope
    lines: list[RefundLine] = Field(default_factory=list, max_length=MAX_LINES)
    currency: CurrencyCode
    amount: PositiveMinorUnits
    payments: list[Payment] = Field(min_length=1, max_length=MAX_PAYMENTS)
    cashier_id: Code
    till_session_id: uuid.UUID
    reason: RefundReason
    receipt_no: StrictInt | None = Field(None, ge=1)  # the refund receipt's number (same counter as sales)
    terminal_id: Code | None = None
    operator_code: OperatorCode | None = None

    @model_validator(mode="after")
    def _amounts_add_up(self) -> Refund:
        if self.scope is RefundScope.WHOLE and self.lines:
            raise ValueError("a whole-receipt refund lists no lines")
        if self.scope is RefundScope.LINES:
            if not self.lines:
                raise ValueError("a line refund lists at least one line")
            indexes = [line.line_index for line in self.lines]
            if len(set(indexes)) != len(indexes):
                raise ValueError("a refund lists a line index more than once")
            lines_amount = sum(line.amount for line in self.lines)
            if lines_amount != self.amount:
                raise ValueError(f"amount {self.amount} != sum of refunded lines {lines_amount}")
        paid_out = sum(p.amount for p in self.payments)
        if paid_out != self.amount:
            raise ValueError(f"payments {paid_out} != refund amount {self.amount}")
        return self


class PaymentTotal(WireModel):
    method: PaymentMethod
    taken: MinorUnits  # by sales (cash: net of change)
    paid_out: MinorUnits  # by refunds


class ZReport(WireModel):
    """The close of a till period (up/z_report): totals since the previous Z, per device.

    `z_no` counts per device without gaps, like receipt numbers. Sent like a sale (outbox,
    exactly once); the device starts a new period with the next sale.
    """

    report_id: uuid.UUID
    z_no: StrictInt = Field(ge=1)
    currency: CurrencyCode
    opened_at: Timestamp  # the first moment of the period (the previous Z, or the first sale)
    closed_at: Timestamp
    closed_by: Code  # cashier id
    first_receipt_no: StrictInt | None = Field(None, ge=1)
    last_receipt_no: StrictInt | None = Field(None, ge=1)
    sales_count: StrictInt = Field(ge=0)
    refunds_count: StrictInt = Field(ge=0)
    sales_total: MinorUnits
    refunds_total: MinorUnits
    tax_total: MinorUnits  # of sales, less refunded tax
    payments: list[PaymentTotal] = Field(default_factory=list, max_length=len(PaymentMethod))
    taxes: list[TaxLine] = Field(default_factory=list, max_length=MAX_LINES)
