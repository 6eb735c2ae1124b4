"""Code pages per run of text: common pages first, switches only where a character needs one, FS . on CJK models.

Expected bytes come from python-escpos ``Dummy`` told which page each run goes in
(``charcode``), so its tables and ``ESC t`` numbers, not ours, say what the bytes must be.
"""

from __future__ import annotations

import re

from escpos.printer import Dummy

from drivers import Cut, Receipt, Text, load_profile, open_printer
from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import PrintedLine
from drivers.receipt.codepages import CodePagePlanner
from drivers.receipt.escpos import EscposRenderer
from drivers.sim.printer import VirtualPrinter

RUSSIAN_RECEIPT = ("ООО «Ромашка»", "Кофе 150,00 €", "Итого: 150,00 €", "Спасибо!")
FS_CANCEL_KANJI = b"\x1c."


def render(lines, profile) -> bytes:
    return EscposRenderer(profile).render(Receipt(tuple(Text(line) for line in lines)))


def selected_pages(data: bytes, profile) -> list[str]:
    names = {page.index: page.name for page in profile.code_pages}
    return [names[match.group(1)[0]] for match in re.finditer(rb"\x1bt(.)", data, re.S)]


def printed_lines(data: bytes, profile) -> list[str]:
    decoder = EscposDecoder(profile)
    decoder.feed(data)
    return [e.text for e in decoder.take_all().elements if isinstance(e, PrintedLine)]


def dummy_bytes(profile_name: str, runs: list[list[tuple[str, str]]], *, cancel_kanji: bool = False) -> bytes:
    """python-escpos output for lines given as (code page, text) runs."""
    dummy = Dummy(profile=profile_name)
    dummy.hw("INIT")
    if cancel_kanji:
        dummy._raw(FS_CANCEL_KANJI)
    for line in runs:
        for page, text in line:
            dummy.charcode(page)
            dummy.text(text)
        dummy.text("\n")
    return dummy.output


def test_russian_receipt_stays_on_wpc1251_when_the_profile_has_it():
    # WPC1251 carries Cyrillic, «» and €: one page for the whole receipt, never PC855
    profile = load_profile("TM-T88V")
    data = render(RUSSIAN_RECEIPT, profile)
    assert selected_pages(data, profile) == ["CP1251"]
    assert data == dummy_bytes("TM-T88V", [[("CP1251", line)] for line in RUSSIAN_RECEIPT])
    assert printed_lines(data, profile) == list(RUSSIAN_RECEIPT)


def test_russian_receipt_switches_only_for_the_runs_that_need_it():
    # Sunmi V2 has PC866 and PC855 but no WPC1251. PC855 could carry each whole line, which is
    # how one « used to move the whole receipt there; now the Cyrillic runs stay on PC866 and
    # only «, » and € go out in WPC1252. Sunmi printers may start in Chinese mode: FS . first.
    profile = load_profile("Sunmi-V2")
    data = render(RUSSIAN_RECEIPT, profile)
    expected = dummy_bytes(
        "Sunmi-V2",
        [
            [("CP866", "ООО "), ("CP1252", "«"), ("CP866", "Ромашка"), ("CP1252", "»")],
            [("CP866", "Кофе 150,00 "), ("CP1252", "€")],
            [("CP866", "Итого: 150,00 "), ("CP1252", "€")],
            [("CP866", "Спасибо!")],
        ],
        cancel_kanji=True,
    )
    assert data == expected
    assert "CP855" not in selected_pages(data, profile)
    assert printed_lines(data, profile) == list(RUSSIAN_RECEIPT)


def test_a_page_that_carries_the_next_line_is_kept():
    # the first line moved to WPC1252 for "€"; "Grüße" fits there too: no switch back
    profile = load_profile("TM-T88V")
    data = render(["Preis 5,00 €", "Grüße", "Müller"], profile)
    assert selected_pages(data, profile) == ["CP1252"]
    assert printed_lines(data, profile) == ["Preis 5,00 €", "Grüße", "Müller"]


def test_a_script_no_common_page_carries_uses_one_rarer_page_for_the_whole_run():
    # "α" is also in PC437, but splitting Greek words between pages helps nobody
    profile = load_profile("TM-T88V")
    data = render(["αβγ Καλημέρα"], profile)
    assert selected_pages(data, profile) == ["CP737"]
    assert printed_lines(data, profile) == ["αβγ Καλημέρα"]


def test_configured_code_pages_come_before_the_common_ones():
    profile = load_profile("TM-T88V", code_pages=("CP855",))
    data = render(["ООО «Ромашка»"], profile)
    assert selected_pages(data, profile) == ["CP855"]
    assert printed_lines(data, profile) == ["ООО «Ромашка»"]


def test_planner_answers_none_for_a_character_in_no_page():
    profile = load_profile("TM-T88V")
    assert CodePagePlanner(profile.code_pages).plan("Кофе 你好", None) is None


def test_cjk_capable_profiles_cancel_kanji_mode_after_init():
    assert load_profile("POS-5890").cancel_kanji and load_profile("Sunmi-V2").cancel_kanji
    assert not load_profile("TM-T88V").cancel_kanji and not load_profile("default").cancel_kanji
    data = render(["Привет"], load_profile("POS-5890"))
    assert data.startswith(b"\x1b@" + FS_CANCEL_KANJI)
    assert FS_CANCEL_KANJI not in render(["Привет"], load_profile("TM-T88V"))


def test_without_fs_dot_a_printer_in_chinese_mode_prints_cyrillic_as_chinese():
    # what FS . prevents: the same bytes minus FS ., read by a printer that powered on in Chinese mode
    sent = render(["Привет"], load_profile("POS-5890", cancel_kanji=False))
    assert FS_CANCEL_KANJI not in sent
    assert printed_lines(sent, load_profile("POS-5890")) != ["Привет"]


def test_cancel_kanji_is_a_printer_option(tmp_path):
    url = f"file://{tmp_path / 'out.bin'}"
    assert open_printer(f"{url}?profile=TM-T88V&cancel_kanji=true").profile.cancel_kanji
    assert not open_printer(f"{url}?profile=POS-5890&cancel_kanji=false").profile.cancel_kanji


def test_a_chinese_model_prints_a_russian_receipt_right(tmp_path):
    # the virtual printer with a Rongta profile powers on in Chinese mode, like the real one
    lines = (*RUSSIAN_RECEIPT, "Москва – Αθήνα")
    with VirtualPrinter(preview_dir=tmp_path / "previews", profile="RP326") as sim:
        printer = open_printer(f"{sim.url}?profile=RP326")
        try:
            printer.print_document(Receipt((*(Text(line) for line in lines), Cut())), job_id="ru-1")
            [receipt] = sim.wait_for_receipts(1, timeout=10)
        finally:
            printer.close()
    assert [line.rstrip() for line in receipt.lines if line.strip() and "-- cut --" not in line] == list(lines)
