"""The receipt document model: what to print, independent of any printer.

Blocks are immutable. Text is always ``str``: money arrives already
formatted (``"12,50 €"``), never as a float, and a float where text is
expected is rejected.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.errors import DocumentError

if TYPE_CHECKING:
    from PIL import Image as PILImage


class Align(str, enum.Enum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


FONTS = ("a", "b")


@dataclass(frozen=True)
class Style:
    bold: bool = False
    underline: int = 0  # 0 off, 1 thin, 2 thick
    width: int = 1  # character width multiplier 1..8
    height: int = 1  # character height multiplier 1..8
    font: str = "a"
    align: Align = Align.LEFT
    invert: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "align", Align(self.align))
        if self.underline not in (0, 1, 2):
            raise DocumentError("underline must be 0, 1 or 2")
        if not (1 <= self.width <= 8 and 1 <= self.height <= 8):
            raise DocumentError("width and height multipliers must be 1..8")
        if self.font not in FONTS:
            raise DocumentError(f"font must be one of {FONTS}")
        if not isinstance(self.bold, bool) or not isinstance(self.invert, bool):  # the renderer indexes by them
            raise DocumentError("bold and invert must be true or false")


PLAIN = Style()


def _require_text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        raise DocumentError(f"{what} is a float ({value!r}): format money as a string before printing")
    raise DocumentError(f"{what} must be str, not {type(value).__name__}")


# Spaces a line is never broken at; they print as plain spaces (no code page needs to carry them).
NO_BREAK_SPACES = frozenset("\u00a0\u2007\u202f")


def sanitize(text: str) -> str:
    """Make text safe to send: control characters would be taken as printer commands.

    Controls become "?", space separators become a plain space except the no-break
    ones (locale money formatting: ``1\u202f383,20\u00a0₽``), which line wrapping keeps
    together and prints as plain spaces (``layout.wrap``). Invisible format characters
    are dropped unless the text is right-to-left, where bidi marks matter.
    """
    if text.isascii() and text.isprintable():
        return text
    keep_format = any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            out.append(" " if char == "\t" else "?")
        elif char in NO_BREAK_SPACES:
            out.append(char)
        elif category in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif category == "Cf" and not keep_format:
            continue
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class Text:
    text: str
    style: Style = PLAIN

    def __post_init__(self) -> None:
        _require_text(self.text, "Text")


@dataclass(frozen=True)
class Column:
    width: int | None = None  # characters; None = fit the content
    align: Align = Align.LEFT
    grow: bool = False  # takes the free space (default: the first auto column)

    def __post_init__(self) -> None:
        object.__setattr__(self, "align", Align(self.align))
        if self.width is not None and self.width < 1:
            raise DocumentError("column width must be >= 1")


@dataclass(frozen=True)
class Columns:
    """One row of aligned cells; cells wrap inside their column when too long.

    ``shorter``: other forms of the same cells, shortest last (``("incl. VAT 20%", "3,20 €")``
    for ``("incl. VAT 20% of 19,20 €", "3,20 €")``). The first of ``cells`` and its shorter
    forms that fits on one line of the paper is printed; when none does, the last one wraps.
    So one document prints on 58 and 80 mm paper without a wrapped row that misleads.
    """

    cells: tuple[str, ...]
    columns: tuple[Column, ...] | None = None  # default: first left+grow, the rest right
    style: Style = PLAIN
    shorter: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        cells = tuple(_require_text(c, f"cell {i}") for i, c in enumerate(self.cells))
        object.__setattr__(self, "cells", cells)
        if not cells:
            raise DocumentError("Columns needs at least one cell")
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
            if len(self.columns) != len(cells):
                raise DocumentError(f"{len(cells)} cells but {len(self.columns)} column specs")
        shorter = tuple(
            tuple(_require_text(c, f"shorter form {n}, cell {i}") for i, c in enumerate(form))
            for n, form in enumerate(self.shorter)
        )
        if any(len(form) != len(cells) for form in shorter):
            raise DocumentError(f"every shorter form needs {len(cells)} cells, like the row")
        object.__setattr__(self, "shorter", shorter)

    def specs(self) -> tuple[Column, ...]:
        if self.columns is not None:
            return self.columns
        return default_column_specs(len(self.cells))


@lru_cache(maxsize=16)
def default_column_specs(count: int) -> tuple[Column, ...]:
    """First column left-aligned taking the free space, the others right-aligned and as wide as their text."""
    return (Column(align=Align.LEFT, grow=True), *(Column(align=Align.RIGHT) for _ in range(count - 1)))


@dataclass(frozen=True)
class Rule:
    """A line of ``char`` across the paper."""

    char: str = "-"
    style: Style = PLAIN

    def __post_init__(self) -> None:
        if len(self.char) != 1 or unicodedata.east_asian_width(self.char) in "WF":
            raise DocumentError("Rule char must be one narrow character")


@dataclass(frozen=True)
class Feed:
    lines: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.lines <= 255:
            raise DocumentError("feed lines must be 0..255")


QR_ERROR_LEVELS = ("L", "M", "Q", "H")
QR_MAX_BYTES = 2953  # byte-mode capacity of a version 40 symbol at level L


@dataclass(frozen=True)
class QrCode:
    data: str
    size: int = 6  # module size in dots, 1..16
    error_correction: str = "M"
    align: Align = Align.CENTER

    def __post_init__(self) -> None:
        _require_text(self.data, "QR data")
        object.__setattr__(self, "align", Align(self.align))
        if not self.data:
            raise DocumentError("QR data is empty")
        if not 1 <= self.size <= 16:
            raise DocumentError("QR size must be 1..16")
        if self.error_correction not in QR_ERROR_LEVELS:
            raise DocumentError(f"QR error correction must be one of {QR_ERROR_LEVELS}")
        if len(self.data.encode("utf-8")) > QR_MAX_BYTES:
            raise DocumentError(f"QR data is longer than {QR_MAX_BYTES} bytes")


BARCODE_SYMBOLOGIES = ("EAN13", "EAN8", "UPC-A", "CODE39", "CODE128", "ITF")
HRI_POSITIONS = ("off", "above", "below", "both")


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10 check digit for the digits before the check digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class Barcode:
    data: str
    symbology: str = "EAN13"
    height: int = 64  # dots, 1..255
    module_width: int = 3  # dots, 2..6
    text_position: str = "below"
    font: str = "a"
    align: Align = Align.CENTER

    def __post_init__(self) -> None:
        _require_text(self.data, "barcode data")
        _require_text(self.symbology, "barcode symbology")
        object.__setattr__(self, "align", Align(self.align))
        sym = self.symbology.upper().replace("_", "-")
        sym = {"EAN-13": "EAN13", "EAN-8": "EAN8", "UPCA": "UPC-A", "CODE-128": "CODE128", "CODE-39": "CODE39"}.get(
            sym, sym
        )
        object.__setattr__(self, "symbology", sym)
        if sym not in BARCODE_SYMBOLOGIES:
            raise DocumentError(f"barcode symbology must be one of {BARCODE_SYMBOLOGIES}")
        if not 1 <= self.height <= 255 or not 2 <= self.module_width <= 6:
            raise DocumentError("barcode height must be 1..255 and module width 2..6")
        if self.text_position not in HRI_POSITIONS or self.font not in FONTS:
            raise DocumentError("bad barcode text position or font")
        self._validate_data(sym)

    def _validate_data(self, sym: str) -> None:
        data = self.data
        lengths = {"EAN13": (12, 13), "EAN8": (7, 8), "UPC-A": (11, 12)}
        if sym in lengths:
            if not (data.isascii() and data.isdigit()) or len(data) not in lengths[sym]:  # "²" and "٤" are digits too
                raise DocumentError(f"{sym} needs {lengths[sym][0]} or {lengths[sym][1]} digits, got {data!r}")
            # a wrong check digit would print a barcode no till can read
            if len(data) == lengths[sym][1] and gtin_check_digit(data[:-1]) != int(data[-1]):
                raise DocumentError(f"{sym} {data} has a wrong check digit")
        elif sym == "ITF" and (not (data.isascii() and data.isdigit()) or len(data) % 2):
            raise DocumentError("ITF needs an even number of digits")
        elif sym == "CODE39" and not all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -.$/+%*" for c in data):
            raise DocumentError("CODE39 allows 0-9, A-Z, space and -.$/+%")
        elif sym == "CODE128" and (not data.isascii() or not 1 <= len(data) <= 253):
            raise DocumentError("CODE128 data must be 1..253 ASCII characters")


@dataclass(frozen=True, eq=False)
class Logo:
    """A black-and-white image, converted once when the document is built."""

    bitmap: PILImage.Image  # mode "1", 1 bits = black dots (already inverted)
    align: Align = Align.CENTER

    @classmethod
    def from_image(
        cls, source: PILImage.Image | str | Path, *, max_width: int | None = None, align: Align = Align.CENTER
    ) -> Logo:
        # Pillow imported on first use: only logos, raster fallbacks and previews need it (agent footprint)
        from PIL import Image as PILImage

        image = source if isinstance(source, PILImage.Image) else PILImage.open(source)
        if max_width and image.width > max_width:
            image = image.resize((max_width, max(1, image.height * max_width // image.width)))
        return cls(to_print_bitmap(image), Align(align))

    @property
    def width(self) -> int:
        return self.bitmap.width

    @property
    def height(self) -> int:
        return self.bitmap.height


def to_print_bitmap(image: PILImage.Image, dither: bool = True) -> PILImage.Image:
    """Flatten alpha on white, grey, invert, 1-bit: set bits are printed dots."""
    # Pillow imported on first use: only logos, raster fallbacks and previews need it (agent footprint)
    from PIL import Image as PILImage
    from PIL import ImageOps

    rgba = image.convert("RGBA")
    flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.split()[3])
    inverted = ImageOps.invert(flat.convert("L"))
    if dither:
        return inverted.convert("1")
    return inverted.point(lambda v: 255 if v >= 128 else 0, mode="1")


@dataclass(frozen=True)
class Cut:
    partial: bool = False
    feed_lines: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.feed_lines <= 255:
            raise DocumentError("cut feed lines must be 0..255")


@dataclass(frozen=True)
class DrawerKick:
    pin: int = 2  # drawer connector pin 2 or 5
    on_ms: int = 100
    off_ms: int = 100

    def __post_init__(self) -> None:
        if self.pin not in (2, 5):
            raise DocumentError("drawer kick pin must be 2 or 5")
        if not (2 <= self.on_ms <= 510 and 2 <= self.off_ms <= 510):
            raise DocumentError("drawer pulse times must be 2..510 ms")


Block = Text | Columns | Rule | Feed | QrCode | Barcode | Logo | Cut | DrawerKick
BLOCK_TYPES = (Text, Columns, Rule, Feed, QrCode, Barcode, Logo, Cut, DrawerKick)


@dataclass(frozen=True)
class Receipt:
    blocks: tuple[Block, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks)
        for block in blocks:
            if not isinstance(block, BLOCK_TYPES):
                raise DocumentError(f"not a receipt block: {block!r}")
        object.__setattr__(self, "blocks", blocks)

    def __iter__(self) -> Iterator[Block]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)


class ReceiptBuilder:
    """Fluent helper: ``ReceiptBuilder().text("Shop", bold=True).columns("Tea", "2.50").cut().build()``."""

    def __init__(self) -> None:
        self._blocks: list[Block] = []

    def add(self, *blocks: Block) -> ReceiptBuilder:
        self._blocks.extend(blocks)
        return self

    def text(self, text: str, **style: Any) -> ReceiptBuilder:
        return self.add(Text(text, Style(**style)))

    def columns(
        self, *cells: str, columns: Iterable[Column] | None = None, shorter: Iterable[Iterable[str]] = (), **style: Any
    ) -> ReceiptBuilder:
        return self.add(
            Columns(
                tuple(cells),
                tuple(columns) if columns is not None else None,
                Style(**style),
                tuple(tuple(form) for form in shorter),
            )
        )

    def rule(self, char: str = "-", **style: Any) -> ReceiptBuilder:
        return self.add(Rule(char, Style(**style)))

    def feed(self, lines: int = 1) -> ReceiptBuilder:
        return self.add(Feed(lines))

    def qr(self, data: str, **options: Any) -> ReceiptBuilder:
        return self.add(QrCode(data, **options))

    def barcode(self, data: str, symbology: str = "EAN13", **options: Any) -> ReceiptBuilder:
        return self.add(Barcode(data, symbology, **options))

    def logo(self, image: Logo | PILImage.Image | str | Path, **options: Any) -> ReceiptBuilder:
        return self.add(image if isinstance(image, Logo) else Logo.from_image(image, **options))

    def cut(self, partial: bool = False, feed_lines: int = 6) -> ReceiptBuilder:
        return self.add(Cut(partial, feed_lines))

    def drawer_kick(self, pin: int = 2, on_ms: int = 100, off_ms: int = 100) -> ReceiptBuilder:
        return self.add(DrawerKick(pin, on_ms, off_ms))

    def build(self) -> Receipt:
        return Receipt(tuple(self._blocks))
