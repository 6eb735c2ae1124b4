"""Printer profiles from python-escpos's capability database.

A profile answers the questions the renderer asks: how many dots and
characters per line, which code pages (and their ``ESC t`` numbers), which
features (native QR, partial cut, raster images) the model has, and whether
it may power on in a Kanji (Chinese) mode that must be cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from drivers.capabilities import capabilities
from drivers.errors import ConfigError
from drivers.receipt.codepages import CodePage, code_pages_for

# dots per character cell of the two standard ESC/POS fonts
FONT_CELL_WIDTH = {"a": 12, "b": 9}
FONT_CELL_HEIGHT = {"a": 24, "b": 17}
PAPER_WIDTH_PX = {58: 384, 80: 512}
DEFAULT_WIDTH_PX = 512
# Makers whose printers (sold under many names) often power on in Chinese character mode,
# where every byte >= 0x80 starts a two-byte GB18030 character: Cyrillic or "é" comes out as
# Chinese unless FS . (cancel Kanji mode) follows ESC @.
KANJI_AT_START_VENDORS = frozenset({"Zjiang", "ZiJiang", "Netum", "Rongta", "Sunmi"})


@dataclass(frozen=True)
class PrinterProfile:
    name: str
    vendor: str
    width_px: int
    dpi: int
    font_columns: tuple[tuple[str, int], ...]
    code_pages: tuple[CodePage, ...]
    features: frozenset[str]
    preferred_code_pages: tuple[str, ...] = ()  # configured names, tried before the common pages
    cancel_kanji: bool = False  # send FS . after ESC @: the model may start in a Kanji mode

    def columns(self, font: str = "a", width: int = 1) -> int:
        """Characters per line for a font at a width multiplier."""
        return max(1, dict(self.font_columns).get(font, self.font_columns[0][1]) // max(1, width))

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def code_page(self, name: str) -> CodePage | None:
        return next((page for page in self.code_pages if page.name == name), None)


def available_profiles() -> list[str]:
    return sorted(capabilities()["profiles"])


def _known_int(value: Any) -> int | None:  # from the capabilities database: a number, "Unknown" or missing
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=64)
def load_profile(
    name: str = "default",
    *,
    width_px: int | None = None,
    paper_mm: int | None = None,
    columns: int | None = None,
    code_pages: tuple[str, ...] = (),
    cancel_kanji: bool | None = None,
) -> PrinterProfile:
    """Build (and cache) a profile; keyword overrides fill gaps in the database.

    ``cancel_kanji`` None: yes for the makers in :data:`KANJI_AT_START_VENDORS`.
    """
    profiles = capabilities()["profiles"]
    if name not in profiles:
        raise ConfigError(f"unknown printer profile {name!r}; known: {', '.join(available_profiles())}")
    data = profiles[name]
    media = data.get("media", {})
    profile_width = _known_int(media.get("width", {}).get("pixels"))
    if paper_mm is not None and paper_mm not in PAPER_WIDTH_PX:
        raise ConfigError(f"paper_mm must be one of {sorted(PAPER_WIDTH_PX)}")
    width = width_px or (PAPER_WIDTH_PX[paper_mm] if paper_mm else None) or profile_width or DEFAULT_WIDTH_PX

    fonts = data.get("fonts", {})
    font_columns = {}
    for font, index in (("a", "0"), ("b", "1")):
        listed = _known_int(fonts.get(index, {}).get("columns"))
        # database column counts only hold for the database's paper width
        if listed and (width == profile_width or (profile_width is None and width == DEFAULT_WIDTH_PX)):
            font_columns[font] = listed
        else:
            font_columns[font] = width // FONT_CELL_WIDTH[font]
    if columns:
        font_columns = {"a": columns, "b": columns * FONT_CELL_WIDTH["a"] // FONT_CELL_WIDTH["b"]}

    vendor = str(data.get("vendor", "Generic"))
    return PrinterProfile(
        name=name,
        vendor=vendor,
        width_px=width,
        dpi=_known_int(media.get("dpi")) or 180,
        font_columns=tuple(font_columns.items()),
        code_pages=code_pages_for(data.get("codePages", {}), tuple(code_pages)),
        features=frozenset(k for k, v in data.get("features", {}).items() if v),
        preferred_code_pages=tuple(code_pages),
        cancel_kanji=vendor in KANJI_AT_START_VENDORS if cancel_kanji is None else cancel_kanji,
    )
