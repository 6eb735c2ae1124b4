"""Sale, refund and till report receipts, built with the drivers' receipt document model.

The header, footer and logo text come from the company's pushed ``config`` state document
(keys ``receipt_header``, ``receipt_footer``, ``receipt_logo_text``; text or a list of
lines; ``receipt_labels`` overrides single labels, see ``agent.sales.wording``), so a company
changes its receipts in the cloud without touching terminals. The words are in the
terminal's language (``site.language``), read for every receipt, and money, numbers and
dates are formatted for it. Rows that could wrap on 58 mm paper (32 columns) carry a shorter
form the drivers print instead (``Columns.shorter``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.sales.wording import Wording, parse_labels
from drivers import Receipt, ReceiptBuilder


@dataclass(frozen=True)
class Template:
    header: tuple[str, ...] = ()
    footer: tuple[str, ...] | None = None  # None: "Thank you!" in the receipt's language
    logo_text: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # the company's overrides (receipt_labels)
    language: str = "en"

    @classmethod
    def from_config(cls, doc: dict[str, Any] | None, language: str = "en") -> Template:
        doc = doc or {}

        def lines(value: Any) -> tuple[str, ...] | None:
            if isinstance(value, str):
                return tuple(value.splitlines())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            return None

        logo = doc.get("receipt_logo_text")
        return cls(
            lines(doc.get("receipt_header")) or (),
            lines(doc.get("receipt_footer")),
            logo if isinstance(logo, str) and logo else None,
            parse_labels(doc.get("receipt_labels")),
            language,
        )

    def wording(self) -> Wording:
        return Wording.of(self.language, self.labels)


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


def current_template(conn: sqlite3.Connection, language: str) -> Template:
    """The template of a receipt made now: the company's pushed wording, in `language`."""
    return Template.from_config(pushed_config(conn), language)


def _head(b: ReceiptBuilder, template: Template) -> None:
    if template.logo_text:
        b.text(template.logo_text, bold=True, width=2, height=2, align="center")
    for line in template.header:
        b.text(line, align="center")
    b.feed(1)


def _who(b: ReceiptBuilder, w: Wording, body: dict[str, Any], device_id: str) -> None:
    b.columns(w("cashier"), body["cashier_id"])
    if body.get("operator_code"):
        b.columns(w("operator"), body["operator_code"])
    if body.get("terminal_id"):
        b.columns(w("terminal"), body["terminal_id"])
    b.columns(w("device"), device_id)


def _foot(b: ReceiptBuilder, w: Wording, template: Template) -> None:
    b.feed(1)
    for line in template.footer if template.footer is not None else (w("thanks"),):
        b.text(line, align="center")
    b.cut()


def copy_mark(template: Template) -> Receipt:
    """What a reprint starts with: ``*** COPY ***`` in the receipt's language."""
    return ReceiptBuilder().text(template.wording()("copy"), bold=True, align="center").feed(1).build()


def sale_receipt(sale: dict[str, Any], *, created_at: float, device_id: str, template: Template) -> Receipt:
    cur = sale["currency"]
    w = template.wording()
    b = ReceiptBuilder()
    _head(b, template)
    b.columns(w("receipt"), w.number(sale["receipt_no"]), bold=True).columns(w("date"), w.datetime(created_at))
    _who(b, w, sale, device_id)
    b.rule()
    for line in sale["lines"]:
        gross = line["total"] + line["discount"]
        b.columns(line["name"], w.money(gross, cur))
        if line["qty_milli"] != 1000:
            b.text(f"  {w.quantity(line['qty_milli'])} x {w.money(line['unit_price'], cur)}")
        if line["discount"]:
            b.columns("  " + w("discount"), w.money(-line["discount"], cur))
    b.rule()
    if not sale["tax_included"]:
        b.columns(w("net"), w.money(sum(line["total"] for line in sale["lines"]), cur))
        for tax in sale["taxes"]:
            b.columns(w.tax("tax_row", tax["rate_bp"]), w.money(tax["tax"], cur))
    b.columns(w("total"), w.money(sale["total"], cur), bold=True, height=2)
    for payment in sale["payments"]:
        b.columns(w.payment(payment["method"]), w.money(payment["amount"], cur))
    if sale.get("change"):
        b.columns(w("change"), w.money(sale["change"], cur), bold=True)
    if sale["tax_included"]:
        b.rule()
        for tax in sale["taxes"]:
            amount = w.money(tax["tax"], cur)
            # the base where it fits on the line, else only the rate: never a base wrapped under the amount
            b.columns(
                w.tax("tax_included_of", tax["rate_bp"], base=w.money(tax["base"], cur)),
                amount,
                shorter=[(w.tax("tax_included", tax["rate_bp"]), amount)],
            )
    b.feed(1).qr(f"kassa:sale:{sale['sale_id']}", size=4)
    _foot(b, w, template)
    return b.build()


