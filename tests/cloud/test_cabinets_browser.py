"""The cabinets end to end in Debian's Chromium, with the real SMTP server: the owner registers a
partner and sells it 5 sealed licences; the partner follows the e-mailed link, sets a password
and signs in; a company registers itself, confirms its address and asks the partner; the partner
accepts, moves 2 sealed licences to it and unseals one for a buyer; one e-mail holding a partner
and a company membership chooses the cabinet at sign-in. Each step is checked on the page and in
the database, and each page is saved as a screenshot under build/screenshots/cabinets/ (in
Russian, German and French too, and at phone width) for a person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_api.accounts.models import AuditEvent, Person
from cloud_api.app import create_app
from cloud_api.documents.models import DocumentKind, LicenceDocument
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Company, LinkState, Partner, PartnerLink, Role, User
from tests.cloud.api_support import migrated_engine
from tests.cloud.live_cloud import serving
from tests.cloud.web_support import PASSWORD, Cloud
from tests.support.browser import SCREENSHOTS, chromium, needs_chromium
from tests.support.smtp import SmtpServer

pytestmark = [needs_chromium, pytest.mark.slow]
SHOTS = SCREENSHOTS / "cabinets"
INN = "7707083893"  # a valid organisation INN (the check digit matches)


class Page:
    """One browser tab on the cabinets, with the few moves a person makes."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base
        SHOTS.mkdir(parents=True, exist_ok=True)

    def go(self, path: str) -> None:
        self.driver.get(path if path.startswith("http") else self.base + path)

    @property
    def path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.driver.current_url)

    @property
    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def fill(self, name: str, value: str) -> None:
        from selenium.webdriver.common.by import By

        field = self.driver.find_element(By.NAME, name)
        if field.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(field).select_by_value(value)
        elif field.get_attribute("type") == "date":  # typing into a date field depends on the locale
            self.driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.clear()
            field.send_keys(value)

    def press(self, label: str) -> None:
        """Click the button (or link styled as one) whose text contains `label`."""
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.CSS_SELECTOR, "button, a.button, input[type=submit]"):
            if label.lower() in element.text.lower() and element.is_displayed():
                element.click()
                return
        raise AssertionError(f"no button {label!r} on {self.path}: {self.text[:600]}")

    def wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"waited for {what}; at {self.path}: {self.text[:800]}")

    def wait_path(self, prefix: str) -> None:
        self.wait(lambda: self.path.startswith(prefix), f"the page {prefix}")

    def shot(self, name: str) -> Path:
        """Save the page; also check nothing runs off its side (long Russian or German words)."""
        target = SHOTS / f"{name}.png"
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, max(700, min(int(height) + 140, 2400)))
        assert self.driver.save_screenshot(str(target))
        overflow = self.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name}: the page is {overflow} px wider than the window"
        return target

    def set_language(self, code: str) -> None:
        """Pick a language in the person's menu (its form, as the Change button sends it)."""
        self.driver.execute_script(
            "const form = document.querySelector('form[action=\"/language\"]');"
            "form.querySelector('select').value = arguments[0]; form.submit();",
            code,
        )
        self.wait(lambda: self.driver.find_element("tag name", "html").get_attribute("lang") == code, f"{code} pages")

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.driver.delete_all_cookies()
        self.go("/signin")
        self.fill("email", email)
        self.fill("password", password)
        self.press("Sign in")
        self.wait(lambda: not self.path.startswith("/signin"), "signing in")


