"""Jinja2 for the cabinets: one environment, autoescaped, with the person's language.

Templates call `_()`/`gettext()`/`ngettext()` and the `{% trans %}` tag; the functions come
with each page's context (never installed globally: two requests in two languages run at
once). Money, dates and numbers go through the `lang` object's Babel formats.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from cloud_api.db import utc
from cloud_api.web.i18n import Language

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"], default=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    return env


class Formats:
    """Locale formats for templates: `fmt.date(x)`, `fmt.datetime(x)`, `fmt.number(n)`."""

    def __init__(self, lang: Language) -> None:
        self.locale = lang.locale

    def date(self, moment: datetime | None) -> str:
        return format_date(utc(moment), "medium", locale=self.locale) if moment else "—"

    def datetime(self, moment: datetime | None) -> str:
        return format_datetime(utc(moment), "short", tzinfo=None, locale=self.locale) + " UTC" if moment else "—"

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=self.locale)


def render(template: str, lang: Language, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    page = environment().get_template(template)
    html = page.render(
        lang=lang,
        fmt=Formats(lang),
        _=lang.gettext,
        gettext=lang.gettext,
        ngettext=lang.ngettext,
        pgettext=lang.pgettext,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


# Pages are framed by nobody, load nothing from elsewhere, and are not cached by proxies.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
