"""The sales tables (migration 6): sales, refunds, refunded quantities, counters, Z reports.

Writers take the caller's transaction connection; nothing here commits. Receipt numbers
are per device and gap-free: a number is claimed in the transaction that writes its
receipt, so a rolled-back sale gives its number back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


class CounterMoved(Exception):
    """The receipt counter changed between drafting and committing: draft again."""


def request_hash(request: BaseModel) -> str:
    """What identifies a request's content (print options excluded: a retry may change them)."""
    body = request.model_dump(mode="json", exclude={"print_receipt"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------------- counters
def next_receipt_no(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM sales_counters WHERE name = 'receipt_no'").fetchone()[0]) + 1


def claim_receipt_no(conn: sqlite3.Connection, receipt_no: int) -> None:
    """Inside the transaction: take ``receipt_no`` if it is still the next one."""
    moved = conn.execute(
        "UPDATE sales_counters SET value = ? WHERE name = 'receipt_no' AND value = ?", (receipt_no, receipt_no - 1)
    ).rowcount
    if moved != 1:
        raise CounterMoved(f"receipt number {receipt_no} was taken meanwhile")


def open_period(conn: sqlite3.Connection) -> int:
    """The number the next Z report will have: the period sales are booked in now."""
    return int(conn.execute("SELECT COALESCE(max(z_no), 0) + 1 FROM z_reports").fetchone()[0])


def last_z(conn: sqlite3.Connection) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM z_reports ORDER BY z_no DESC LIMIT 1").fetchone()
    return row


# ---------------------------------------------------------------------------- sales
def sale_by_request(conn: sqlite3.Connection, request_id: str) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute("SELECT request_hash, result FROM sales WHERE request_id = ?", (request_id,)).fetchone()
    return None if row is None else (row[0], json.loads(row[1]))


def insert_sale(
    conn: sqlite3.Connection,
    *,
    sale: dict[str, Any],
    request_id: str,
    request_hash: str,
    period_no: int,
    created_at: float,
    result: dict[str, Any],
    print_job_id: str | None,
) -> None:
    conn.execute(
        "INSERT INTO sales(sale_id, request_id, request_hash, receipt_no, period_no, created_at, cashier_id, "
        "till_session_id,"
        " currency, total, tax_total, change, body, result, print_job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?)",
        (
            sale["sale_id"],
            request_id,
            request_hash,
            sale["receipt_no"],
            period_no,
            created_at,
            sale["cashier_id"],
            sale["till_session_id"],
            sale["currency"],
            sale["total"],
            sale["tax_total"],
            sale["change"],
            json.dumps(sale, separators=(",", ":")),
            json.dumps(result, separators=(",", ":")),
            print_job_id,
        ),
    )


@dataclass(frozen=True)
class StoredSale:
    body: dict[str, Any]  # the kc.Sale as JSON
    created_at: float
    print_job_id: str | None


def sale(conn: sqlite3.Connection, sale_id: str) -> StoredSale | None:
    row = conn.execute("SELECT body, created_at, print_job_id FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
    return None if row is None else StoredSale(json.loads(row[0]), row[1], row[2])


def foreign_sale(conn: sqlite3.Connection, sale_id: str) -> tuple[dict[str, Any], str] | None:
    """A sale of another device this one refunded before: (the cloud's copy, its device)."""
    row = conn.execute(
        "SELECT sale_body, original_device_id FROM refunds WHERE sale_id = ? AND sale_body IS NOT NULL LIMIT 1",
        (sale_id,),
    ).fetchone()
    return None if row is None else (json.loads(row[0]), row[1])


# -------------------------------------------------------------------------- refunds
def refund_by_request(conn: sqlite3.Connection, request_id: str) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute("SELECT request_hash, result FROM refunds WHERE request_id = ?", (request_id,)).fetchone()
    return None if row is None else (row[0], json.loads(row[1]))


def refunded_lines(conn: sqlite3.Connection, sale_id: str) -> dict[int, tuple[int, int]]:
    """line index -> (quantity refunded, amount refunded) over every refund of the sale."""
    rows = conn.execute(
        "SELECT line_index, sum(qty_milli), sum(amount) FROM refund_lines WHERE sale_id = ? GROUP BY line_index",
        (sale_id,),
    ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def refund_ids(conn: sqlite3.Connection, sale_id: str) -> frozenset[str]:
    """The ids of this terminal's refunds of the sale."""
    return frozenset(row[0] for row in conn.execute("SELECT refund_id FROM refunds WHERE sale_id = ?", (sale_id,)))


def paid_out_by_method(conn: sqlite3.Connection, sale_id: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (body,) in conn.execute("SELECT body FROM refunds WHERE sale_id = ?", (sale_id,)):
        for payment in json.loads(body)["payments"]:
            out[payment["method"]] = out.get(payment["method"], 0) + payment["amount"]
    return out


def insert_refund(
    conn: sqlite3.Connection,
    *,
    refund: dict[str, Any],
    request_id: str,
    request_hash: str,
    period_no: int,
    created_at: float,
    tax_total: int,
    lines: list[Any],
    result: dict[str, Any],
    sale_body: dict[str, Any] | None,
    print_job_id: str | None,
) -> None:
    conn.execute(
        "INSERT INTO refunds(refund_id, request_id, request_hash, sale_id, original_device_id, receipt_no, period_no, "
        "created_at,"
        " cashier_id, currency, amount, tax_total, body, result, sale_body, print_job_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            refund["refund_id"],
            request_id,
            request_hash,
            refund["original_sale_id"],
            refund["original_device_id"],
            refund["receipt_no"],
            period_no,
            created_at,
            refund["cashier_id"],
            refund["currency"],
            refund["amount"],
            tax_total,
            json.dumps(refund, separators=(",", ":")),
            json.dumps(result, separators=(",", ":")),
            None if sale_body is None else json.dumps(sale_body, separators=(",", ":")),
            print_job_id,
        ),
    )
    conn.executemany(
        "INSERT INTO refund_lines(refund_id, sale_id, line_index, qty_milli, amount, base, tax, tax_rate_bp)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                refund["refund_id"],
                refund["original_sale_id"],
                p.line_index,
                p.qty_milli,
                p.amount,
                p.base,
                p.tax,
                p.tax_rate_bp,
            )
            for p in lines
        ],
    )


# ------------------------------------------------------------------------ periods
# One row at a time: a period has as many rows as the till sold since the last Z (thousands on a
# busy day), and a list of them all parsed cost the X report ~5 MB per 1000 sales at its peak,
# memory the agent process kept (the soak saw RSS climb with every X report).
def period_sales(conn: sqlite3.Connection, period_no: int) -> Iterator[tuple[dict[str, Any], float]]:
    rows = conn.execute("SELECT body, created_at FROM sales WHERE period_no = ? ORDER BY receipt_no", (period_no,))
    return ((json.loads(body), created_at) for body, created_at in rows)


def period_refunds(conn: sqlite3.Connection, period_no: int) -> Iterator[tuple[dict[str, Any], int, float]]:
    rows = conn.execute(
        "SELECT body, tax_total, created_at FROM refunds WHERE period_no = ? ORDER BY receipt_no", (period_no,)
    )
    return ((json.loads(body), tax_total, created_at) for body, tax_total, created_at in rows)


def period_refund_taxes(conn: sqlite3.Connection, period_no: int) -> dict[int, tuple[int, int]]:
    """rate -> (base, tax) refunded in the period."""
    rows = conn.execute(
        "SELECT l.tax_rate_bp, sum(l.base), sum(l.tax) FROM refund_lines l JOIN refunds r USING (refund_id)"
        " WHERE r.period_no = ? GROUP BY l.tax_rate_bp",
        (period_no,),
    )
    return {rate: (base, tax) for rate, base, tax in rows}


def insert_z(
    conn: sqlite3.Connection,
    *,
    z_no: int,
    report_id: str,
    opened_at: float,
    closed_at: float,
    closed_by: str,
    body: dict[str, Any],
    print_job_id: str | None,
) -> None:
    conn.execute(
        (
            "INSERT INTO z_reports(z_no, report_id, opened_at, closed_at, closed_by, body, print_job_id) VALUES (?, ?, "
            "?, ?, ?, ?, ?)"
        ),
        (z_no, report_id, opened_at, closed_at, closed_by, json.dumps(body, separators=(",", ":")), print_job_id),
    )
