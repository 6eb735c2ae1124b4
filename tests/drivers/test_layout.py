"""Columns and wrapping always fit the paper and never lose text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import Align, Column, Columns, Receipt, Style, Text, load_profile
from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import PrintedLine
from drivers.receipt.escpos import EscposRenderer
from drivers.receipt.layout import display_width, layout_columns, simple_row, wrap
from drivers.receipt.preview import preview_text

words = st.text(alphabet=st.characters(codec="latin-1", categories=("L", "N", "P", "S")), min_size=1, max_size=14)
cells = st.lists(words, min_size=1, max_size=6).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(cells, min_size=1, max_size=4), st.integers(min_value=16, max_value=64))
def test_columns_fit_the_line_and_keep_every_word(row, width):
    specs = Columns(tuple(row)).specs()
    lines = layout_columns(tuple(row), specs, width)
    assert all(display_width(line.text) <= width for line in lines)
    for index, cell in enumerate(row):
        printed = "".join(line.cells[index].text for line in lines)
        assert printed.replace(" ", "") == cell.replace(" ", "")  # long words may be split, never lost


@settings(max_examples=200, deadline=None)
@given(cells, st.integers(min_value=4, max_value=48))
def test_wrap_fits_and_keeps_all_characters(text, width):
    lines = wrap(text, width)
    assert all(display_width(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_fast_row_matches_the_general_layout():
    profile_width = 42
    for row in (("2 x Espresso", "7.00"), ("TOTAL", "15.70"), ("A", "B", "C")):
        specs = Columns(row).specs()
        assert simple_row(row, profile_width) == layout_columns(row, specs, profile_width)[0].text


def test_long_item_names_wrap_and_the_price_stays_on_the_first_line():
    lines = layout_columns(
        ("Bagel with cream cheese and smoked salmon, extra capers", "12.50"), Columns(("a", "b")).specs(), 32
    )
    assert [line.text for line in lines] == ["Bagel with cream cheese    12.50", "and smoked salmon, extra", "capers"]


def test_explicit_column_widths_and_alignment():
    specs = (Column(width=4, align=Align.RIGHT), Column(grow=True), Column(width=8, align=Align.RIGHT))
    [line] = layout_columns(("2", "Tea", "5.00"), specs, 24)
    assert line.text == "   2 Tea" + " " * 12 + "5.00"


def test_wide_east_asian_characters_count_double():
    assert display_width("你好") == 4
    lines = layout_columns(("你好世界", "1.00"), Columns(("a", "b")).specs(), 12)
    assert all(display_width(line.text) <= 12 for line in lines)


def test_double_width_text_wraps_at_half_the_columns():
    profile = load_profile("TM-T88V")
    data = EscposRenderer(profile).render(Receipt((Text("word " * 10, Style(width=2)),)))
    printed = [line for line in data.split(b"\n") if b"word" in line]
    assert all(len(line.split(b"word", 1)[1]) <= 21 for line in printed) and len(printed) >= 2
    assert preview_text(Receipt((Text("x" * 50),)), profile).splitlines() == ["x" * 42, "x" * 8]


def test_a_row_prints_its_first_form_that_fits_and_a_table_never_mixes_forms():
    long_rate = ("incl. VAT 5.5% of 1\u00a0383,20\u00a0€", "72,10\u00a0€")
    short_rate = ("incl. VAT 5.5%", "72,10\u00a0€")
    other = ("incl. VAT 20% of 7,00\u00a0€", "1,17\u00a0€")  # fits 32 columns on its own
    table = Receipt(
        (Columns(long_rate, shorter=(short_rate,)), Columns(other, shorter=((other[0][:13], other[1]),)), Text("end"))
    )
    for columns, expected in (
        (48, ["incl. VAT 5.5% of 1 383,20 €", "incl. VAT 20% of 7,00 €"]),
        (32, ["incl. VAT 5.5%", "incl. VAT 20%"]),
    ):
        profile = load_profile("default", columns=columns)
        printed = preview_text(table, profile).splitlines()
        assert [line.rsplit("  ", 1)[0].rstrip() for line in printed[:2]] == expected
        assert all(display_width(line) <= columns for line in printed)
        decoder = EscposDecoder(profile)
        decoder.feed(EscposRenderer(profile).render(table))
        paper = [element.text for element in decoder.take_all().elements if isinstance(element, PrintedLine)]
        assert [line.rsplit("  ", 1)[0].rstrip() for line in paper[:2]] == expected and paper[0].endswith("72,10 €")
    assert (
        preview_text(
            Receipt((Columns(("a " * 30, "1"), shorter=(("b " * 30, "2"),)),)), load_profile("default", columns=32)
        ).count("b")
        == 30
    )


def test_shorter_forms_must_match_the_row():
    import pytest

    from drivers import DocumentError, ReceiptBuilder

    with pytest.raises(DocumentError, match="shorter form"):
        Columns(("Tea", "2.50"), shorter=(("Tea",),))
    with pytest.raises(DocumentError, match="float"):
        Columns(("Tea", "2.50"), shorter=(("Tea", 2.5),))
    assert ReceiptBuilder().columns("Tea", "2.50", shorter=[["T", "2.50"]]).build().blocks[0].shorter == (
        ("T", "2.50"),
    )


def test_money_never_breaks_at_its_no_break_spaces():
    lines = layout_columns(
        ("Remboursements exceptionnels (12)", "-12\u202f345,67\u00a0€"), Columns(("a", "b")).specs(), 32
    )
    assert lines[0].text.endswith("-12 345,67 €") and all("€" not in line.text for line in lines[1:])
    assert wrap("Merci\u202f! Au revoir", 8) == ("Merci !", "Au", "revoir")  # "!" never alone on a line
