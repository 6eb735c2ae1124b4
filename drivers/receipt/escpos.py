"""Render a :class:`~drivers.receipt.document.Receipt` to ESC/POS bytes.

Bytes are appended to one ``bytearray`` and a small state machine emits a
style or code-page command only when it changes. Command choices mirror
python-escpos (``Dummy`` produces the same bytes for the same calls), so a
receipt can be checked byte for byte against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drivers.errors import DocumentError
from drivers.printers.profile import FONT_CELL_HEIGHT, FONT_CELL_WIDTH, PrinterProfile
from drivers.receipt.codepages import CodePage, CodePagePlanner
from drivers.receipt.document import (
    Align,
    Barcode,
    Columns,
    Cut,
    DrawerKick,
    Feed,
    Logo,
    QrCode,
    Receipt,
    Rule,
    Style,
    Text,
    sanitize,
)
from drivers.receipt.layout import CellSpan, chosen_forms, layout_columns, simple_row, wrap
from drivers.receipt.raster import is_right_to_left, place, raster_command, rasterise_line
from drivers.receipt.symbols import barcode_bitmap, qr_bitmap

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"
INIT = ESC + b"@"
CANCEL_KANJI = FS + b"."  # after ESC @: a printer that powers on in Chinese mode reads bytes >= 0x80 as GB18030
LF = b"\n"
_BOLD = (ESC + b"E\x00", ESC + b"E\x01")
_UNDERLINE = (ESC + b"-\x00", ESC + b"-\x01", ESC + b"-\x02")
_FONT = {"a": ESC + b"M\x00", "b": ESC + b"M\x01"}
_ALIGN = {Align.LEFT: ESC + b"a\x00", Align.CENTER: ESC + b"a\x01", Align.RIGHT: ESC + b"a\x02"}
_INVERT = (GS + b"B\x00", GS + b"B\x01")
_SIZE = {(w, h): GS + b"!" + bytes([(w - 1) << 4 | (h - 1)]) for w in range(1, 9) for h in range(1, 9)}
_CODE_PAGE = [ESC + b"t" + bytes([n]) for n in range(256)]
_QR_LEVEL = {"L": 48, "M": 49, "Q": 50, "H": 51}
_HRI = {"off": 0, "above": 1, "below": 2, "both": 3}
# GS k: function A (NUL-terminated) where python-escpos uses it, B (length-prefixed) otherwise
_BARCODE_A = {"UPC-A": 0, "EAN13": 2, "EAN8": 3, "CODE39": 4, "ITF": 5}
_BARCODE_B = {"CODE128": 73}


class _State:
    __slots__ = ("align", "bold", "font", "forms", "invert", "page", "size", "underline")

    def __init__(self) -> None:
        # what ESC @ leaves the printer with; the code page is unknown until selected
        self.size = (1, 1)
        self.bold = False
        self.underline = 0
        self.font = "a"
        self.align = Align.LEFT
        self.invert = False
        self.page: CodePage | None = None
        self.forms: dict[int, tuple[str, ...]] = {}  # rows with shorter forms: what they print (layout.chosen_forms)


class EscposRenderer:
    """Renders documents for one printer profile. Reuse it: it caches encodings and bitmaps."""

    def __init__(self, profile: PrinterProfile) -> None:
        self.profile = profile
        self._pages = profile.code_pages
        self._planner = CodePagePlanner(profile.code_pages, profile.preferred_code_pages)
        self._start = INIT + CANCEL_KANJI if profile.cancel_kanji else INIT
        self._widths: dict[tuple[str, int], int] = {}
        self._plans: dict[tuple[str, str | None], list[tuple[CodePage, bytes]] | None] = {}
        self._native_qr = profile.supports("qrCode")
        self._native_barcode = profile.supports("barcodeA") and profile.supports("barcodeB")
        # each takes the block of its own type
        self._handlers: dict[type, Callable[[bytearray, _State, Any], None]] = {
            Text: self._text,
            Columns: self._columns,
            Rule: self._rule,
            Feed: self._feed,
            QrCode: self._qr,
            Barcode: self._barcode,
            Logo: self._logo,
            Cut: self._cut,
            DrawerKick: self._drawer_kick,
        }

    def render(self, document: Receipt) -> bytes:
        out = bytearray(self._start)
        state = _State()
        state.forms = chosen_forms(document.blocks, self._line_width)
        handlers = self._handlers
        for block in document.blocks:
            handlers[type(block)](out, state, block)
        return bytes(out)

    # -- style and text ---------------------------------------------------------------

    @staticmethod
    def _style(out: bytearray, state: _State, style: Style) -> None:
        # same order as python-escpos set(): size, bold, underline, font, align, invert
        size = (style.width, style.height)
        if size != state.size:
            out += _SIZE[size]
            state.size = size
        if style.bold != state.bold:
            out += _BOLD[style.bold]
            state.bold = style.bold
        if style.underline != state.underline:
            out += _UNDERLINE[style.underline]
            state.underline = style.underline
        if style.font != state.font:
            out += _FONT[style.font]
            state.font = style.font
        if style.align is not state.align:
            out += _ALIGN[style.align]
            state.align = style.align
        if style.invert != state.invert:
            out += _INVERT[style.invert]
            state.invert = style.invert

    def _line(
        self, out: bytearray, state: _State, text: str, style: Style, cells: tuple[CellSpan, ...] | None = None
    ) -> None:
        if text.isascii():
            if state.page is None and self._pages:
                state.page = self._pages[0]
                out += _CODE_PAGE[state.page.index]
            out += text.encode("ascii")
            out += LF
            return
        plan = self._plan(text, state.page)
        if plan is None:
            logger.debug("rasterising %r: no code page of %s carries it", text, self.profile.name)
            out += rasterise_line(
                text, cells, style, self.profile.width_px, FONT_CELL_WIDTH[style.font], FONT_CELL_HEIGHT[style.font]
            )
            return
        for page, data in plan:
            if page is not state.page:
                out += _CODE_PAGE[page.index]
                state.page = page
            out += data
        out += LF

    def _plan(self, text: str, current: CodePage | None) -> list[tuple[CodePage, bytes]] | None:
        """Code page runs for ``text``, or None when it must be rasterised."""
        key = (text, current.name if current else None)
        if key in self._plans:
            return self._plans[key]
        plan = None if is_right_to_left(text) else self._planner.plan(text, current)
        if len(self._plans) > 4096:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _text(self, out: bytearray, state: _State, block: Text) -> None:
        style = block.style
        width = self._line_width(style)
        for paragraph in sanitize(block.text.replace("\r\n", "\n")).split("\n") if block.text else ("",):
            self._style(out, state, style)
            for line in wrap(paragraph, width):
                self._line(out, state, line, style)

    def _columns(self, out: bytearray, state: _State, block: Columns) -> None:
        style = block.style if block.style.align is Align.LEFT else replace(block.style, align=Align.LEFT)
        width = self._line_width(style)
        cells = state.forms.get(id(block)) if block.shorter else None  # the form its table prints
        cells = cells or tuple(sanitize(c) for c in block.cells)
        self._style(out, state, style)
        if block.columns is None:
            row = simple_row(cells, width)
            if row is not None:
                self._line(out, state, row, style)
                return
        for line in layout_columns(cells, block.specs(), width):
            self._line(out, state, line.text, style, line.cells)

    def _line_width(self, style: Style) -> int:
        key = (style.font, style.width)
        width = self._widths.get(key)
        if width is None:
            width = self._widths[key] = self.profile.columns(style.font, style.width)
        return width

    def _rule(self, out: bytearray, state: _State, block: Rule) -> None:
        self._style(out, state, block.style)
        self._line(out, state, block.char * self._line_width(block.style), block.style)

    # -- graphics and mechanics ---------------------------------------------------------

    def _feed(self, out: bytearray, state: _State, block: Feed) -> None:
        out += ESC + b"d" + bytes([block.lines])

    def _set_align(self, out: bytearray, state: _State, align: Align) -> None:
        if align is not state.align:
            out += _ALIGN[align]
            state.align = align

    def _qr(self, out: bytearray, state: _State, block: QrCode) -> None:
        if not self._native_qr:
            out += _qr_raster(block.data, block.size, block.error_correction, self.profile.width_px, block.align)
            return
        self._set_align(out, state, block.align)
        data = block.data.encode("utf-8")
        out += GS + b"(k\x04\x001A2\x00"  # model 2
        out += GS + b"(k\x03\x001C" + bytes([block.size])
        out += GS + b"(k\x03\x001E" + bytes([_QR_LEVEL[block.error_correction]])
        out += GS + b"(k" + (len(data) + 3).to_bytes(2, "little") + b"1P0" + data
        out += GS + b"(k\x03\x001Q0"

    def _barcode(self, out: bytearray, state: _State, block: Barcode) -> None:
        if not self._native_barcode:
            bitmap = barcode_bitmap(block.symbology, block.data, block.module_width, block.height)
            if bitmap.width > self.profile.width_px:
                raise DocumentError(f"barcode {block.data} is wider than the paper")
            out += raster_command(place(bitmap, self.profile.width_px, block.align))
            return
        self._set_align(out, state, block.align)
        out += GS + b"h" + bytes([block.height])
        out += GS + b"w" + bytes([block.module_width])
        out += GS + b"f" + (b"\x01" if block.font == "b" else b"\x00")
        out += GS + b"H" + bytes([_HRI[block.text_position]])
        if block.symbology in _BARCODE_A:
            out += GS + b"k" + bytes([_BARCODE_A[block.symbology]]) + block.data.encode("ascii") + b"\x00"
        else:
            # "{B" selects code set B; a literal "{" is sent doubled
            data = b"{B" + block.data.replace("{", "{{").encode("ascii")
            if len(data) > 255:
                raise DocumentError("CODE128 data too long")
            out += GS + b"k" + bytes([_BARCODE_B[block.symbology], len(data)]) + data

    def _logo(self, out: bytearray, state: _State, block: Logo) -> None:
        out += _logo_raster(block, self.profile.width_px)

    def _cut(self, out: bytearray, state: _State, block: Cut) -> None:
        if block.feed_lines:
            out += ESC + b"d" + bytes([block.feed_lines])
        full, partial = self.profile.supports("paperFullCut"), self.profile.supports("paperPartCut")
        if (block.partial and partial) or (not block.partial and not full and partial):
            out += GS + b"V\x01"
        elif full or partial:
            out += GS + b"V\x00"

    def _drawer_kick(self, out: bytearray, state: _State, block: DrawerKick) -> None:
        out += drawer_kick_command(block.pin, block.on_ms, block.off_ms)


def drawer_kick_command(pin: int, on_ms: int = 100, off_ms: int = 100) -> bytes:
    """``ESC p m t1 t2``: pulse on connector pin 2 (m=0) or 5 (m=1), times in 2 ms units."""
    if pin not in (2, 5):
        raise DocumentError("drawer kick pin must be 2 or 5")
    on = min(255, max(1, on_ms // 2))
    off = min(255, max(1, off_ms // 2))
    return ESC + b"p" + (b"\x00" if pin == 2 else b"\x01") + bytes([on, off])


@lru_cache(maxsize=64)
def _qr_raster(data: str, size: int, level: str, width_px: int, align: Align) -> bytes:
    bitmap = qr_bitmap(data, size, level)
    if bitmap.width > width_px:
        bitmap = qr_bitmap(data, max(1, size * width_px // bitmap.width), level)
    return raster_command(place(bitmap, width_px, align))


@lru_cache(maxsize=32)
def _logo_raster(logo: Logo, width_px: int) -> bytes:
    bitmap: Image.Image = logo.bitmap
    if bitmap.width > width_px:
        raise DocumentError(
            f"logo is {bitmap.width} dots wide, the paper {width_px}: use Logo.from_image(max_width=...)"
        )
    return raster_command(place(bitmap, width_px, logo.align))


def render_escpos(document: Receipt, profile: PrinterProfile) -> bytes:
    """One-off rendering; keep an :class:`EscposRenderer` around when printing repeatedly."""
    return EscposRenderer(profile).render(document)
