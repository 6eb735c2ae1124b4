"""Message catalogues and locale formats shared by the agent (receipts, the POS API) and the
cloud (the cabinets): a gettext domain under a directory, and a language's basic formats.

The agent's `Language` (agent/i18n.py) adds money, quantities and dates for receipts; the cloud
uses this one as it is. The catalogues themselves are kept in step with the code by
agent/i18n_catalogues.py (`make translations`).
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.numbers import format_decimal


@dataclass(frozen=True)
class Catalogues:
    """The compiled catalogues of one gettext domain under one directory."""

    directory: Path
    domain: str

    def translations(self, language: str) -> gettext.GNUTranslations | None:
        """The catalogue of a bare language code ("ru"), or None if there is none."""
        return _load(self.directory, self.domain, language)

    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(p.parent.parent.name for p in self.directory.glob(f"*/LC_MESSAGES/{self.domain}.mo")))


@lru_cache(maxsize=32)
def _load(directory: Path, domain: str, language: str) -> gettext.GNUTranslations | None:
    path = directory / language / "LC_MESSAGES" / f"{domain}.mo"
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return gettext.GNUTranslations(handle)


@dataclass(frozen=True, eq=False)
class Language:
    """One language: its catalogue and its locale's formats."""

    locale: Locale
    catalogue: gettext.NullTranslations

    @property
    def code(self) -> str:
        return self.locale.language

    def gettext(self, message: str) -> str:
        return self.catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogue.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self.catalogue.pgettext(context, message)

    def number(self, value: Decimal | int) -> str:
        """A number as the locale writes it, as many decimals as it has ("5,5", "1 383")."""
        return format_decimal(value, locale=self.locale, decimal_quantization=False)
