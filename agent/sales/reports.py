"""X and Z reports: the running totals of the open till period, and its close.

A period is everything booked since the previous Z (``sales.period_no`` / ``refunds.period_no``
= the number the closing Z will get). The X report reads it; the Z report writes it down
(``z_reports``), queues ``kc.ZReport`` in the same transaction, and so starts the next period.
Taxes are net of refunds; the contract allows no negative amounts, so a period whose refunds
of older sales outweigh its own sales reports 0 tax for that rate (the refund rows still
carry the exact amounts).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from agent.sales import ledger
from broker.contract.sales import PaymentMethod

DEFAULT_CURRENCY = "EUR"


def period_currency(conn: sqlite3.Connection, config: dict[str, Any]) -> str | None:
    """The currency of the open period: that of its first sale or refund, else None."""
    row = conn.execute(
        "SELECT currency FROM (SELECT currency, receipt_no FROM sales WHERE period_no = ?1"
        " UNION ALL SELECT currency, receipt_no FROM refunds WHERE period_no = ?1) ORDER BY receipt_no LIMIT 1",
        (ledger.open_period(conn),),
    ).fetchone()
    return None if row is None else row[0]


def totals(conn: sqlite3.Connection, config: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """The open period's totals in the shape of ``ReportResult`` (kind "x")."""
    period = ledger.open_period(conn)
    previous = ledger.last_z(conn)
    currency = (
        period_currency(conn, config)
        or configured_currency(config)
        or (previous is not None and previous["body"] and _z_currency(previous))
        or DEFAULT_CURRENCY
    )

    # Summed row by row as they are read: the period's rows are never all in memory at once.
    taken = dict.fromkeys((m.value for m in PaymentMethod), 0)
    paid_out = dict.fromkeys((m.value for m in PaymentMethod), 0)
    bases: dict[int, list[int]] = {}
    sales_count = sales_total = sales_tax = 0
    refunds_count = refunds_total = refunds_tax = 0
    first_at: float | None = None
    first_no: int | None = None
    last_no: int | None = None
    for sale, at in ledger.period_sales(conn, period):
        sales_count += 1
        sales_total += sale["total"]
        sales_tax += sale["tax_total"]
        first_at = at if first_at is None else min(first_at, at)
        first_no = sale["receipt_no"] if first_no is None else min(first_no, sale["receipt_no"])
        last_no = sale["receipt_no"] if last_no is None else max(last_no, sale["receipt_no"])
        for payment in sale["payments"]:
            taken[payment["method"]] += payment["amount"]
        taken[PaymentMethod.CASH.value] -= sale.get("change", 0)
        for tax in sale["taxes"]:
            entry = bases.setdefault(tax["rate_bp"], [0, 0])
            entry[0] += tax["base"]
            entry[1] += tax["tax"]
    for refund, tax_total, at in ledger.period_refunds(conn, period):
        refunds_count += 1
        refunds_total += refund["amount"]
        refunds_tax += tax_total
        first_at = at if first_at is None else min(first_at, at)
        first_no = refund["receipt_no"] if first_no is None else min(first_no, refund["receipt_no"])
        last_no = refund["receipt_no"] if last_no is None else max(last_no, refund["receipt_no"])
        for payment in refund["payments"]:
            paid_out[payment["method"]] += payment["amount"]
    opened_at = (
        previous["closed_at"] if previous is not None else (first_at if first_at is not None else (now or time.time()))
    )
    for rate, (base, tax) in ledger.period_refund_taxes(conn, period).items():
        entry = bases.setdefault(rate, [0, 0])
        entry[0] -= base
        entry[1] -= tax
    return {
        "kind": "x",
        "z_no": None,
        "report_id": None,
        "currency": currency,
        "opened_at": opened_at,
        "closed_at": None,
        "first_receipt_no": first_no,
        "last_receipt_no": last_no,
        "sales_count": sales_count,
        "refunds_count": refunds_count,
        "sales_total": sales_total,
        "refunds_total": refunds_total,
        "tax_total": max(0, sales_tax - refunds_tax),
        "payments": [
            {"method": m, "taken": max(0, taken[m]), "paid_out": paid_out[m]} for m in taken if taken[m] or paid_out[m]
        ],
        "taxes": [
            {"rate_bp": rate, "base": max(0, base), "tax": max(0, tax)} for rate, (base, tax) in sorted(bases.items())
        ],
    }


def configured_currency(config: dict[str, Any]) -> str | None:
    value = config.get("currency")
    return value if isinstance(value, str) and len(value) == 3 and value.isupper() else None


def _z_currency(row: sqlite3.Row) -> str | None:
    currency = json.loads(row["body"]).get("currency")
    return currency if isinstance(currency, str) else None
