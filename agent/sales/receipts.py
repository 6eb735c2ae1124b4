"""Sale, refund and till report receipts, built with the drivers' receipt document model.

The header, footer and logo text come from the company's pushed ``config`` state document
(keys ``receipt_header``, ``receipt_footer``, ``receipt_logo_text``; text or a list of
lines), so a company changes its receipts in the cloud without touching terminals.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from drivers import Receipt, ReceiptBuilder

# ISO 4217 currencies without minor units (the rest print two decimals).
ZERO_DECIMAL = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "XAF", "XOF", "PYG", "UGX"})
THREE_DECIMAL = frozenset({"BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD"})
METHOD_NAMES = {"cash": "Cash", "card": "Card", "other": "Other"}


@dataclass(frozen=True)
class Template:
    header: tuple[str, ...] = ()
    footer: tuple[str, ...] = ("Thank you!",)
    logo_text: str | None = None

    @classmethod
    def from_config(cls, doc: dict[str, Any] | None) -> Template:
        doc = doc or {}

        def lines(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
            if isinstance(value, str):
                return tuple(value.splitlines())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            return default

        logo = doc.get("receipt_logo_text")
        return cls(lines(doc.get("receipt_header"), ()), lines(doc.get("receipt_footer"), cls.footer),
                   logo if isinstance(logo, str) and logo else None)


def pushed_config(conn: sqlite3.Connection) -> dict[str, Any]:
    """The applied ``config`` state document (read straight from the store: no cloud link needed)."""
    row = conn.execute("SELECT doc FROM applied_state WHERE domain = 'config'").fetchone()
    if row is None:
        return {}
    try:
        doc = json.loads(row[0])
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def money(amount: int, currency: str) -> str:
    """Minor units as text ("12.50 EUR"); never through a float."""
    decimals = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if decimals == 0:
        return f"{sign}{amount} {currency}"
    unit = 10**decimals
    return f"{sign}{amount // unit}.{amount % unit:0{decimals}d} {currency}"


def quantity(qty_milli: int) -> str:
    whole, frac = divmod(qty_milli, 1000)
    return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")


def percent(rate_bp: int) -> str:
    whole, frac = divmod(rate_bp, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _head(b: ReceiptBuilder, template: Template) -> None:
    if template.logo_text:
        b.text(template.logo_text, bold=True, width=2, height=2, align="center")
    for line in template.header:
        b.text(line, align="center")
    b.feed(1)


def _who(b: ReceiptBuilder, body: dict[str, Any], device_id: str) -> None:
    b.columns("Cashier", body["cashier_id"])
    if body.get("operator_code"):
        b.columns("Operator", body["operator_code"])
    if body.get("terminal_id"):
        b.columns("Terminal", body["terminal_id"])
    b.columns("Device", device_id)


def _foot(b: ReceiptBuilder, template: Template) -> None:
    b.feed(1)
    for line in template.footer:
        b.text(line, align="center")
    b.cut()


def sale_receipt(sale: dict[str, Any], *, created_at: float, device_id: str, template: Template) -> Receipt:
    cur = sale["currency"]
    b = ReceiptBuilder()
    _head(b, template)
    b.columns("Receipt", f"#{sale['receipt_no']}", bold=True).columns("Date", stamp(created_at))
    _who(b, sale, device_id)
    b.rule()
    for line in sale["lines"]:
        gross = line["total"] + line["discount"]
        b.columns(line["name"], money(gross, cur))
        if line["qty_milli"] != 1000:
            b.text(f"  {quantity(line['qty_milli'])} x {money(line['unit_price'], cur)}")
        if line["discount"]:
            b.columns("  discount", money(-line["discount"], cur))
    b.rule()
    if not sale["tax_included"]:
        b.columns("Net", money(sum(line["total"] for line in sale["lines"]), cur))
        for tax in sale["taxes"]:
            b.columns(f"Tax {percent(tax['rate_bp'])}", money(tax["tax"], cur))
    b.columns("TOTAL", money(sale["total"], cur), bold=True, height=2)
    for payment in sale["payments"]:
        b.columns(METHOD_NAMES.get(payment["method"], payment["method"]), money(payment["amount"], cur))
    if sale.get("change"):
        b.columns("Change", money(sale["change"], cur), bold=True)
    if sale["tax_included"]:
        b.rule()
        for tax in sale["taxes"]:
            b.columns(f"incl. tax {percent(tax['rate_bp'])} of {money(tax['base'], cur)}", money(tax["tax"], cur))
    b.feed(1).qr(f"kassa:sale:{sale['sale_id']}", size=4)
    _foot(b, template)
    return b.build()


def refund_receipt(refund: dict[str, Any], sale: dict[str, Any], *, created_at: float, device_id: str, template: Template) -> Receipt:
    cur = refund["currency"]
    b = ReceiptBuilder()
    _head(b, template)
    b.text("REFUND", bold=True, width=2, height=2, align="center").feed(1)
    b.columns("Receipt", f"#{refund['receipt_no']}", bold=True).columns("Date", stamp(created_at))
    b.columns("Of sale", f"#{sale['receipt_no']}" if sale.get("receipt_no") else refund["original_sale_id"][:8])
    _who(b, refund, device_id)
    b.rule()
    for line in refund["lines"]:
        sold = sale["lines"][line["line_index"]]
        b.columns(f"{quantity(line['qty_milli'])} x {sold['name']}", money(-line["amount"], cur))
    if not refund["lines"]:
        b.text("Whole receipt")
    b.rule()
    b.columns("REFUNDED", money(refund["amount"], cur), bold=True, height=2)
    for payment in refund["payments"]:
        b.columns(METHOD_NAMES.get(payment["method"], payment["method"]), money(payment["amount"], cur))
    b.text(f"Reason: {refund['reason']}")
    b.feed(1).qr(f"kassa:refund:{refund['refund_id']}", size=4)
    _foot(b, template)
    return b.build()


def report_receipt(report: dict[str, Any], *, device_id: str, template: Template) -> Receipt:
    cur = report["currency"]
    b = ReceiptBuilder()
    _head(b, template)
    title = f"Z REPORT #{report['z_no']}" if report["kind"] == "z" else "X REPORT"
    b.text(title, bold=True, width=2, height=2, align="center").feed(1)
    b.columns("Device", device_id).columns("From", stamp(report["opened_at"]))
    b.columns("To", stamp(report["closed_at"] or time.time()))
    if report["first_receipt_no"]:
        b.columns("Receipts", f"#{report['first_receipt_no']} - #{report['last_receipt_no']}")
    b.rule()
    b.columns(f"Sales ({report['sales_count']})", money(report["sales_total"], cur))
    b.columns(f"Refunds ({report['refunds_count']})", money(-report["refunds_total"], cur))
    b.columns("NET", money(report["sales_total"] - report["refunds_total"], cur), bold=True)
    b.rule()
    for p in report["payments"]:
        b.columns(METHOD_NAMES.get(p["method"], p["method"]), money(p["taken"] - p["paid_out"], cur))
    b.rule()
    for tax in report["taxes"]:
        b.columns(f"Tax {percent(tax['rate_bp'])} of {money(tax['base'], cur)}", money(tax["tax"], cur))
    b.columns("Tax total", money(report["tax_total"], cur))
    b.cut()
    return b.build()
