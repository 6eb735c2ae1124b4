"""Non-Latin text prints through a code page the profile has, or as a raster image; it is never dropped."""

from __future__ import annotations

import pytest

from drivers import Columns, DocumentError, Receipt, Style, Text, load_profile
from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import PrintedImage, PrintedLine
from drivers.receipt.escpos import EscposRenderer

GS_V0 = b"\x1dv0"


def render(*blocks, profile="TM-T88V") -> bytes:
    return EscposRenderer(load_profile(profile)).render(Receipt(blocks))


def decoded(data: bytes, profile="TM-T88V"):
    decoder = EscposDecoder(load_profile(profile))
    decoder.feed(data)
    return decoder.take_all().elements


def code_page_index(profile: str, name: str) -> int:
    return load_profile(profile).code_page(name).index


@pytest.mark.parametrize(
    "text, pages",
    [
        ("Καλημέρα κόσμε", {"CP737"}),  # Greek is in no common page: the lowest-numbered Greek page wins
        ("Привет, мир", {"CP866"}),  # Cyrillic: PC866 first of the common pages
        ("Grüße aus Zürich", {"CP1252"}),  # Western: WPC1252 before PC858 and PC437
        ("Ça coûte 5,00 €", {"CP1252", "CP858"}),  # the euro sign is not in CP437
    ],
)
def test_text_a_code_page_can_carry_is_sent_as_text_in_that_page(text, pages):
    profile = load_profile("TM-T88V")
    data = render(Text(text))
    selected = data.rfind(b"\x1bt")
    page = next(p for p in profile.code_pages if p.index == data[selected + 2])
    assert page.name in pages
    assert data[selected + 3 :].split(b"\n")[0] == page.encode(text)
    assert GS_V0 not in data
    [line] = [e for e in decoded(data) if isinstance(e, PrintedLine)]
    assert line.text == text  # round trip through the printer's code page


def test_mixed_scripts_switch_code_pages_mid_line():
    data = render(Text("Москва – Αθήνα"))
    assert data.count(b"\x1bt") >= 2 and GS_V0 not in data
    [line] = [e for e in decoded(data) if isinstance(e, PrintedLine)]
    assert line.text == "Москва – Αθήνα"


@pytest.mark.parametrize(
    "text",
    [
        "שלום עולם",  # Hebrew, right-to-left
        "مرحبا بالعالم",  # Arabic, right-to-left and shaped
        "你好，世界",  # CJK: in no code page of the profile
        "ภาษาไทย",  # Thai: not in this profile's code pages (and no font here: printed as boxes, with a warning)
    ],
)
def test_text_no_code_page_can_carry_is_rasterised(text):
    data = render(Text("before"), Text(text), Text("after"))
    assert GS_V0 in data
    elements = decoded(data)
    lines = [e.text for e in elements if isinstance(e, PrintedLine)]
    images = [e for e in elements if isinstance(e, PrintedImage)]
    assert lines == ["before", "after"]
    [image] = images
    assert image.bitmap.width == 512 and image.bitmap.height == 24
    assert image.bitmap.getbbox() is not None, "the raster line is blank"


def test_rasterised_columns_keep_their_cells():
    # 42 columns of 12 dots: the name cell is characters 0-35, the price cell 37-41
    data = render(Columns(("קפה", "12.00")))
    [image] = [e for e in decoded(data) if isinstance(e, PrintedImage)]
    name = image.bitmap.crop((0, 0, 36 * 12, 24)).getbbox()
    gap = image.bitmap.crop((36 * 12, 0, 37 * 12, 24)).getbbox()
    price = image.bitmap.crop((37 * 12, 0, 512, 24)).getbbox()
    assert price is not None and gap is None
    assert name is not None and name[2] > 30 * 12  # right-to-left text starts at the right of its cell


def test_double_size_raster_lines_are_taller():
    data = render(Text("你好", Style(width=2, height=2)))
    [image] = [e for e in decoded(data) if isinstance(e, PrintedImage)]
    assert image.bitmap.height == 48


def test_profile_without_the_needed_code_page_rasterises_instead_of_dropping():
    # the "simple" profile only has CP437: Cyrillic cannot be encoded there
    assert load_profile("simple").code_page("CP866") is None
    data = render(Text("Привет"), profile="simple")
    assert GS_V0 in data


def test_money_must_arrive_formatted_never_as_float():
    with pytest.raises(DocumentError, match="float"):
        Columns(("Coffee", 3.5))
    with pytest.raises(DocumentError, match="float"):
        Text(12.5)


def test_control_characters_cannot_inject_printer_commands():
    data = render(Text("evil\x1bd\x09name\x07"))
    assert b"\x1bd\x09" not in data and b"\x07" not in data
    [line] = [e for e in decoded(data) if isinstance(e, PrintedLine)]
    assert line.text == "evil?d name?"


def test_no_break_spaces_from_locale_money_formatting_print_as_spaces():
    data = render(Columns(("Total", "1\u202f234,50\u00a0€")))
    [line] = [e for e in decoded(data) if isinstance(e, PrintedLine)]
    assert line.text.endswith("1 234,50 €")
    assert GS_V0 not in data
