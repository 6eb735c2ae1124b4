"""Sale arithmetic: discount spreading, taxes included/excluded, rounding, change, refusals;
refund amounts that add up exactly over partial refunds. Every priced sale must pass kc.Sale."""

from __future__ import annotations

import uuid

import pytest

from agent.refusal import http_status
from agent.sales import compute, refunds
from agent.sales.models import (
    PaymentIn,
    RefundLineIn,
    RefundRequest,
    SaleLineIn,
    SaleRequest,
    SalesRefused,
    parse,
)
from broker import contract as kc

FIELDS = {
    "cashier_id": "c1",
    "point_of_sale": "shop-1",
    "terminal_id": "T-01",
    "operator_code": "1234",
    "till_session_id": str(uuid.uuid4()),
}


def request(
    lines: list[tuple[int, int, int, int]], pay: list[tuple[str, int]], *, discount: int = 0, tax_included: bool = True
) -> SaleRequest:
    return SaleRequest(
        request_id="r1",
        currency="EUR",
        tax_included=tax_included,
        discount=discount,
        lines=[
            SaleLineIn(sku=f"S{i}", name=f"N{i}", qty_milli=q, unit_price=p, tax_rate_bp=r, discount=d)
            for i, (q, p, r, d) in enumerate(lines)
        ],
        payments=[PaymentIn(method=m, amount=a) for m, a in pay],
    )


def priced_sale(req: SaleRequest) -> kc.Sale:
    return compute.price_sale(req).sale(req, sale_id=kc.uuid7(), receipt_no=1, fields=FIELDS)  # kc.Sale validates here


def test_receipt_discount_is_spread_proportionally_with_the_remainder_to_the_largest_line() -> None:
    sale = priced_sale(
        request([(1000, 1000, 1900, 0), (1000, 500, 1900, 0), (1000, 250, 700, 0)], [("cash", 2000)], discount=100)
    )
    # 100 over 1750: floor 57, 28, 14 = 99; the remainder 1 goes to the largest line
    assert [line.discount for line in sale.lines] == [58, 28, 14]
    assert sale.total == 1650 and sale.change == 350


def test_discount_remainder_never_exceeds_a_line_total() -> None:
    sale = priced_sale(request([(1000, 1, 0, 0)] * 3, [("card", 1)], discount=2))
    assert sorted(line.total for line in sale.lines) == [0, 0, 1] and sale.total == 1


def test_line_discount_and_receipt_discount_add_up() -> None:
    sale = priced_sale(request([(1000, 1000, 1900, 100), (1000, 900, 1900, 0)], [("card", 1700)], discount=100))
    assert [line.discount for line in sale.lines] == [150, 50]
    assert sum(line.total for line in sale.lines) == 1700


def test_tax_included_is_extracted_per_rate_rounded_half_up() -> None:
    sale = priced_sale(request([(1000, 119, 1900, 0), (1000, 107, 700, 0), (1000, 100, 1900, 0)], [("cash", 326)]))
    taxes = {t.rate_bp: (t.base, t.tax) for t in sale.taxes}
    assert taxes == {1900: (219, 35), 700: (107, 7)}  # 219 * 19 / 119 = 34.97 -> 35
    assert sale.total == 326 and sale.tax_total == 42


def test_tax_excluded_is_added_to_the_total() -> None:
    sale = priced_sale(request([(1000, 1000, 1900, 0), (1500, 333, 700, 0)], [("card", 1725)], tax_included=False))
    # 1.5 x 333 = 499.5 -> 500; tax 190 + 35
    assert [line.total for line in sale.lines] == [1000, 500]
    assert sale.tax_total == 225 and sale.total == 1725


def test_weight_quantities_round_half_up() -> None:
    sale = priced_sale(request([(125, 2, 0, 0)], [("cash", 1)]))  # 0.25 -> 0
    assert sale.lines[0].total == 0 or sale.lines[0].total == 1
    assert compute.div_half_up(5, 10) == 1 and compute.div_half_up(4, 10) == 0


def test_cash_gives_change_card_overpay_is_refused_underpay_is_refused() -> None:
    assert compute.price_sale(request([(1000, 999, 0, 0)], [("card", 500), ("cash", 1000)])).change == 501
    with pytest.raises(SalesRefused) as over:
        compute.price_sale(request([(1000, 999, 0, 0)], [("card", 1000)]))
    assert over.value.code == "sale.overpaid_non_cash" and over.value.http_status == 422
    with pytest.raises(SalesRefused) as under:
        compute.price_sale(request([(1000, 999, 0, 0)], [("cash", 500), ("card", 400)]))
    assert under.value.code == "sale.underpaid" and under.value.details["missing"] == 99