def mailed_path(smtp: SmtpServer, to: str, path: str) -> str:
    mails = smtp.wait_for(lambda received: any(to in m.rcpt_tos and path in m.text for m in received), 20)
    body = [m.text for m in mails if to in m.rcpt_tos and path in m.text][-1]
    found = re.search(rf"https?://[^/\s]+({re.escape(path)}[A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


def test_people_sell_move_and_unseal_through_the_cabinets(tmp_path: Path) -> None:
    with (
        SmtpServer() as smtp,
        migrated_engine("sqlite", tmp_path) as engine,
    ):
        holder: dict[str, Any] = {}

        def make_app(base: str) -> Any:
            settings = CloudSettings(
                database_url=str(engine.url), public_url=base, mail_poll_s=0.2, **smtp.mail_settings
            )
            holder["app"] = create_app(settings, engine)
            return holder["app"]

        with serving(make_app) as base, chromium() as driver:
            from tests.cloud.web_support import make_cloud_on

            cloud = make_cloud_on(engine, holder["app"])
            walk(cloud, Page(driver, base), smtp)


def walk(cloud: Cloud, page: Page, smtp: SmtpServer) -> None:
    cloud.member("olga@owner.test", Role.OWNER_ADMIN)

    # -- the owner registers a partner and sells it 5 sealed licences
    page.sign_in("olga@owner.test")
    page.wait_path("/owner/partners")
    page.shot("01-owner-partners-empty")
    page.go("/owner/partners/new")
    page.fill("partner_name", "Nordlicht Kassensysteme GmbH")
    page.fill("admin_name", "Paula Partner")
    page.fill("admin_email", "paula@partner.test")
    page.shot("02-owner-register-partner")
    page.press("Register")
    page.wait(lambda: re.match(r"/owner/partners/\d+", page.path) is not None, "the partner's page")
    with cloud.db() as db:
        partner = db.scalars(select(Partner).where(Partner.name == "Nordlicht Kassensysteme GmbH")).one()
        invited = db.scalars(select(User).where(User.partner_id == partner.id)).one()
        assert invited.role == Role.PARTNER_ADMIN and invited.person_id is not None
    assert "paula@partner.test" in page.text
    page.shot("03-owner-partner-registered")
    invitation = mailed_path(smtp, "paula@partner.test", "/invite/")

    page.go(f"/owner/sales/new?partner_id={partner.id}")
    page.fill("quantity", "5")
    page.fill("valid_until", (date.today() + timedelta(days=365)).isoformat())
    page.shot("04-owner-sell-licences")
    page.press("Sell")
    page.wait(lambda: re.match(r"/owner/documents/\d+", page.path) is not None, "the sale document")
    with cloud.db() as db:
        sale = db.scalars(select(LicenceDocument).where(LicenceDocument.kind == DocumentKind.SALE)).one()
        sealed = db.scalar(
            select(func.count()).where(Licence.partner_id == partner.id, Licence.state == LicenceState.SEALED)
        )
        keys = list(db.scalars(select(Licence.licence_key).where(Licence.partner_id == partner.id)))
    assert sealed == 5 and sale.quantity == 5
    assert sale.number in page.text
    assert not any(key in page.driver.page_source for key in keys), "a sealed key is on the owner's page"
    page.shot("05-owner-sale-document")
    page.go("/owner/partners")
    page.shot("06-owner-partners-with-stock")

    # -- the partner follows the e-mailed link, sets a password, signs in
    page.driver.delete_all_cookies()
    page.go(invitation)
    page.shot("07-invitation")
    page.fill("password", PASSWORD)
    page.press("Accept")
    page.wait_path("/signin")
    page.sign_in("paula@partner.test")
    page.wait_path("/partner/licences")
    assert "Nordlicht Kassensysteme GmbH" in page.text
    page.shot("08-partner-licences")

    # -- a company registers itself (in Russian), confirms its address, asks the partner
    page.driver.delete_all_cookies()
    page.go("/register")
    page.fill("company_name", "Кафе «Ромашка»")
    page.fill("name", "Роман")
    page.fill("email", "roma@cafe.test")
    page.fill("password", PASSWORD)
    page.shot("09-register-company")
    page.press("Register")
    page.wait(lambda: "roma@cafe.test" in page.text, "the check-your-mail page")
    page.shot("10-check-your-mail")
    page.go(mailed_path(smtp, "roma@cafe.test", "/verify/"))
    page.press("Confirm")
    page.wait_path("/signin")
    page.sign_in("roma@cafe.test")
    page.wait_path("/company")
    page.shot("11-company-overview")
    page.go("/company/partner")
    page.fill("partner_id", str(partner.id))
    page.shot("12-company-choose-partner")
    page.press("Send")
    with cloud.db() as db:
        company = db.scalars(select(Company).where(Company.name == "Кафе «Ромашка»")).one()
        page.wait(
            lambda: db.scalar(select(PartnerLink.state).where(PartnerLink.company_id == company.id)) == "pending",
            "the link request in the database",
        )
    page.shot("13-company-request-sent")

    # -- the partner accepts, moves 2 sealed licences, unseals one for a buyer
    page.sign_in("paula@partner.test")
    page.go("/partner/links")
    assert "Кафе «Ромашка»" in page.text
    page.shot("14-partner-link-inbox")
    page.press("Accept")
    with cloud.db() as db:
        page.wait(
            lambda: (
                db.scalar(
                    select(PartnerLink.state)
                    .where(PartnerLink.company_id == company.id)
                    .execution_options(populate_existing=True)
                )
                == LinkState.ACTIVE
            ),
            "the link to become active",
        )
    page.go("/partner/documents/new/move")
    page.fill("company_id", str(company.id))
    page.fill("quantity", "2")
    page.shot("15-partner-move-form")
    page.press("Move")
    page.wait(lambda: re.match(r"/partner/documents/\d+", page.path) is not None, "the move document")
    page.shot("16-partner-move-document")
    with cloud.db() as db:
        assert db.scalar(select(func.count()).where(Licence.company_id == company.id)) == 2
    page.go("/partner/documents/new/unseal")
    page.fill("firm_name", "ООО «Покупатель»")
    page.fill("tax_number", INN)
    page.fill("buyer_email", "buyer@firm.test")
    page.shot("17-partner-unseal-form")
    page.press("Unseal")
    page.wait(lambda: re.search(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", page.text) is not None, "the key, shown once")
    page.shot("18-partner-unsealed-key")
    with cloud.db() as db:
        unsealing = db.scalars(select(LicenceDocument).where(LicenceDocument.kind == DocumentKind.UNSEAL)).one()
        assert (unsealing.firm_name, unsealing.tax_number, unsealing.buyer_email) == (
            "ООО «Покупатель»",
            INN,
            "buyer@firm.test",
        )
        states = dict(
            db.execute(
                select(Licence.state, func.count()).where(Licence.partner_id == partner.id).group_by(Licence.state)
            ).all()
        )
        assert states == {LicenceState.SEALED: 2, LicenceState.ASSIGNED: 3}
        assert db.scalar(select(func.count()).where(AuditEvent.action == "licence.unsealed")) == 1
    page.go("/partner/documents")
    page.shot("19-partner-documents")
    page.go("/partner/licences")
    page.shot("20-partner-licences-after")

    # -- the company's points of sale and licences (the next cabinet's first pages)
    page.sign_in("roma@cafe.test")
    page.go("/company/points-of-sale")
    page.shot("22-company-points-of-sale-empty")
    page.go("/company/points-of-sale/new")
    page.fill("name", "Кафе у вокзала")
    page.fill("code", "POS-STATION")
    page.driver.find_element("css selector", "main form.stack button[type=submit]").click()
    page.wait(lambda: re.match(r"/company/points-of-sale/\d+", page.path) is not None, "the new point of sale")
    page.shot("23-company-point-of-sale")
    page.go("/company/devices")
    page.shot("26-company-devices-empty")
    page.go("/company/devices/claim")
    page.shot("27-company-claim-terminal")
    page.go("/company/licences")
    assert page.text.count("lic_") >= 2
    page.shot("24-company-licences")
    page.driver.find_element("css selector", "main table a[href^='/company/licences/lic_']").click()
    page.wait(lambda: page.path.startswith("/company/licences/lic_"), "a licence's page")
    page.shot("25-company-licence")

    # -- one e-mail, two cabinets: the partner registers a company with the same address
    page.driver.delete_all_cookies()
    page.go("/register")
    page.fill("company_name", "Paula's Kiosk")
    page.fill("name", "Paula Partner")
    page.fill("email", "paula@partner.test")
    page.fill("password", PASSWORD)
    page.press("Register")
    page.wait_path("/signin")
    page.sign_in("paula@partner.test")
    page.wait_path("/choose")
    page.shot("21-choose-cabinet")
    page.press("Paula's Kiosk")
    page.wait_path("/company")
    assert "Paula's Kiosk" in page.text
    page.go("/partner/licences")
    assert page.driver.title.startswith(("Not allowed",)) or "another cabinet" in page.text
    page.go("/choose")
    page.press("Nordlicht")
    page.wait_path("/partner/licences")
    with cloud.db() as db:
        person = db.scalars(select(Person).where(Person.email == "paula@partner.test")).one()
        levels = sorted(Role.level_of(u.role) for u in db.scalars(select(User).where(User.person_id == person.id)))
    assert levels == ["company", "partner"]

    # -- the same pages in Russian, German and French, and at phone width
    for language in ("ru", "de", "fr"):
        page.go("/partner/licences")
        page.set_language(language)
        look_in_language(page, language)
    page.driver.set_window_size(360, 800)
    for path, name in (
        ("/partner/licences", "phone-partner-licences"),
        ("/partner/documents/new/unseal", "phone-unseal"),
    ):
        page.go(path)
        page.shot(name)


def look_in_language(page: Page, language: str) -> None:
    for path, name in (
        ("/partner/licences", "licences"),
        ("/partner/documents", "documents"),
        ("/partner/documents/new/unseal", "unseal-form"),
        ("/partner/links", "links"),
    ):
        page.go(path)
        assert page.driver.find_element("tag name", "html").get_attribute("lang") == language
        page.shot(f"lang-{language}-{name}")
