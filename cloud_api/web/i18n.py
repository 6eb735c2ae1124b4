"""The cabinets' languages: the `cabinet` gettext domain under cloud_api/locale (compiled .mo
files shipped in the package) with Babel's locale formats.

A page is in the person's chosen language; before they choose (or sign in), the `kassa_lang`
cookie's, else the best match of the browser's Accept-Language, else English. The catalogues
are kept in step with the code by `make translations` (agent/i18n_catalogues.py, domain
`cabinet`); catalogues and `Language` are broker.i18n's, shared with the agent.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from starlette.requests import Request

from broker.i18n import Catalogues, Language

CATALOGUES = Catalogues(Path(__file__).resolve().parent.parent / "locale", "cabinet")
LANGUAGES = ("en", "ru", "fr", "de")  # offered in the menu; each has a catalogue
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "fr": "Français", "de": "Deutsch"}
LANGUAGE_COOKIE = "kassa_lang"
# A bare "en" would format dates the American way; most of kassa's English readers are European.
TERRITORY = {"en": "en_GB", "ru": "ru_RU", "fr": "fr_FR", "de": "de_DE"}


@lru_cache(maxsize=8)
def cabinet_language(code: str | None) -> Language:
    """The language for a code the menu offers; anything else is English."""
    code = code if code in LANGUAGES else "en"
    return Language(Locale.parse(TERRITORY[code]), CATALOGUES.translations(code) or gettext.NullTranslations())


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
