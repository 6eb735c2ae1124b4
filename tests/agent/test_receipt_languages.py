"""Receipts in every language on every paper width, read back from the printed bytes.

For en, ru, fr and de at 32 (58 mm paper), 42 and 48 columns a fixed day is printed: a sale
with two tax rates (20 % and 5.5 %), a line discount, card and cash with change, reprinted
under its copy mark; a refund of one line in cash; a sale with tax added on top; and the Z
report. The documents are rendered to ESC/POS bytes as for a printer, decoded back to text by
the preview decoder (drivers/preview/decoder.py), and compared with
``tests/agent/golden/<lang>-<columns>.txt``. Each golden was read by a person: labels, money
and dates as a reader of that language expects them, no row wrapped.

After a deliberate change of the receipts, write the goldens again and review the diff:

    KASSA_WRITE_GOLDEN=1 .venv/bin/python -m pytest tests/agent/test_receipt_languages.py

Separately, every row of every document the agent prints (receipts, reports, the pairing and
licence release slips), with small and large amounts, must fit each width on one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.licence.control import _release_slip
from agent.pairing.slip import pairing_slip
from agent.sales import receipts
from drivers import Columns, EscposRenderer, Receipt, load_profile
from drivers.preview.decoder import LINE_DOTS, EscposDecoder
from drivers.preview.model import PaperCut, PaperFeed, PrintedBarcode, PrintedImage, PrintedLine, PrintedQr
from drivers.receipt.document import Align, sanitize
from drivers.receipt.layout import chosen_forms, display_width, layout_columns

GOLDEN = Path(__file__).with_name("golden")
LANGUAGES = ("en", "ru", "fr", "de")
WIDTHS = (32, 42, 48)
CURRENCY = {"en": "GBP", "ru": "RUB", "fr": "EUR", "de": "EUR"}
HEADER = ("Kassa Cafe", "Hauptstrasse 1, Berlin")
SOLD_AT = 1_741_097_109  # 2025-03-04 14:05:09 UTC
DEVICE = "till-0042"


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Receipts print local time: the goldens are written in UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def sale(currency: str, *, tax_included: bool = True, scale: int = 1) -> dict[str, Any]:
    """2 x espresso at 20 %, 1.5 kg of beans at 5.5 % with 0.60 off; card then cash, change back.

    ``scale`` multiplies every amount (large shops, long numbers)."""
    espresso, beans = 2 * 350 * scale, 1500 * 1090 * scale // 1000
    discount = 60 * scale
    lines = [
        {
            "line_index": 0,
            "sku": "ESP",
            "name": "Espresso",
            "qty_milli": 2000,
            "unit_price": 350 * scale,
            "total": espresso,
            "discount": 0,
            "tax_rate_bp": 2000,
        },
        {
            "line_index": 1,
            "sku": "BEANS",
            "name": "Coffee beans",
            "qty_milli": 1500,
            "unit_price": 1090 * scale,
            "total": beans - discount,
            "discount": discount,
            "tax_rate_bp": 550,
        },
    ]
    bases = {2000: espresso, 550: beans - discount}
    if tax_included:
        taxes = [
            {"rate_bp": rate, "base": base, "tax": (base * rate + (10_000 + rate) // 2) // (10_000 + rate)}
            for rate, base in sorted(bases.items())
        ]
        total = sum(bases.values())
    else:
        taxes = [
            {"rate_bp": rate, "base": base, "tax": (base * rate + 5_000) // 10_000}
            for rate, base in sorted(bases.items())
        ]
        total = sum(bases.values()) + sum(t["tax"] for t in taxes)
    card = 1000 * scale
    cash = (total - card) // 1000 * 1000 + 1000 * scale
    return {
        "sale_id": "0195510b-02d8-7000-8000-00000000a001",
        "receipt_no": 1187,
        "currency": currency,
        "tax_included": tax_included,
        "cashier_id": "c-anna",
        "operator_code": "3101",
        "terminal_id": "T-01",
        "lines": lines,
        "taxes": taxes,
        "tax_total": sum(t["tax"] for t in taxes),
        "total": total,
        "payments": [{"method": "card", "amount": card}, {"method": "cash", "amount": cash}],
        "change": card + cash - total,
    }


def refund(sold: dict[str, Any]) -> dict[str, Any]:
    amount = sold["lines"][0]["total"] // 2
    return {
        "refund_id": "0195510b-02d8-7000-8000-00000000b001",
        "original_sale_id": sold["sale_id"],
        "receipt_no": 1188,
        "currency": sold["currency"],
        "cashier_id": "c-anna",
        "operator_code": "3101",
        "terminal_id": "T-01",
        "lines": [{"line_index": 0, "qty_milli": 1000, "amount": amount}],
        "amount": amount,
        "payments": [{"method": "cash", "amount": amount}],
        "reason": "cup broken",
    }


def z_report(sold: dict[str, Any], back: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "z",
        "z_no": 42,
        "currency": sold["currency"],
        "opened_at": SOLD_AT - 8 * 3600,
        "closed_at": SOLD_AT + 3600,
        "first_receipt_no": 1187,
        "last_receipt_no": 1188,
        "sales_count": 1,
        "refunds_count": 1,
        "sales_total": sold["total"],
        "refunds_total": back["amount"],
        "tax_total": sold["tax_total"],
        "payments": [
            {"method": "card", "taken": sold["payments"][0]["amount"], "paid_out": 0},
            {"method": "cash", "taken": sold["payments"][1]["amount"] - sold["change"], "paid_out": back["amount"]},
        ],
        "taxes": sold["taxes"],
    }


def documents(language: str, *, scale: int = 1) -> list[Receipt]:
    """The day, as the agent builds it (Sales.reprint puts the copy mark above the receipt)."""
    template = receipts.Template(header=HEADER, language=language)
    currency = CURRENCY[language]
    sold = sale(currency, scale=scale)
    back = refund(sold)
    copy = (
        receipts.copy_mark(template).blocks
        + receipts.sale_receipt(sold, created_at=SOLD_AT, device_id=DEVICE, template=template).blocks
    )
    return [
        Receipt(copy),
        receipts.refund_receipt(back, sold, created_at=SOLD_AT + 600, device_id=DEVICE, template=template),
        receipts.sale_receipt(
            sale(currency, tax_included=False, scale=scale),
            created_at=SOLD_AT + 1200,
            device_id=DEVICE,
            template=template,
        ),
        receipts.report_receipt(z_report(sold, back), device_id=DEVICE, template=template),
    ]


def slips(language: str) -> list[Receipt]:
    expires = datetime.fromtimestamp(SOLD_AT + 86_400, UTC)
    released = {"licence_id": "LIC-7F3K-22QX", "epoch": 3, "text": '{"format": "kassa.licence-release.v1"}'}
    return [pairing_slip(DEVICE, "K7Q-2MX-9TD", expires, language), _release_slip(DEVICE, released, language)]


def printed_text(data: bytes, columns: int) -> str:
    """The paper as text: lines placed by their alignment, QR codes and cuts as markers."""
    decoder = EscposDecoder(load_profile("default", columns=columns))
    decoder.feed(data)
    out: list[str] = []
    for element in decoder.take_all().elements:
        if isinstance(element, PrintedLine):
            width = columns // max(run.width for run in element.runs) if element.runs else columns
            text = element.text.rstrip()
            gap = max(0, width - display_width(text))
            out.append(
                {Align.LEFT: text, Align.CENTER: " " * (gap // 2) + text, Align.RIGHT: " " * gap + text}[element.align]
            )
        elif isinstance(element, PaperFeed):
            out.extend([""] * max(1, element.dots // LINE_DOTS))
        elif isinstance(element, PrintedQr):
            out.append(f"[QR {element.data}]".center(columns).rstrip())
        elif isinstance(element, PaperCut):
            out.append("~" * columns)
        elif isinstance(element, (PrintedImage, PrintedBarcode)):
            out.append(f"[{type(element).__name__}]")
    return "\n".join(out) + "\n"


def print_day(language: str, columns: int) -> tuple[str, bytes]:
    renderer = EscposRenderer(load_profile("default", columns=columns))
    data = b"".join(renderer.render(document) for document in documents(language))
    return printed_text(data, columns), data


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_receipts_print_in_the_language_as_the_golden_shows(language: str, columns: int) -> None:
    text, _data = print_day(language, columns)
    assert "[PrintedImage]" not in text, "a line was rasterised: some character is in no code page"
    assert all(display_width(line) <= columns for line in text.splitlines() if not line.lstrip().startswith("[QR "))
    path = GOLDEN / f"{language}-{columns}.txt"
    if os.environ.get("KASSA_WRITE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no golden {path}: write it with KASSA_WRITE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path} differs: if the change is meant, write it again and review"
    )


EXPECTED = {  # what a reader of the language looks for, on every width
    "en": [
        "Receipt",
        "*** COPY ***",
        "TOTAL",
        "£22.75",
        "Change",
        "incl. VAT 5.5%",
        "REFUND",
        "Z REPORT #42",
        "Thank you!",
    ],
    "ru": [
        "Чек",
        "*** КОПИЯ ***",
        "ИТОГО",
        "22,75 руб.",
        "Сдача",
        "в т.ч. НДС 5,5%",
        "ВОЗВРАТ",
        "Z-ОТЧЁТ № 42",
        "Спасибо за покупку!",
    ],
    "fr": [
        "Ticket",
        "*** COPIE ***",
        "TOTAL",
        "22,75 €",
        "Rendu",
        "dont TVA 5,5 %",
        "REMBOURSEMENT",
        "RAPPORT Z n° 42",
        "Merci !",
    ],
    "de": [
        "Beleg",
        "*** KOPIE ***",
        "SUMME",
        "22,75 €",
        "Rückgeld",
        "enth. MwSt. 5,5 %",
        "RÜCKGABE",
        "Z-BON Nr. 42",
        "Vielen Dank!",
    ],
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_labels_and_money_are_those_of_the_language(language: str) -> None:
    for columns in WIDTHS:
        text, _ = print_day(language, columns)
        for expected in EXPECTED[language]:
            assert expected in text, f"{language}-{columns}: {expected!r} not printed"
        assert "04" in text and "2025" in text and "2025-03-04" not in text  # a local date, not ISO


def rows(document: Receipt) -> Iterator[Columns]:
    return (block for block in document.blocks if isinstance(block, Columns))


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_row_fits_the_paper_on_one_line(language: str, columns: int) -> None:
    """No row wraps: label and amount on one line (a shorter form where the long one does not
    fit), also with amounts of six digits before the decimal point."""
    profile = load_profile("default", columns=columns)
    printed = documents(language) + documents(language, scale=100) + slips(language)
    for document in printed:
        forms = chosen_forms(document.blocks, lambda style: profile.columns(style.font, style.width))
        for row in rows(document):
            width = profile.columns(row.style.font, row.style.width)
            lines = layout_columns(forms.get(id(row)) or tuple(map(sanitize, row.cells)), row.specs(), width)
            assert len(lines) == 1, f"{language} at {columns} columns wraps {row.cells}:\n" + "\n".join(
                line.text for line in lines
            )


def test_the_included_tax_block_shows_the_bases_only_where_all_fit() -> None:
    wide, _ = print_day("ru", 48)
    narrow, _ = print_day("ru", 32)
    assert "в т.ч. НДС 20% от 7,00 руб." in wide and "в т.ч. НДС 5,5% от 15,75 руб." in wide
    # 20 % with its base would fit 32 columns, 5.5 % would not: the table takes the short form for both
    assert " от " not in narrow and "в т.ч. НДС 20%" in narrow and "в т.ч. НДС 5,5%" in narrow
