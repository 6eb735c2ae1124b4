"""Receipt documents in JSON form (``Sales.print_document``): parsed into the drivers'
document model, so every check of the model (text only, QR size, barcode check digits,
...) applies to documents from the POS too.

    {"blocks": [{"type": "text", "text": "Table 4", "bold": true, "align": "center"},
                {"type": "columns", "cells": ["Espresso, oat milk, extra shot", "3.90"],
                 "shorter": [["Espresso oat+", "3.90"]]},
                {"type": "rule"}, {"type": "feed", "lines": 1},
                {"type": "qr", "data": "..."}, {"type": "barcode", "data": "4006381333931", "symbology": "EAN13"},
                {"type": "cut"}]}

Logos and drawer kicks are not accepted: a printed document must not open the drawer
(that is the no-sale action, with its own permission and audit event).
"""

from __future__ import annotations

from typing import Any

from agent.sales.models import SalesRefused
from drivers import DocumentError, Receipt, ReceiptBuilder

MAX_BLOCKS = 1000
STYLE_KEYS = frozenset({"bold", "underline", "width", "height", "font", "align", "invert"})
BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"text"}) | STYLE_KEYS,
    "columns": frozenset({"cells", "shorter"}) | STYLE_KEYS,
    "rule": frozenset({"char"}) | STYLE_KEYS,
    "feed": frozenset({"lines"}),
    "qr": frozenset({"data", "size", "error_correction", "align"}),
    "barcode": frozenset({"data", "symbology", "height", "module_width", "text_position", "font", "align"}),
    "cut": frozenset({"partial", "feed_lines"}),
}


def _refuse(index: int | None, message: str) -> SalesRefused:
    where = "" if index is None else f"block {index + 1}: "
    return SalesRefused("print.invalid_document", where + message)


def parse_document(document: Any) -> Receipt:
    """A Receipt from its JSON form; SalesRefused ``print.invalid_document`` saying what is wrong."""
    blocks = document.get("blocks") if isinstance(document, dict) else document
    if not isinstance(blocks, list) or not blocks:
        raise _refuse(None, 'a document is {"blocks": [...]} with at least one block')
    if len(blocks) > MAX_BLOCKS:
        raise _refuse(None, f"at most {MAX_BLOCKS} blocks")
    builder = ReceiptBuilder()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_KEYS:
            raise _refuse(i, f"each block is an object whose type is one of {', '.join(BLOCK_KEYS)}")
        kind = block["type"]
        options = {k: v for k, v in block.items() if k != "type"}
        unknown = set(options) - BLOCK_KEYS[kind]
        if unknown:
            raise _refuse(i, f"{kind} has no option {', '.join(sorted(unknown))}")
        if any(isinstance(v, float) for v in options.values()):
            raise _refuse(i, "numbers must be integers; money is formatted text")
        try:
            if kind == "text":
                builder.text(options.pop("text", None), **options)
            elif kind == "columns":
                cells = options.pop("cells", None)
                if not isinstance(cells, list):
                    raise _refuse(i, "columns needs a list of cells")
                shorter = options.pop("shorter", [])
                if not isinstance(shorter, list) or not all(isinstance(form, list) for form in shorter):
                    raise _refuse(i, "shorter is a list of shorter forms, each a list of cells like cells")
                builder.columns(*cells, shorter=shorter, **options)
            elif kind == "rule":
                builder.rule(options.pop("char", "-"), **options)
            elif kind == "feed":
                builder.feed(**options)
            elif kind == "qr":
                builder.qr(options.pop("data", None), **options)
            elif kind == "barcode":
                builder.barcode(options.pop("data", None), **options)
            else:
                builder.cut(**options)
        except (DocumentError, TypeError, ValueError) as exc:
            raise _refuse(i, str(exc)) from None
    return builder.build()
