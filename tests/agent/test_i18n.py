"""The agent's languages: catalogues in step with the code, locale money, fallbacks, label overrides.

The catalogue check runs the same code as ``python -m agent.i18n_catalogues check`` (``make
translations`` fixes what it finds): a string marked in the code but missing from a catalogue,
an entry the code no longer has, an untranslated or fuzzy entry of ru/fr/de, a translation
whose placeholders differ, or a ``.mo`` not compiled from its ``.po`` fails it.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from agent import i18n
from agent.i18n import Catalogues, language
from agent.i18n_catalogues import init, po_path, problems, read_catalogue, update, write_catalogue
from agent.posapi.messages import SENTENCES, localize
from agent.sales import wording
from agent.sales.wording import LABELS, MAX_LABEL, Wording, parse_labels

NBSP, NNBSP = "\u00a0", "\u202f"


def test_the_shipped_catalogues_are_complete_and_compiled() -> None:
    assert problems() == []
    assert i18n.AGENT_CATALOGUES.languages() == ("de", "en", "fr", "ru")


def test_money_is_formatted_for_the_locale_never_through_a_float() -> None:
    assert language("ru").money(138_320, "RUB") == f"1{NBSP}383,20{NBSP}₽"
    assert language("fr").money(5_039, "EUR") == f"50,39{NBSP}€"
    assert language("fr").money(138_320, "EUR") == f"1{NNBSP}383,20{NBSP}€"
    assert language("de").money(-138_320, "EUR") == f"-1.383,20{NBSP}€"
    assert language("en").money(138_320, "GBP") == "£1,383.20"
    assert language("en").money(138_320, "RUB") == f"RUB{NBSP}1,383.20"  # CLDR spacing next to a code
    assert language("de-CH").money(138_320, "CHF") == f"CHF{NBSP}1'383.20"
    # minor units as the wire contract counts them, whatever CLDR rounds cash to
    assert language("en").money(1_500, "JPY") == "JP¥1,500"  # en is en_GB: ¥ alone could be the yuan
    assert language("de").money(1_234_567, "KWD") == f"1.234,567{NBSP}KWD"
    assert language("en").money(10**20 + 1, "EUR") == "€1,000,000,000,000,000,000.01"


def test_paper_money_uses_only_what_a_printer_code_page_carries() -> None:
    assert language("ru").money(138_320, "RUB", paper=True) == f"1{NBSP}383,20{NBSP}руб."  # ₽ is in no code page
    assert language("de").money(138_320, "RUB", paper=True) == f"1.383,20{NBSP}RUB"
    assert language("fr").money(5_039, "EUR", paper=True) == f"50,39{NBSP}€"  # € is (CP858, CP1252, CP1251...)
    assert i18n.printable_as_text("1 383,20 руб. €£¥") and not i18n.printable_as_text("₽")


def test_numbers_rates_quantities_and_dates_per_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (language("ru").rate(550), language("en").rate(550), language("de").rate(1900)) == ("5,5", "5.5", "19")
    assert (language("fr").quantity(1500), language("de").quantity(2000), language("en").quantity(10_250)) == (
        "1,5",
        "2",
        "10.25",
    )
    at = datetime(2025, 3, 4, 14, 5, 9).timestamp()  # local time: the receipt shows the terminal's clock
    assert language("de").datetime(at) == "04.03.2025 14:05:09"
    assert language("fr").datetime(at, seconds=False) == "04/03/2025 14:05"
    assert language("en").datetime(at) == "04/03/2025 14:05:09"  # day first: en is en_GB


def test_an_unknown_language_is_english_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.i18n"):
        first, again = language("qq"), language("qq")
    assert first is again and first.code == "en" and first.gettext("TOTAL") == "TOTAL"
    warnings = [r for r in caplog.records if r.name == "agent.i18n"]
    assert len(warnings) == 1 and warnings[0].language == "qq"
    # a region of a language with a catalogue takes the catalogue and the region's formats
    swiss = language("de-CH")
    assert swiss.gettext("TOTAL") == "SUMME" and swiss.money(500, "CHF") == f"CHF{NBSP}5.00"


def test_the_checker_finds_missing_stale_untranslated_and_broken_entries(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    (package / "locale").mkdir(parents=True)
    shutil.copy(i18n.LOCALE_DIR / "babel.cfg", package / "locale" / "babel.cfg")
    code = package / "till.py"
    code.write_text('from agent.i18n import N_\nLABEL = N_("Total {amount}")\n', encoding="utf-8")
    catalogues = Catalogues(package / "locale", "shop")
    init("en", catalogues, package)
    init("de", catalogues, package)
    found = problems(catalogues, package)
    assert len(found) == 1 and "de" in found[0] and "'Total {amount}' is not translated" in found[0]  # English may stay

    path = po_path(catalogues, "de")
    catalogue = read_catalogue(path, "de")
    catalogue["Total {amount}"].string = "Summe {betrag}"
    write_catalogue(path, catalogue)
    found = problems(catalogues, package)
    assert any("placeholders ['betrag'], not ['amount']" in p for p in found)
    assert any("agent.mo: stale" in p or "shop.mo: stale" in p for p in found)  # the .po changed, the .mo did not

    catalogue["Total {amount}"].string = "Summe {amount}"
    write_catalogue(path, catalogue)
    code.write_text('from agent.i18n import N_\nLABEL = N_("Total {amount}")\nMORE = N_("Change")\n', encoding="utf-8")
    update(catalogues, package)
    found = problems(catalogues, package)
    assert found == [f"{path}: 'Change' is not translated"]  # merged in, compiled, only the translation missing

    code.write_text('from agent.i18n import N_\nMORE = N_("Change")\n', encoding="utf-8")
    found = problems(catalogues, package)
    assert any("'Total {amount}' is no longer in the code" in p for p in found)
    with path.open("rb") as handle:
        assert [m.id for m in read_po(handle) if m.id] == ["Total {amount}", "Change"]


def test_company_labels_are_checked_and_bad_ones_ignored_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wording, "_reported", set())  # what earlier tests of this process reported
    given = {
        "total": "ZU ZAHLEN",
        "tax": "USt.",
        "tax_included": "inkl. {tax} {rate} %",
        "cash": 5,
        "change": "x" * (MAX_LABEL + 1),
        "card": "Karte\x1b@",
        "tax_row": "{tax} zu {percent} %",
        "number": "{number",
        "tax_total": "{tax:{x}}",
        "nonsense": "?",
    }
    with caplog.at_level(logging.WARNING, logger="agent.sales.wording"):
        labels = parse_labels(given)
        parse_labels(given)
    assert labels == {"total": "ZU ZAHLEN", "tax": "USt.", "tax_included": "inkl. {tax} {rate} %"}
    problems_logged = [r.problem for r in caplog.records if r.name == "agent.sales.wording"]
    assert len(problems_logged) == len(set(problems_logged)) == 7  # each bad entry once, not per receipt
    assert parse_labels(["total"]) == {} and parse_labels(None) == {}
    words = Wording.of("de", labels)
    assert words("total") == "ZU ZAHLEN" and words("cash") == "Bar"
    assert words.tax("tax_included", 1900) == "inkl. USt. 19 %" and words.tax("tax_row", 700) == f"USt. 7{NBSP}%"


def test_every_label_key_is_documented() -> None:
    protocol = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = protocol.split("`receipt_labels` keys and their English text", 1)[1].split("The `licence` document", 1)[0]
    missing = [key for key in LABELS if f"`{key}`" not in table]
    assert missing == [], f"docs/protocol.md does not list receipt_labels keys {missing}"


def test_pos_api_messages_in_the_terminal_language() -> None:
    ru, de, en = language("ru"), language("de"), language("en")
    english = "wrong PIN; 2 attempt(s) left before cashier anna is locked"
    assert localize(en, "cashier.wrong_pin", english, {"attempts_left": 2}) == (english, None)
    assert localize(ru, "cashier.wrong_pin", english, {"attempts_left": 1}) == (
        "Неверный PIN-код: осталась 1 попытка.",
        english,
    )
    assert (
        localize(ru, "cashier.wrong_pin", english, {"attempts_left": 3})[0] == "Неверный PIN-код: осталось 3 попытки."
    )
    assert (
        localize(ru, "cashier.wrong_pin", english, {"attempts_left": 5})[0] == "Неверный PIN-код: осталось 5 попыток."
    )
    until = datetime(2025, 3, 4, 14, 5, 9).astimezone().isoformat()
    assert (
        localize(de, "cashier.locked", "locked", {"locked_until": until})[0]
        == "Zu viele falsche PINs: Dieser Kassierer ist bis 04.03.2025 14:05:09 gesperrt."
    )
    assert localize(
        de,
        "licence.expired",
        "The licence has run out. Connect the terminal to the network so it can renew, or ask your partner.",
        {},
    )[0].startswith("Die Lizenz ist abgelaufen.")
    assert localize(de, "http.not_found", "no such API route: GET /x", {}) == ("no such API route: GET /x", None)
    for code, sentence in SENTENCES.items():
        assert ru.gettext(sentence) != sentence, f"{code} has no Russian sentence"
