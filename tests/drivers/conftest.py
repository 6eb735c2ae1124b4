"""Shared fixtures for the drivers tests: profiles, the virtual printer, a sample receipt."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from drivers import load_profile
from drivers.receipt.document import (
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
)
from drivers.sim.printer import VirtualPrinter

SAMPLE_PROFILE = "TM-T88V"


def sample_logo() -> Logo:
    image = Image.new("RGB", (96, 40), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, 91, 35), outline="black", width=3)
    draw.ellipse((30, 8, 66, 32), fill="black")
    return Logo.from_image(image)


def sample_receipt() -> Receipt:
    """Every block type, styles switching on and off, two languages, a drawer kick."""
    return Receipt(
        (
            sample_logo(),
            Text("KASSA CAFE", Style(bold=True, width=2, height=2, align="center")),
            Text("Bahnhofstrasse 1, Zürich", Style(align="center")),
            Rule(),
            Columns(("2 x Espresso", "7.00")),
            Columns(("1 x Croissant", "3.20")),
            Columns(("1 x Orange juice", "5.50")),
            Rule("="),
            Columns(("TOTAL CHF", "15.70"), style=Style(bold=True)),
            Text("PAID BY CARD", Style(invert=True)),
            Text("Thank you!", Style(underline=1, align="center")),
            Text("VAT CHE-123.456.789 incl. 8.1%", Style(font="b", align="center")),
            QrCode("https://kassa.example/r/2024-000042", size=5, error_correction="M"),
            Barcode("4006381333931", "EAN13", height=60, module_width=2),
            Feed(2),
            Cut(),
            DrawerKick(pin=2),
        )
    )


@pytest.fixture(scope="session")
def profile():
    return load_profile(SAMPLE_PROFILE)


@pytest.fixture
def virtual_printer(tmp_path):
    with VirtualPrinter(preview_dir=tmp_path / "previews", profile=SAMPLE_PROFILE) as sim:
        yield sim
