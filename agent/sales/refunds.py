"""Which quantities and amounts a refund takes back, never more than was sold.

Earlier refunds of the same sale (``refund_lines``, also those made for a sale of another
device) are subtracted first. A whole-receipt refund of an untouched sale goes to the
cloud as scope ``whole``; after partial refunds it refunds the rest and goes as scope
``lines`` listing exactly what was left, so the cloud can check every line.
"""

from __future__ import annotations

from typing import Any

from agent.sales.compute import RefundLinePlan, check_payments, plan_line, taken_by_method
from agent.sales.models import RefundRequest, SalesRefused
from broker.contract.sales import PaymentMethod, RefundScope


def plan(
    sale: dict[str, Any], refunded: dict[int, tuple[int, int]], request: RefundRequest
) -> tuple[RefundScope, list[RefundLinePlan]]:
    """The wire scope and one plan per refunded line; SalesRefused when not possible."""
    sold = [line["qty_milli"] for line in sale["lines"]]
    left = [qty - refunded.get(i, (0, 0))[0] for i, qty in enumerate(sold)]
    if request.scope is RefundScope.WHOLE:
        if request.lines:
            raise SalesRefused("refund.invalid_lines", "a whole-receipt refund lists no lines")
        wanted = {i: qty for i, qty in enumerate(left) if qty > 0}
        if not wanted:
            raise SalesRefused("refund.exceeds_sale", "this sale has been refunded in full already")
    else:
        if not request.lines:
            raise SalesRefused("refund.invalid_lines", "a line refund lists at least one line")
        wanted = {}
        for line in request.lines:
            if not 0 <= line.line_index < len(sold):
                raise SalesRefused(
                    "refund.invalid_lines", f"the sale has no line {line.line_index} (it has {len(sold)})"
                )
            if line.line_index in wanted:
                raise SalesRefused("refund.invalid_lines", f"line {line.line_index} is listed twice")
            if line.qty_milli <= 0:
                raise SalesRefused("refund.invalid_lines", f"line {line.line_index}: the quantity must be positive")
            if line.qty_milli > left[line.line_index]:
                raise SalesRefused(
                    "refund.exceeds_sale",
                    (
                        f"line {line.line_index}: {line.qty_milli} asked, {left[line.line_index]} of "
                        f"{sold[line.line_index]} left to refund"
                    ),
                    line_index=line.line_index,
                    left_milli=left[line.line_index],
                )
            wanted[line.line_index] = line.qty_milli
    plans = [plan_line(sale, i, sold[i] - left[i], qty) for i, qty in sorted(wanted.items())]
    if sum(p.amount for p in plans) <= 0:
        raise SalesRefused("refund.nothing_to_refund", "these lines were free: there is no money to give back")
    untouched = not refunded
    scope = RefundScope.WHOLE if request.scope is RefundScope.WHOLE and untouched else RefundScope.LINES
    return scope, plans


def check_refund_payments(request: RefundRequest, amount: int) -> None:
    assert request.payments is not None
    check_payments(request.payments, "refund")
    given = sum(p.amount for p in request.payments)
    if given != amount:
        raise SalesRefused(
            "refund.payments_mismatch",
            f"the payments give back {given}, the refund is {amount}",
            amount=amount,
            given=given,
        )


def check_cash_room(request: RefundRequest, sale: dict[str, Any], paid_out_before: dict[str, int]) -> None:
    """Explicit payments never give back more cash than the sale took in cash (net of change)
    less what earlier refunds of it paid out in cash."""
    assert request.payments is not None
    cash = PaymentMethod.CASH.value
    given = sum(p.amount for p in request.payments if p.method is PaymentMethod.CASH)
    left = max(0, taken_by_method(sale).get(cash, 0) - paid_out_before.get(cash, 0))
    if given > left:
        raise SalesRefused(
            "refund.invalid_payments",
            f"the payments give back {given} in cash, the sale has {left} cash left to give back",
            cash_given=given,
            cash_left=left,
        )


def remaining(sale: dict[str, Any], refunded_amount: int) -> int:
    return int(sale["total"]) - refunded_amount