def refund_receipt(
    refund: dict[str, Any], sale: dict[str, Any], *, created_at: float, device_id: str, template: Template
) -> Receipt:
    cur = refund["currency"]
    w = template.wording()
    b = ReceiptBuilder()
    _head(b, template)
    b.text(w("refund"), bold=True, width=2, height=2, align="center").feed(1)
    b.columns(w("receipt"), w.number(refund["receipt_no"]), bold=True).columns(w("date"), w.datetime(created_at))
    b.columns(w("of_sale"), w.number(sale["receipt_no"]) if sale.get("receipt_no") else refund["original_sale_id"][:8])
    _who(b, w, refund, device_id)
    b.rule()
    for line in refund["lines"]:
        sold = sale["lines"][line["line_index"]]
        b.columns(f"{w.quantity(line['qty_milli'])} x {sold['name']}", w.money(-line["amount"], cur))
    if not refund["lines"]:
        b.text(w("whole_receipt"))
    b.rule()
    b.columns(w("refunded"), w.money(refund["amount"], cur), bold=True, height=2)
    for payment in refund["payments"]:
        b.columns(w.payment(payment["method"]), w.money(payment["amount"], cur))
    b.text(w.labelled("reason", refund["reason"]))
    b.feed(1).qr(f"kassa:refund:{refund['refund_id']}", size=4)
    _foot(b, w, template)
    return b.build()


def report_receipt(report: dict[str, Any], *, device_id: str, template: Template) -> Receipt:
    cur = report["currency"]
    w = template.wording()
    b = ReceiptBuilder()
    _head(b, template)
    title = f"{w('z_report')} {w.number(report['z_no'])}" if report["kind"] == "z" else w("x_report")
    b.text(title, bold=True, width=2, height=2, align="center").feed(1)
    b.columns(w("device"), device_id).columns(w("from"), w.datetime(report["opened_at"]))
    b.columns(w("to"), w.datetime(report["closed_at"] or time.time()))
    if report["first_receipt_no"]:
        b.columns(w("receipts"), f"{w.number(report['first_receipt_no'])} - {w.number(report['last_receipt_no'])}")
    b.rule()
    b.columns(f"{w('sales')} ({report['sales_count']})", w.money(report["sales_total"], cur))
    b.columns(f"{w('refunds')} ({report['refunds_count']})", w.money(-report["refunds_total"], cur))
    b.columns(w("net_total"), w.money(report["sales_total"] - report["refunds_total"], cur), bold=True)
    b.rule()
    for p in report["payments"]:
        b.columns(w.payment(p["method"]), w.money(p["taken"] - p["paid_out"], cur))
    b.rule()
    for tax in report["taxes"]:  # two rows a rate: tax and base both fit 32 columns in every language
        b.columns(w.tax("tax_row", tax["rate_bp"]), w.money(tax["tax"], cur))
        b.columns("  " + w("tax_base"), w.money(tax["base"], cur))
    b.columns(w.tax("tax_total"), w.money(report["tax_total"], cur))
    b.cut()
    return b.build()
