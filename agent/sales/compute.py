"""Sale and refund arithmetic in integer minor units: no floats, no store, no I/O.

Rules (the cloud's ``kc.Sale`` validator checks the results):
- a line's gross is unit price x quantity rounded half up (``kc.line_gross``);
- the receipt discount is spread over the lines in proportion to their totals after
  their own discounts, rounded down, the remainder to the largest lines (never more than
  a line's total);
- tax is computed per rate on the sum of its lines, rounded half up: included
  ``base * r / (10000 + r)``, excluded ``base * r / 10000`` (then added to the total);
- payments: card and other may not exceed the total; only cash gives change.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from agent.sales.models import PaymentIn, SaleRequest, SalesRefused
from broker import contract as kc
from broker.contract.fields import MAX_MINOR_UNITS
from broker.contract.sales import MAX_LINES, MAX_PAYMENTS, PaymentMethod, line_gross

CODE_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,64}$")
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")  # the contract's item name: no control characters
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_QTY_MILLI = 10**9
# Order in which a default refund pays money back: cash first.
REFUND_ORDER = (PaymentMethod.CASH, PaymentMethod.CARD, PaymentMethod.OTHER)


def div_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0 and denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


def allocate(amount: int, weights: list[int], caps: list[int] | None = None) -> list[int]:
    """Split ``amount`` in proportion to ``weights``: floor shares, the remainder one unit at
    a time to the largest weights first (ties: the earlier line), never above ``caps``."""
    total = sum(weights)
    if amount == 0 or total == 0:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    left = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    while left > 0:
        moved = False
        for i in order:
            room = left if caps is None else min(left, caps[i] - shares[i])
            if room > 0:
                shares[i] += room
                left -= room
                moved = True
                if left == 0:
                    break
        if not moved:
            raise ValueError("amount exceeds the caps")
    return shares


def tax_of(base: int, rate_bp: int, tax_included: bool) -> int:
    if tax_included:
        return div_half_up(base * rate_bp, 10_000 + rate_bp)
    return div_half_up(base * rate_bp, 10_000)


def taxes_for(lines: list[kc.SaleLine] | list[dict[str, Any]], tax_included: bool) -> list[kc.TaxLine]:
    bases: dict[int, int] = {}
    for line in lines:
        rate, total = (line["tax_rate_bp"], line["total"]) if isinstance(line, dict) else (line.tax_rate_bp, line.total)
        bases[rate] = bases.get(rate, 0) + total
    return [
        kc.TaxLine(rate_bp=rate, base=base, tax=tax_of(base, rate, tax_included))
        for rate, base in sorted(bases.items())
    ]


def _refuse_line(index: int, message: str) -> SalesRefused:
    return SalesRefused("sale.invalid_lines", f"line {index + 1}: {message}", line_index=index)


def check_payments(payments: list[PaymentIn], code_prefix: str) -> None:
    if len(payments) > MAX_PAYMENTS:
        raise SalesRefused(f"{code_prefix}.invalid_payments", f"at most {MAX_PAYMENTS} payments")
    for i, payment in enumerate(payments):
        if not 0 < payment.amount <= MAX_MINOR_UNITS:
            raise SalesRefused(
                f"{code_prefix}.invalid_payments",
                f"payment {i + 1}: the amount must be a positive number of minor units",
            )
        if payment.reference is not None and not CODE_RE.match(payment.reference):
            raise SalesRefused(
                f"{code_prefix}.invalid_payments",
                f"payment {i + 1}: the reference must be 1-64 characters without spaces",
            )


@dataclass(frozen=True)
class Computed:
    """A priced sale, everything but the ids and the receipt number."""

    lines: list[kc.SaleLine]
    taxes: list[kc.TaxLine]
    payments: list[kc.Payment]
    total: int
    tax_total: int
    change: int
    discount_total: int  # line discounts + the spread receipt discount

    def sale(self, request: SaleRequest, *, sale_id: uuid.UUID, receipt_no: int, fields: dict[str, Any]) -> kc.Sale:
        return kc.Sale(
            sale_id=sale_id,
            receipt_no=receipt_no,
            cashier_id=fields["cashier_id"],
            point_of_sale_id=fields["point_of_sale"] or "default",
            till_session_id=uuid.UUID(fields["till_session_id"]),
            terminal_id=fields["terminal_id"],
            operator_code=fields["operator_code"],
            currency=request.currency,
            tax_included=request.tax_included,
            lines=self.lines,
            taxes=self.taxes,
            payments=self.payments,
            total=self.total,
            tax_total=self.tax_total,
            change=self.change,
        )


def price_sale(request: SaleRequest) -> Computed:
    """Check and price a sale request; SalesRefused with a stable code when it is not valid."""
    if not CURRENCY_RE.match(request.currency):
        raise SalesRefused(
            "sale.currency", f"currency {request.currency!r} is not an ISO 4217 code (three capital letters)"
        )
    if not 1 <= len(request.lines) <= MAX_LINES:
        raise SalesRefused("sale.invalid_lines", f"a sale has 1 to {MAX_LINES} lines")
    nets: list[int] = []
    for i, line in enumerate(request.lines):
        if not CODE_RE.match(line.sku):
            raise _refuse_line(i, "the SKU must be 1-64 characters without spaces")
        if not NAME_RE.match(line.name):
            raise _refuse_line(i, "the name must be 1-200 characters without control characters (line breaks, tabs)")
        if not 0 < line.qty_milli <= MAX_QTY_MILLI:
            raise _refuse_line(i, "the quantity must be positive (qty_milli, 1000 = one)")
        if not 0 <= line.unit_price <= MAX_MINOR_UNITS:
            raise _refuse_line(i, "the unit price must be 0 or more minor units")
        if not 0 <= line.tax_rate_bp <= 10_000:
            raise _refuse_line(i, "the tax rate must be 0-10000 basis points")
        gross = line_gross(line.unit_price, line.qty_milli)
        if gross > MAX_MINOR_UNITS:  # checked before the contract's SaleLine and TaxLine see it
            raise _refuse_line(i, "the line's total is too large")
        if not 0 <= line.discount <= gross:
            raise _refuse_line(i, f"the discount must be between 0 and the line's gross {gross}")
        nets.append(gross - line.discount)
    if sum(nets) > MAX_MINOR_UNITS:
        raise SalesRefused("sale.invalid_lines", "the sale's total is too large")
    if not 0 <= request.discount <= sum(nets):
        raise SalesRefused(
            "sale.invalid_discount", f"the receipt discount must be between 0 and the lines' total {sum(nets)}"
        )
    spread = allocate(request.discount, nets, caps=nets)
    lines = [
        kc.SaleLine(
            sku=line.sku,
            name=line.name,
            qty_milli=line.qty_milli,
            unit_price=line.unit_price,
            tax_rate_bp=line.tax_rate_bp,
            discount=line.discount + share,
            total=net - share,
        )
        for line, net, share in zip(request.lines, nets, spread, strict=True)
    ]
    taxes = taxes_for(lines, request.tax_included)
    lines_total = sum(line.total for line in lines)
    tax_total = sum(t.tax for t in taxes)
    total = lines_total if request.tax_included else lines_total + tax_total
    if total > MAX_MINOR_UNITS:
        raise SalesRefused("sale.invalid_lines", "the sale's total is too large")
    check_payments(request.payments, "sale")
    paid = sum(p.amount for p in request.payments)
    non_cash = sum(p.amount for p in request.payments if p.method is not PaymentMethod.CASH)
    if non_cash > total:
        raise SalesRefused(
            "sale.overpaid_non_cash",
            f"card and other payments ({non_cash}) exceed the total {total}; only cash gives change",
            total=total,
            non_cash=non_cash,
        )
    if paid < total:
        raise SalesRefused(
            "sale.underpaid",
            f"paid {paid} of {total}: {total - paid} missing",
            total=total,
            paid=paid,
            missing=total - paid,
        )
    payments = [kc.Payment(method=p.method, amount=p.amount, reference=p.reference) for p in request.payments]
    discount_total = sum(line.discount for line in lines)
    return Computed(lines, taxes, payments, total, tax_total, paid - total, discount_total)


# ------------------------------------------------------------------------------ refunds
def line_payables(sale: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Per line: what the customer paid for it (the total, plus its tax share when prices
    excluded tax) and its tax share. Both add up exactly to the sale's total and tax_total."""
    lines = sale["lines"]
    tax_shares = [0] * len(lines)
    for tax in sale["taxes"]:
        members = [i for i, line in enumerate(lines) if line["tax_rate_bp"] == tax["rate_bp"]]
        for i, share in zip(members, allocate(tax["tax"], [lines[i]["total"] for i in members]), strict=True):
            tax_shares[i] = share
    payable = [line["total"] + (0 if sale["tax_included"] else tax_shares[i]) for i, line in enumerate(lines)]
    return payable, tax_shares


