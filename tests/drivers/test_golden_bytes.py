"""The renderer's bytes, checked against python-escpos Dummy and a stored golden file."""

from __future__ import annotations

from pathlib import Path

from escpos.constants import QR_ECLEVEL_M
from escpos.printer import Dummy
from PIL import Image

from drivers.receipt.escpos import EscposRenderer

from .conftest import SAMPLE_PROFILE, sample_logo, sample_receipt

GOLDEN = Path(__file__).parent / "golden" / "sample_receipt.hex"


def logo_source_image() -> Image.Image:
    # Dummy converts the image itself; feed it the bitmap kassa prepared, as dots-are-black RGB
    bitmap = sample_logo().bitmap
    return Image.eval(bitmap.convert("L"), lambda v: 255 - v).convert("RGB")


def dummy_sample_receipt() -> bytes:
    """The sample receipt driven through python-escpos calls, one per kassa block."""
    d = Dummy(profile=SAMPLE_PROFILE)
    d.hw("INIT")
    d.image(logo_source_image(), impl="bitImageRaster", center=True)
    d.set(custom_size=True, width=2, height=2, bold=True, align="center")
    d.textln("KASSA CAFE")
    d.set(custom_size=True, width=1, height=1, bold=False)
    d.textln("Bahnhofstrasse 1, Zürich")
    d.set(align="left")
    d.textln("-" * 42)
    d.textln("2 x Espresso" + " " * 26 + "7.00")
    d.textln("1 x Croissant" + " " * 25 + "3.20")
    d.textln("1 x Orange juice" + " " * 22 + "5.50")
    d.textln("=" * 42)
    d.set(bold=True)
    d.textln("TOTAL CHF" + " " * 28 + "15.70")
    d.set(bold=False, invert=True)
    d.textln("PAID BY CARD")
    d.set(underline=1, align="center", invert=False)
    d.textln("Thank you!")
    d.set(underline=0, font="b")
    d.textln("VAT CHE-123.456.789 incl. 8.1%")
    d.qr("https://kassa.example/r/2024-000042", ec=QR_ECLEVEL_M, size=5, native=True)
    d.barcode("4006381333931", "EAN13", height=60, width=2, pos="BELOW", font="A", align_ct=False)
    d.print_and_feed(2)
    d.cut()
    d.cashdraw(2)
    return d.output


def test_sample_receipt_matches_python_escpos_dummy_byte_for_byte(profile):
    ours = EscposRenderer(profile).render(sample_receipt())
    theirs = dummy_sample_receipt()
    assert ours == theirs


def test_sample_receipt_matches_the_golden_file(profile):
    golden = bytes.fromhex("".join(GOLDEN.read_text().split()))
    assert EscposRenderer(profile).render(sample_receipt()) == golden


def test_golden_file_contains_the_drawer_kick_and_cut_at_the_end():
    golden = bytes.fromhex("".join(GOLDEN.read_text().split()))
    assert golden.startswith(b"\x1b@")
    assert golden.endswith(b"\x1bd\x06\x1dV\x00" + b"\x1bp\x00\x32\x32")


def test_rendering_twice_with_one_renderer_gives_the_same_bytes(profile):
    renderer = EscposRenderer(profile)
    assert renderer.render(sample_receipt()) == renderer.render(sample_receipt())
