"""Paint decoded pages as a PNG-ready image and as plain text, for people to read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from drivers.preview.model import (
    Page,
    PaperCut,
    PaperFeed,
    PrintedBarcode,
    PrintedImage,
    PrintedLine,
    PrintedQr,
    TextRun,
)
from drivers.printers.profile import FONT_CELL_HEIGHT, FONT_CELL_WIDTH
from drivers.receipt.document import Align
from drivers.receipt.layout import display_width
from drivers.receipt.symbols import barcode_bitmap, qr_bitmap

MARGIN = 8
_MONO_FONTS = {
    False: (
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    ),
    True: (
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
    ),
}


@lru_cache(maxsize=8)
def _mono_font(bold: bool, font: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = 20 if font == "a" else 14
    for path in _MONO_FONTS[bold]:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _run_image(run: TextRun) -> Image.Image:
    cell_w, cell_h = FONT_CELL_WIDTH[run.font], FONT_CELL_HEIGHT[run.font]
    cells = max(1, display_width(run.text))
    image = Image.new("L", (cells * cell_w, cell_h), 255)
    draw = ImageDraw.Draw(image)
    font = _mono_font(run.bold, run.font)
    for index, char in enumerate(run.text):
        draw.text((index * cell_w, 1), char, font=font, fill=0)
    if run.underline:
        draw.line((0, cell_h - 2, image.width, cell_h - 2), fill=0, width=run.underline)
    if run.width > 1 or run.height > 1:
        image = image.resize((image.width * run.width, image.height * run.height), Image.Resampling.NEAREST)
    if run.invert:
        image = ImageOps.invert(image)
    return image


def _x_for(align: Align, item_width: int, paper_width: int) -> int:
    if align is Align.CENTER:
        return max(0, (paper_width - item_width) // 2)
    if align is Align.RIGHT:
        return max(0, paper_width - item_width)
    return 0


def _dots_to_ink(bitmap: Image.Image) -> Image.Image:
    """Mode "1" with set bits = dots, as an "L" image with black dots on white."""
    return ImageOps.invert(bitmap.convert("L"))


def paint(page: Page, width_px: int) -> Image.Image:
    """A greyscale picture of the printed paper."""
    pieces: list[tuple[int, Image.Image | None, int]] = []  # (x, image, advance)
    for element in page.elements:
        if isinstance(element, PrintedLine):
            runs = [_run_image(run) for run in element.runs] or [Image.new("L", (1, FONT_CELL_HEIGHT["a"]), 255)]
            height = max(r.height for r in runs)
            line = Image.new("L", (sum(r.width for r in runs), height), 255)
            x = 0
            for run_image in runs:
                line.paste(run_image, (x, height - run_image.height))
                x += run_image.width
            pieces.append((_x_for(element.align, line.width, width_px), line, height + 6))
        elif isinstance(element, PrintedImage):
            ink = _dots_to_ink(element.bitmap)
            pieces.append((_x_for(element.align, ink.width, width_px), ink, ink.height))
        elif isinstance(element, PrintedQr):
            ink = _dots_to_ink(qr_bitmap(element.data, max(1, element.module_size), element.error_correction))
            pieces.append((_x_for(element.align, ink.width, width_px), ink, ink.height + 4))
        elif isinstance(element, PrintedBarcode):
            ink = _barcode_image(element)
            pieces.append((_x_for(element.align, ink.width, width_px), ink, ink.height + 4))
        elif isinstance(element, PaperFeed):
            pieces.append((0, None, element.dots))
        elif isinstance(element, PaperCut):
            cut = Image.new("L", (width_px, 9), 255)
            ImageDraw.Draw(cut).line((0, 4, width_px, 4), fill=160, width=1)
            pieces.append((0, cut, 9))
    height = sum(advance for _, _, advance in pieces) + 2 * MARGIN
    canvas = Image.new("L", (width_px + 2 * MARGIN, max(height, 2 * MARGIN + 1)), 255)
    y = MARGIN
    for x, image, advance in pieces:
        if image is not None:
            canvas.paste(image.crop((0, 0, min(image.width, width_px), image.height)), (MARGIN + x, y))
        y += advance
    return canvas


def _barcode_image(element: PrintedBarcode) -> Image.Image:
    try:
        bars = _dots_to_ink(barcode_bitmap(element.symbology, element.data, element.module_width, element.height))
    except Exception:  # a symbology python-barcode cannot draw: show a labelled box instead
        bars = Image.new("L", (200, element.height), 200)
    if element.text_position == "off":
        return bars
    label = _run_image(TextRun(element.data))
    image = Image.new("L", (max(bars.width, label.width), bars.height + label.height), 255)
    image.paste(bars, ((image.width - bars.width) // 2, 0))
    image.paste(label, ((image.width - label.width) // 2, bars.height))
    return image


def page_text(page: Page, columns: int) -> str:
    """The page as text lines (images and codes as bracketed placeholders)."""
    lines: list[str] = []
    for element in page.elements:
        if isinstance(element, PrintedLine):
            text = element.text.rstrip()
            scale = max((run.width for run in element.runs), default=1)
            width = columns // scale
            gap = max(0, width - display_width(text))
            if element.align is Align.CENTER:
                text = " " * (gap // 2) + text
            elif element.align is Align.RIGHT:
                text = " " * gap + text
            lines.append(text)
        elif isinstance(element, PrintedImage):
            lines.append(f"[image {element.bitmap.width}x{element.bitmap.height}]")
        elif isinstance(element, PrintedQr):
            lines.append(f"[QR: {element.data}]")
        elif isinstance(element, PrintedBarcode):
            lines.append(f"[{element.symbology}: {element.data}]")
        elif isinstance(element, PaperCut):
            lines.append("-" * 8 + (" partial cut " if element.partial else " cut ") + "-" * 8)
    return "\n".join(lines) + "\n"
