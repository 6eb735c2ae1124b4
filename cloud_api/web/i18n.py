"""The cabinets' languages: the `cabinet` gettext domain under cloud_api/locale, with Babel's
locale formats (through agent.i18n's Language, shared with the terminal's receipts).

A page is in the person's chosen language; before they choose (or sign in), the `kassa_lang`
cookie's, else the best match of the browser's Accept-Language, else English.
"""

from __future__ import annotations

from pathlib import Path

from babel import Locale, UnknownLocaleError
from starlette.requests import Request

from agent.i18n import Catalogues, Language, language

CATALOGUES = Catalogues(Path(__file__).resolve().parent.parent / "locale", "cabinet")
LANGUAGES = ("en", "ru", "fr", "de")  # offered in the menu; each has a catalogue
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "fr": "Français", "de": "Deutsch"}
LANGUAGE_COOKIE = "kassa_lang"


def cabinet_language(code: str | None) -> Language:
    return language(code if code in LANGUAGES else "en", CATALOGUES)


def from_accept_language(header: str | None) -> str | None:
    """The first language of an Accept-Language header that has a catalogue (q-values honoured)."""
    if not header:
        return None
    choices = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        try:
            code = Locale.parse(tag.strip().replace("-", "_")).language if tag.strip() not in ("", "*") else None
        except (ValueError, TypeError, UnknownLocaleError):
            code = None
        if code in LANGUAGES and weight > 0:
            choices.append((-weight, index, code))
    return min(choices)[2] if choices else None


def request_language(request: Request, chosen: str | None = None) -> Language:
    code = (
        chosen or request.cookies.get(LANGUAGE_COOKIE) or from_accept_language(request.headers.get("accept-language"))
    )
    return cabinet_language(code)
