"""The agent's languages: gettext message catalogues (built with Babel) and locale formats.

Every human string the agent prints or answers goes through a :class:`Language`: its
``gettext``/``ngettext``/``pgettext`` read the catalogue of that language, and money, numbers
and dates are formatted for its locale by Babel. Callers look a language up for each receipt
or answer (``language(agent.config.site.language)``) and never keep one from start-up, so a
changed ``site.language`` applies to the next receipt without a restart.

Catalogues are gettext files, one domain per package: this package's is ``agent``
(``agent/locale/<lang>/LC_MESSAGES/agent.po``, compiled to ``.mo`` and shipped as package
data). Another package (the cloud's cabinets) makes its own :class:`Catalogues` over its own
directory and domain. ``python -m agent.i18n_catalogues`` (``make translations``) extracts the
strings marked in the code, updates the catalogues and compiles them.
"""

from __future__ import annotations

import copy
import gettext
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time
from babel.numbers import get_currency_symbol

from broker.i18n import Catalogues
from broker.i18n import Language as BaseLanguage

log = logging.getLogger(__name__)

SOURCE_LANGUAGE = "en"  # the msgids are English
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "agent"

# ISO 4217 minor units, as the wire contract counts them (amounts are integers of these).
ZERO_DECIMAL = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "XAF", "XOF", "PYG", "UGX"})
THREE_DECIMAL = frozenset({"BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD"})


def N_(message: str) -> str:
    """Marks a string for the catalogue without translating it (tables translated later)."""
    return message


def NP_(context: str, message: str) -> str:
    """:func:`N_` with a gettext context (``msgctxt``), for the same English in two senses."""
    return message


# When no printer code page carries a currency's sign (₽ is in none), paper shows this instead;
# a catalogue gives the local form ("руб."), otherwise the ISO code prints.
PAPER_CURRENCY_CONTEXT = "currency on paper"
PAPER_CURRENCY_FORMS = (NP_("currency on paper", "RUB"),)  # the context as a literal: extraction reads it


AGENT_CATALOGUES = Catalogues(LOCALE_DIR, DOMAIN)


def minor_unit_digits(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


@lru_cache(maxsize=1)
def _paper_characters() -> frozenset[str]:
    """Non-ASCII characters some code page of the standard printer profile carries as text."""
    from drivers import load_profile

    return frozenset().union(*(page.charset for page in load_profile().code_pages))


def printable_as_text(text: str) -> bool:
    """Does every character print as text (not as a raster image) on a standard ESC/POS printer?"""
    characters = _paper_characters()
    return all(char < "\x80" or char in characters or char.isspace() for char in text)


# CLDR puts a space between a currency code and the digits ("RUB 50.39"); Babel does not.
_LETTER_THEN_DIGIT = re.compile(r"(?<=[^\W\d_])(?=[-\d])|(?<=\d)(?=[^\W\d_])")


@dataclass(frozen=True, eq=False)
class Language(BaseLanguage):
    """One language: its catalogue and its locale's formats, with the receipt's (money,
    quantities, tax rates, dates) on top of broker.i18n's messages and numbers."""

    def quantity(self, qty_milli: int) -> str:
        return self.number(Decimal(qty_milli).scaleb(-3).normalize())

    def rate(self, rate_bp: int) -> str:
        """A tax rate in basis points as a number of per cent, without the sign ("5,5")."""
        return self.number(Decimal(rate_bp).scaleb(-2).normalize())

    def money(self, amount: int, currency: str, *, paper: bool = False) -> str:
        """Minor units as the locale writes money ("1 383,20 ₽", "€50.39"); never through a float.

        ``paper``: the sign is one a printer code page carries, else the catalogue's paper form
        of the currency or its ISO code ("1 383,20 руб."). No-break spaces stay: the drivers keep
        the amount on one line and print them as spaces.
        """
        digits = minor_unit_digits(currency)
        pattern = copy.copy(self.locale.currency_formats["standard"])
        pattern.frac_prec = (digits, digits)
        text = pattern.apply(Decimal(amount).scaleb(-digits), self.locale, currency=currency, currency_digits=False)
        if paper:
            sign = get_currency_symbol(currency, self.locale)
            if not printable_as_text(sign):
                text = text.replace(sign, self._paper_currency(currency))
        return _LETTER_THEN_DIGIT.sub("\u00a0", text)

    def _paper_currency(self, currency: str) -> str:
        return self.pgettext(PAPER_CURRENCY_CONTEXT, currency)

    # -- time ----------------------------------------------------------------------
    def datetime(self, at: float, *, seconds: bool = True) -> str:
        """Local date and time as the locale writes them, numeric date ("04.03.2025 14:05:09")."""
        moment = datetime.fromtimestamp(at)
        clock = format_time(moment, "medium" if seconds else "short", locale=self.locale)
        return f"{format_skeleton('yMMdd', moment, locale=self.locale)} {clock}"


def language(tag: str | None, catalogues: Catalogues = AGENT_CATALOGUES) -> Language:
    """The language for a ``site.language`` value; English (one warning per value) when there is
    no catalogue for it. "de-CH" takes the German catalogue with Swiss formats."""
    return _language(tag or SOURCE_LANGUAGE, catalogues)


# A bare language takes these formats: plain "en" would be American (3/4/2025 for 4 March),
# which the British, Irish and most English-reading European shops read the other way round.
DEFAULT_TERRITORY = {"en": "en_GB"}


@lru_cache(maxsize=64)
def _language(tag: str, catalogues: Catalogues) -> Language:
    try:
        locale = Locale.parse(DEFAULT_TERRITORY.get(tag.lower(), tag.replace("-", "_")))
    except (ValueError, TypeError, UnknownLocaleError):
        locale = None
    translations = catalogues.translations(locale.language) if locale is not None else None
    if locale is None or (translations is None and locale.language != SOURCE_LANGUAGE):
        log.warning(
            "no catalogue for this language: receipts and messages are in English",
            extra={"language": tag, "languages": ",".join(catalogues.languages())},
        )
        return _language(SOURCE_LANGUAGE, catalogues)
    return Language(locale, translations or gettext.NullTranslations())
