"""Previews for people: the text preview from the document, the picture from the bytes."""

from __future__ import annotations

from PIL import Image

from drivers import load_profile, preview_image, preview_text, write_preview
from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import DrawerPulse, PaperCut, PrintedBarcode, PrintedImage, PrintedLine, PrintedQr
from drivers.receipt.escpos import EscposRenderer

from .conftest import sample_receipt


def test_text_preview_has_every_receipt_line(profile):
    lines = preview_text(sample_receipt(), profile).splitlines()
    assert "2 x Espresso                          7.00" in lines
    assert "TOTAL CHF                            15.70" in lines
    assert any(line.strip() == "KASSA CAFE" for line in lines)
    assert any("[QR: https://kassa.example/r/2024-000042]" in line for line in lines)
    assert lines[-1] == "[drawer kick: pin 2, 100 ms]"


def test_picture_preview_is_written_next_to_the_text(tmp_path, profile):
    png, txt = write_preview(sample_receipt(), profile, tmp_path, "sale-42")
    with Image.open(png) as image:
        assert image.width == profile.width_px + 16 and image.height > 400
        assert image.convert("L").getextrema() == (0, 255)  # black ink on white paper
    assert "Bahnhofstrasse 1, Zürich" in txt.read_text(encoding="utf-8")


def test_decoder_recovers_every_element_of_the_sample(profile):
    data = EscposRenderer(profile).render(sample_receipt())
    decoder = EscposDecoder(profile)
    events = decoder.feed(data[:100]) + decoder.feed(data[100:])  # split mid-command on purpose
    page = decoder.take_all()
    kinds = [type(e) for e in page.elements]
    assert kinds.count(PrintedImage) == 1 and kinds.count(PrintedQr) == 1 and kinds.count(PrintedBarcode) == 1
    assert PaperCut in kinds and DrawerPulse in kinds
    assert [type(e) for e in events] == [PaperCut, DrawerPulse]
    title = next(e for e in page.elements if isinstance(e, PrintedLine))
    assert title.text == "KASSA CAFE" and title.runs[0].bold and title.runs[0].width == 2
    qr = next(e for e in page.elements if isinstance(e, PrintedQr))
    assert (qr.data, qr.module_size, qr.error_correction) == ("https://kassa.example/r/2024-000042", 5, "M")


def test_decoder_understands_python_escpos_column_images():
    from escpos.printer import Dummy

    dummy = Dummy(profile="TM-T88V")
    dummy.image(Image.new("RGB", (40, 24), "black"), impl="bitImageColumn")
    decoder = EscposDecoder(load_profile("TM-T88V"))
    decoder.feed(dummy.output)
    [image] = [e for e in decoder.take_all().elements if isinstance(e, PrintedImage)]
    assert image.bitmap.size == (40, 24) and image.bitmap.getbbox() == (0, 0, 40, 24)


def test_preview_image_of_a_document(profile):
    image = preview_image(sample_receipt(), profile)
    assert image.mode == "L" and image.height > 400
