"""The cabinets' catalogues are complete and compiled, and a page follows the person's language:
the menu's choice, else the browser's Accept-Language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.i18n_catalogues import domains, problems
from cloud_api.licences import book
from cloud_api.tenancy.models import Partner, Role
from cloud_api.web.i18n import LANGUAGES, from_accept_language
from tests.cloud.web_support import Cloud

CLOUD = Path(__file__).resolve().parents[2] / "cloud_api"


def test_every_cabinet_string_is_translated_and_compiled() -> None:
    catalogues, package = domains()["cabinet"]
    assert package == CLOUD
    assert problems(catalogues, package) == []
    assert sorted(catalogues.languages()) == sorted(LANGUAGES)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("de-CH", "de"),
        ("es,fr;q=0.5", "fr"),
        ("fr;q=0.2, de;q=0.8", "de"),
        ("es, it", None),
        ("", None),
        ("*;q=1, ;;;", None),
    ],
)
def test_accept_language_picks_a_language_with_a_catalogue(header: str, expected: str | None) -> None:
    assert from_accept_language(header) == expected


def test_pages_follow_the_browser_then_the_persons_choice(cloud: Cloud) -> None:
    browser = cloud.browser()
    signin = browser.client.get("/signin", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="de">' in signin.text and "Anmelden" in signin.text
    partner_id = cloud.partner("Anna GmbH")
    cloud.member("anna@partner.test", Role.PARTNER_ADMIN, partner_id=partner_id)
    with cloud.db() as db:  # stock to unseal from
        book.issue_licences(
            db,
            db.get_one(Partner, partner_id),
            1,
            {},
            datetime.now(UTC) + timedelta(days=30),
            by_user=1,
            now=datetime.now(UTC),
        )
        db.commit()
    browser.sign_in("anna@partner.test")
    chosen = browser.post("/language", {"language": "ru", "next": "/partner/licences"})
    assert chosen.headers["location"] == "/partner/licences"
    page = browser.client.get("/partner/licences", headers={"Accept-Language": "fr"})
    assert '<html lang="ru">' in page.text and "Лицензии" in page.text  # the person's choice beats the browser
    refused = browser.post(
        "/partner/documents/new/unseal", {"firm_name": "X", "tax_number": "7707083890", "buyer_email": "b@x.test"}
    )
    assert refused.status_code == 422 and 'id="e-tax_number"' in refused.text  # next to its field
    assert "ИНН" in refused.text.split('id="e-tax_number"')[1][:300]  # in Russian