@pytest.mark.parametrize(
    ("lines", "discount", "code"),
    [
        ([], 0, "sale.invalid_lines"),
        ([(0, 100, 0, 0)], 0, "sale.invalid_lines"),
        ([(1000, -1, 0, 0)], 0, "sale.invalid_lines"),
        ([(1000, 100, 10_001, 0)], 0, "sale.invalid_lines"),
        ([(1000, 100, 0, 101)], 0, "sale.invalid_lines"),
        ([(1000, 100, 0, 0)], 101, "sale.invalid_discount"),
    ],
)
def test_invalid_lines_have_stable_codes(lines: list, discount: int, code: str) -> None:
    with pytest.raises(SalesRefused) as refused:
        compute.price_sale(request(lines, [("cash", 100)], discount=discount))
    assert refused.value.code == code


def test_bad_currency_and_malformed_json_are_refused() -> None:
    req = request([(1000, 100, 0, 0)], [("cash", 100)]).model_copy(update={"currency": "eur"})
    with pytest.raises(SalesRefused) as refused:
        compute.price_sale(req)
    assert refused.value.code == "sale.currency"
    with pytest.raises(SalesRefused) as malformed:
        parse(
            SaleRequest,
            {
                "request_id": "x",
                "currency": "EUR",
                "lines": [{"sku": "a", "name": "b", "qty_milli": 1.5, "unit_price": 1, "tax_rate_bp": 0}],
                "payments": [],
            },
        )
    assert malformed.value.code == "sale.invalid_request"


def test_http_status_suggestions() -> None:
    assert [
        http_status(c)
        for c in (
            "session.expired",
            "permission.denied",
            "licence.none",
            "sale.underpaid",
            "sale.request_id_reused",
            "refund.exceeds_sale",
            "refund.sale_unknown",
            "refund.cloud_unreachable",
        )
    ] == [401, 403, 403, 422, 409, 409, 404, 503]


def test_partial_refunds_of_a_line_add_up_to_exactly_what_was_paid() -> None:
    sale = priced_sale(
        request([(3000, 333, 1900, 0), (1000, 100, 700, 0)], [("cash", 1300)], tax_included=False)
    ).model_dump(mode="json")
    payable, tax_shares = compute.line_payables(sale)
    assert sum(payable) == sale["total"] and sum(tax_shares) == sale["tax_total"]
    done: dict[int, tuple[int, int]] = {}
    amounts = []
    for qty in (1000, 1000, 1000):
        req = RefundRequest(
            request_id="x",
            sale_id=sale["sale_id"],
            scope="lines",
            lines=[RefundLineIn(line_index=0, qty_milli=qty)],
            reason="r",
        )
        _, plans = refunds.plan(sale, done, req)
        amounts.append(plans[0].amount)
        q, a = done.get(0, (0, 0))
        done[0] = (q + qty, a + plans[0].amount)
    assert sum(amounts) == payable[0]
    with pytest.raises(SalesRefused) as refused:
        refunds.plan(
            sale,
            done,
            RefundRequest(
                request_id="y",
                sale_id=sale["sale_id"],
                scope="lines",
                lines=[RefundLineIn(line_index=0, qty_milli=1)],
                reason="r",
            ),
        )
    assert refused.value.code == "refund.exceeds_sale"
    scope, rest = refunds.plan(
        sale, done, RefundRequest(request_id="z", sale_id=sale["sale_id"], scope="whole", reason="r")
    )
    assert scope is kc.RefundScope.LINES and [p.line_index for p in rest] == [1] and rest[0].amount == payable[1]


def test_default_refund_payments_go_back_cash_first_within_what_each_method_took() -> None:
    sale = priced_sale(request([(1000, 1000, 0, 0)], [("card", 600), ("cash", 500)])).model_dump(mode="json")
    assert sale["change"] == 100
    payments = compute.default_refund_payments(sale, 1000, {})
    assert [(p.method.value, p.amount) for p in payments] == [("cash", 400), ("card", 600)]
    later = compute.default_refund_payments(sale, 300, {"cash": 400})
    assert [(p.method.value, p.amount) for p in later] == [("card", 300)]
