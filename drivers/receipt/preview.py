"""Previews of a receipt for people: plain text and a picture.

The text preview is laid out from the document (so right-to-left text keeps
its logical order and stays searchable); the picture is painted from the
ESC/POS bytes the printer would receive, so it shows what would print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from drivers.printers.profile import PrinterProfile
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
    Text,
    sanitize,
)
from drivers.receipt.escpos import EscposRenderer
from drivers.receipt.layout import chosen_forms, layout_columns, pad, wrap

if TYPE_CHECKING:
    from PIL import Image


def preview_text(document: Receipt, profile: PrinterProfile) -> str:
    lines: list[str] = []
    full_width = profile.columns()
    forms = chosen_forms(document.blocks, lambda style: profile.columns(style.font, style.width))
    for block in document.blocks:
        if isinstance(block, Text):
            width = profile.columns(block.style.font, block.style.width)
            for paragraph in sanitize(block.text).split("\n"):
                for line in wrap(paragraph, width):
                    lines.append(
                        pad(line, width, block.style.align).rstrip() if block.style.align is not Align.LEFT else line
                    )
        elif isinstance(block, Columns):
            width = profile.columns(block.style.font, block.style.width)
            cells = forms.get(id(block)) or tuple(sanitize(c) for c in block.cells)
            lines.extend(line.text for line in layout_columns(cells, block.specs(), width))
        elif isinstance(block, Rule):
            lines.append(block.char * profile.columns(block.style.font, block.style.width))
        elif isinstance(block, Feed):
            lines.extend([""] * block.lines)
        elif isinstance(block, QrCode):
            lines.append(pad(f"[QR: {block.data}]", full_width, block.align).rstrip())
        elif isinstance(block, Barcode):
            lines.append(pad(f"[{block.symbology}: {block.data}]", full_width, block.align).rstrip())
        elif isinstance(block, Logo):
            lines.append(pad(f"[logo {block.width}x{block.height}]", full_width, block.align).rstrip())
        elif isinstance(block, Cut):
            lines.append("-" * 8 + (" partial cut " if block.partial else " cut ") + "-" * 8)
        elif isinstance(block, DrawerKick):
            lines.append(f"[drawer kick: pin {block.pin}, {block.on_ms} ms]")
    return "\n".join(lines) + "\n"


def preview_image(document: Receipt, profile: PrinterProfile, renderer: EscposRenderer | None = None) -> Image.Image:
    # imported on first use: the painter loads Pillow, which only previews need (agent footprint)
    from drivers.preview.decoder import EscposDecoder
    from drivers.preview.painter import paint

    data = (renderer or EscposRenderer(profile)).render(document)
    decoder = EscposDecoder(profile)
    decoder.feed(data)
    return paint(decoder.take_all(), profile.width_px)


def write_preview(document: Receipt, profile: PrinterProfile, directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``name.png`` and ``name.txt``; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, txt = directory / f"{name}.png", directory / f"{name}.txt"
    preview_image(document, profile).save(png)
    txt.write_text(preview_text(document, profile), encoding="utf-8")
    return png, txt