@dataclass(frozen=True)
class RefundLinePlan:
    line_index: int
    qty_milli: int
    amount: int  # money back for this line
    base: int  # the line total (tax base) refunded
    tax: int  # the tax refunded
    tax_rate_bp: int


def plan_line(sale: dict[str, Any], index: int, qty_before: int, qty: int) -> RefundLinePlan:
    """Refund ``qty`` more of a line of which ``qty_before`` was refunded already.

    Amounts are cumulative (what refunding up to this quantity is worth, less what earlier
    refunds took), so partial refunds that end up covering the line add up exactly to it.
    """
    line = sale["lines"][index]
    payable, tax_shares = line_payables(sale)
    sold = line["qty_milli"]

    def upto(value: int, q: int) -> int:
        return div_half_up(value * q, sold)

    after = qty_before + qty
    return RefundLinePlan(
        line_index=index,
        qty_milli=qty,
        tax_rate_bp=line["tax_rate_bp"],
        amount=upto(payable[index], after) - upto(payable[index], qty_before),
        base=upto(line["total"], after) - upto(line["total"], qty_before),
        tax=upto(tax_shares[index], after) - upto(tax_shares[index], qty_before),
    )


def taken_by_method(sale: dict[str, Any]) -> dict[str, int]:
    """What the sale took per payment method (cash net of the change given)."""
    taken: dict[str, int] = {}
    for payment in sale["payments"]:
        taken[payment["method"]] = taken.get(payment["method"], 0) + payment["amount"]
    if PaymentMethod.CASH.value in taken:
        taken[PaymentMethod.CASH.value] -= sale.get("change", 0)
    return taken


def default_refund_payments(sale: dict[str, Any], amount: int, paid_out_before: dict[str, int]) -> list[kc.Payment]:
    """Money back by the sale's own methods, cash first, each up to what it took
    (cash net of change) less what earlier refunds of this sale paid out by it."""
    taken = taken_by_method(sale)
    out: list[kc.Payment] = []
    left = amount
    for method in REFUND_ORDER:
        room = max(0, taken.get(method.value, 0) - paid_out_before.get(method.value, 0))
        part = min(room, left)
        if part > 0:
            out.append(kc.Payment(method=method, amount=part))
            left -= part
    if left > 0:  # only when the sale's own payments cannot say (e.g. a zero-payment sale): cash
        out.append(kc.Payment(method=PaymentMethod.CASH, amount=left))
    return out
