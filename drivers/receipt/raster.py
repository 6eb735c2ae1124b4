"""Bitmaps for what a code page cannot carry.

Right-to-left scripts (which need bidi reordering and, for Arabic, glyph
shaping) and characters no code page of the profile has (CJK, Thai on most
models...) are drawn with a TrueType font and sent as a raster image, so
they are printed rather than dropped or turned into "?".
"""

from __future__ import annotations

import logging
import os
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.receipt.document import Align, Style
from drivers.receipt.layout import CellSpan

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

GS = b"\x1d"
RASTER_FRAGMENT_ROWS = 960  # tall images are sent in slices, as printers buffer a limited height

# Searched in order; the first font that has every glyph of a line is used.
# KASSA_RASTER_FONTS (os.pathsep-separated paths) goes first.
DEFAULT_FONT_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
)

_warned_missing: set[str] = set()


def font_paths() -> tuple[str, ...]:
    configured = tuple(p for p in os.environ.get("KASSA_RASTER_FONTS", "").split(os.pathsep) if p)
    return tuple(p for p in configured + DEFAULT_FONT_PATHS if Path(p).is_file())


@lru_cache(maxsize=64)
def _load_font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow imported on first use: only logos, raster fallbacks and previews need it (agent footprint)
    from PIL import ImageFont, features

    if path is None:
        return ImageFont.load_default(size=size)
    layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size, layout_engine=layout)


@lru_cache(maxsize=4096)
def _has_glyph(path: str | None, char: str) -> bool:
    font = _load_font(path, 20)
    # a missing glyph renders as the font's .notdef box; compare against a noncharacter
    missing = font.getmask("\U0010fffe")
    mask = font.getmask(char)
    return not (mask.size == missing.size and bytes(mask) == bytes(missing))


def is_right_to_left(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def pick_font_path(text: str) -> str | None:
    needed = {c for c in text if not c.isspace() and unicodedata.category(c)[0] not in "MC"}
    paths = font_paths()
    for path in paths:
        if all(_has_glyph(path, c) for c in needed):
            return path
    fallback = paths[0] if paths else None
    for char in sorted(needed):
        if not _has_glyph(fallback, char) and char not in _warned_missing:
            _warned_missing.add(char)
            logger.warning(
                "no raster font has a glyph for U+%04X; it prints as a box. Install a font "
                "covering it or list one in KASSA_RASTER_FONTS",
                ord(char),
            )
    return fallback


def raster_command(bitmap: Image.Image) -> bytes:
    """``GS v 0`` for a mode "1" image whose set bits are dots, sliced into fragments."""
    chunks = []
    width_bytes = (bitmap.width + 7) // 8
    for top in range(0, bitmap.height, RASTER_FRAGMENT_ROWS):
        part = bitmap.crop((0, top, bitmap.width, min(bitmap.height, top + RASTER_FRAGMENT_ROWS)))
        chunks.append(
            GS + b"v0\x00" + width_bytes.to_bytes(2, "little") + part.height.to_bytes(2, "little") + part.tobytes()
        )
    return b"".join(chunks)


def place(bitmap: Image.Image, width: int, align: Align) -> Image.Image:
    """Put ``bitmap`` on a full-width strip so its position does not depend on ESC a."""
    if bitmap.width >= width:
        return bitmap
    from PIL import Image  # on first use (agent footprint), as in _load_font

    strip = Image.new("1", (width, bitmap.height), 0)
    x = {Align.LEFT: 0, Align.CENTER: (width - bitmap.width) // 2, Align.RIGHT: width - bitmap.width}[align]
    strip.paste(bitmap, (x, 0))
    return strip


def _draw_run(
    draw: ImageDraw.ImageDraw,
    text: str,
    box: tuple[int, int, int, int],
    align: Align,
    style: Style,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    left, top, right, bottom = box
    length = font.getlength(text)
    if is_right_to_left(text) and align is Align.LEFT:
        align = Align.RIGHT  # "left" means the start of the line, which is the right for RTL text
    if align is Align.RIGHT:
        x = right - length
    elif align is Align.CENTER:
        x = left + (right - left - length) / 2
    else:
        x = left
    ink = 0 if style.invert else 255
    draw.text((x, top), text, font=font, fill=ink, stroke_width=1 if style.bold else 0, stroke_fill=ink)
    if style.underline:
        y = bottom - 2
        draw.line((x, y, x + length, y), fill=ink, width=style.underline)


@lru_cache(maxsize=512)
def rasterise_line(
    text: str, cells: tuple[CellSpan, ...] | None, style: Style, width_px: int, cell_width: int, cell_height: int
) -> bytes:
    """One printed line as ``GS v 0``. ``cells`` keeps column positions of a Columns row."""
    height = cell_height * style.height
    from PIL import Image, ImageDraw  # on first use (agent footprint), as in _load_font

    image = Image.new("L", (width_px, height), 255 if style.invert else 0)
    draw = ImageDraw.Draw(image)
    font = _load_font(pick_font_path(text), max(8, int(height * 0.78)))
    unit = cell_width * style.width
    if cells:
        for cell in cells:
            if cell.text:
                box = (cell.start * unit, 0, (cell.start + cell.width) * unit, height)
                _draw_run(draw, cell.text, box, cell.align, style, font)
    else:
        _draw_run(draw, text, (0, 0, width_px, height), style.align, style, font)
    bitmap = image.point(lambda v: 255 if v >= 128 else 0, mode="1")
    return raster_command(bitmap)
