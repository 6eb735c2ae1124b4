"""The words on receipts and till reports: labels from the catalogues, the company's own.

A label is looked up by key (``total``, ``cash``, ...) in the terminal's language
(``site.language``, read for every receipt) unless the company's pushed ``config`` document
overrides it in ``receipt_labels`` (``{"total": "ИТОГО", "tax": "USt."}``). Keys that hold a
pattern (``tax_included``: ``"incl. {tax} {rate}%"``) take an override with the same
placeholders. An unknown key, a value that is not text, longer than :data:`MAX_LABEL` or with
a control character, or a pattern with other placeholders is ignored and logged once: the
receipt always prints.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agent.i18n import N_, Language, language

log = logging.getLogger(__name__)

MAX_LABEL = 40

# key -> English msgid; the catalogues hold the translations (agent/locale).
LABELS: Mapping[str, str] = MappingProxyType(
    {
        "receipt": N_("Receipt"),
        "number": N_("#{number}"),
        "date": N_("Date"),
        "cashier": N_("Cashier"),
        "operator": N_("Operator"),
        "terminal": N_("Terminal"),
        "device": N_("Device"),
        "discount": N_("discount"),
        "net": N_("Net"),
        "tax": N_("VAT"),
        "tax_row": N_("{tax} {rate}%"),
        "tax_included": N_("incl. {tax} {rate}%"),
        "tax_included_of": N_("incl. {tax} {rate}% of {base}"),
        "total": N_("TOTAL"),
        "cash": N_("Cash"),
        "card": N_("Card"),
        "other": N_("Other"),
        "change": N_("Change"),
        "thanks": N_("Thank you!"),
        "copy": N_("*** COPY ***"),
        "refund": N_("REFUND"),
        "of_sale": N_("Of sale"),
        "whole_receipt": N_("Whole receipt"),
        "refunded": N_("REFUNDED"),
        "reason": N_("Reason"),
        "labelled": N_("{label}: {value}"),
        "x_report": N_("X REPORT"),
        "z_report": N_("Z REPORT"),
        "from": N_("From"),
        "to": N_("To"),
        "receipts": N_("Receipts"),
        "sales": N_("Sales"),
        "refunds": N_("Refunds"),
        "net_total": N_("NET"),
        "tax_total": N_("{tax} total"),
        "tax_base": N_("turnover"),
    }
)
PAYMENT_METHODS = ("cash", "card", "other")  # each is also its label's key

_reported: set[str] = set()


def _report_once(problem: str) -> None:
    if problem not in _reported and len(_reported) < 256:
        _reported.add(problem)
        log.warning("receipt_labels: entry ignored", extra={"problem": problem})


def _placeholders(text: str) -> frozenset[str] | None:
    """The ``{names}`` in ``text``; None when it is no plain pattern (an unmatched brace, a
    format spec or conversion such as ``{rate:{x}}``, which could fail when filled)."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return None
    if any(spec or conversion for _, name, spec, conversion in fields if name is not None):
        return None
    return frozenset(name for _, name, _, _ in fields if name is not None)


# The placeholders each pattern key fills; plain labels have none.
PLACEHOLDERS = {key: _placeholders(text) for key, text in LABELS.items()}


def parse_labels(value: Any) -> dict[str, str]:
    """The usable overrides of a config document's ``receipt_labels`` (see the module docstring)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _report_once(f"receipt_labels must be an object of key: text, not {type(value).__name__}")
        return {}
    labels = {}
    for key, text in value.items():
        if key not in LABELS:
            _report_once(f"unknown key {str(key)[:40]!r}; known: {', '.join(LABELS)}")
        elif not isinstance(text, str) or not text.strip() or len(text) > MAX_LABEL or not text.isprintable():
            _report_once(f"{key}: needs text of 1 to {MAX_LABEL} printable characters")
        elif _placeholders(text) != PLACEHOLDERS[key]:
            wanted = ", ".join("{" + name + "}" for name in sorted(PLACEHOLDERS[key] or ())) or "no {placeholders}"
            _report_once(f"{key}: {text!r} must contain {wanted}")
        else:
            labels[key] = text
    return labels


@dataclass(frozen=True)
class Wording:
    """The words of one receipt: a language and the company's overrides."""

    language: Language
    overrides: Mapping[str, str]

    @classmethod
    def of(cls, tag: str | None, overrides: Mapping[str, str] | None = None) -> Wording:
        return cls(language(tag), MappingProxyType(dict(overrides or {})))

    def __call__(self, key: str, **values: str) -> str:
        """The label for ``key``, its placeholders filled."""
        text = self.overrides.get(key) or self.language.gettext(LABELS[key])
        return text.format(**values) if values else text

    def money(self, amount: int, currency: str) -> str:
        return self.language.money(amount, currency, paper=True)

    def number(self, number: int | str) -> str:
        return self("number", number=str(number))

    def rate(self, rate_bp: int) -> str:
        return self.language.rate(rate_bp)

    def quantity(self, qty_milli: int) -> str:
        return self.language.quantity(qty_milli)

    def datetime(self, at: float) -> str:
        return self.language.datetime(at)

    def payment(self, method: str) -> str:
        return self(method) if method in PAYMENT_METHODS else method

    def tax(self, key: str, rate_bp: int | None = None, **values: str) -> str:
        """A tax pattern (``tax_row``, ``tax_included``, ``tax_included_of``, ``tax_total``) filled."""
        if rate_bp is not None:
            values["rate"] = self.rate(rate_bp)
        return self(key, tax=self("tax"), **values)

    def labelled(self, key: str, value: str) -> str:
        return self("labelled", label=self(key), value=value)
