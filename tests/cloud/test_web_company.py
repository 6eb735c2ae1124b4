"""A company's first steps through the real pages: it registers itself, confirms its address,
signs in, asks a partner to serve it, withdraws, asks again; and the link's end."""

from __future__ import annotations

import re

from sqlalchemy import select

from cloud_api.accounts.audit import Actor
from cloud_api.accounts.models import AuditEvent
from cloud_api.mail.models import MailOutbox
from cloud_api.tenancy import link_service
from cloud_api.tenancy.models import LinkState, PartnerLink, Role, User
from cloud_api.tenancy.tokens import Principal
from cloud_api.web.context import now
from tests.cloud.web_support import (
    Browser,
    Cloud,
    mailed_link,
)

OWNER_PASSWORD = "flour water salt yeast"


def register_company(cloud: Cloud, browser: Browser) -> None:
    form = browser.get("/register")
    assert form.status_code == 200 and 'name="company_name"' in form.text
    sent = browser.post(
        "/register",
        {
            "company_name": "Bakery Ltd",
            "name": "Greta Baker",
            "email": "greta@bakery.example",
            "password": OWNER_PASSWORD,
        },
    )
    assert sent.status_code == 200 and "We sent a link to greta@bakery.example" in sent.text
    with cloud.db() as db:
        mail = db.scalars(select(MailOutbox).where(MailOutbox.to_address == "greta@bakery.example")).one()
    verify = mailed_link(mail.body_text, "/verify")
    shown = browser.get(verify)
    assert shown.status_code == 200 and f'action="{verify}"' in shown.text and "Confirm my address" in shown.text
    confirmed = browser.post(verify)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/signin"
    assert "Your e-mail address is confirmed" in browser.follow(confirmed).text


def open_link_id(cloud: Cloud) -> int:
    with cloud.db() as db:
        link = db.scalars(select(PartnerLink).where(PartnerLink.open_company_id.is_not(None))).one()
        return link.id


def test_a_company_registers_signs_in_and_asks_a_partner_withdraws_and_asks_again(cloud: Cloud) -> None:
    north = cloud.partner("North Partners")
    cloud.partner("South Partners")
    browser = cloud.browser()
    register_company(cloud, browser)

    overview = browser.sign_in("greta@bakery.example", OWNER_PASSWORD)
    assert overview.status_code == 200 and "<h1>Bakery Ltd</h1>" in overview.text
    assert "Ask a partner to serve you" in overview.text and "No partner serves the company yet." in overview.text
    assert browser.get("/company").headers["location"] == "/company/overview"

    directory = browser.get("/company/partner")
    assert "North Partners" in directory.text and "South Partners" in directory.text and "1–2 of 2" in directory.text
    asked = browser.post("/company/partner/request", {"partner_id": str(north), "message": "Two tills in the shop"})
    assert asked.status_code == 303
    pending = browser.follow(asked)
    assert "Your request is sent to North Partners" in pending.text
    assert "Withdraw request" in pending.text and "Two tills in the shop" in pending.text
    assert "Send the request" not in pending.text  # one open link at a time
    overview = browser.get("/company/overview").text
    assert "North Partners" in overview and "pending" in overview and "Wait for North Partners" in overview

    first = open_link_id(cloud)
    withdrawn = browser.post(f"/company/partner/links/{first}/end")
    assert withdrawn.status_code == 303
    after = browser.follow(withdrawn)
    assert "Your request to North Partners is withdrawn" in after.text and "Send the request" in after.text
    assert "Earlier requests and links" in after.text and "withdrawn" in after.text

    again = browser.post("/company/partner/request", {"partner_id": str(north), "message": ""})
    assert again.status_code == 303 and "Withdraw request" in browser.follow(again).text
    with cloud.db() as db:
        links = db.scalars(select(PartnerLink).order_by(PartnerLink.id)).all()
        assert [link.state for link in links] == [LinkState.WITHDRAWN, LinkState.PENDING]
        assert links[1].message is None
        actions = db.scalars(
            select(AuditEvent.action).where(AuditEvent.org_level == "company").order_by(AuditEvent.id)
        ).all()
        assert actions == ["company.registered", "link.requested", "link.withdrawn", "link.requested"]


def test_an_active_link_ends_after_one_confirmation(cloud: Cloud) -> None:
    north = cloud.partner("North Partners")
    company = cloud.company("Bakery Ltd")
    cloud.member("greta@bakery.example", Role.COMPANY_ADMIN, company_id=company)
    partner_user = cloud.member("nils@north.example", Role.PARTNER_ADMIN, partner_id=north)
    browser = cloud.browser()
    browser.sign_in("greta@bakery.example")
    assert browser.post("/company/partner/request", {"partner_id": str(north)}).status_code == 303
    link_id = open_link_id(cloud)
    with cloud.db() as db:
        nils = db.get_one(User, partner_user)
        actor = Actor(Principal(nils.id, nils.role, nils.owner_id, nils.partner_id, None, 0), "nils@north.example")
        link_service.answer(db, actor, link_id, accept=True, now=now())
        db.commit()

    active = browser.get("/company/partner").text
    assert "End link" in active and "active" in active and "Withdraw request" not in active
    assert "serves you since" in browser.get("/company/overview").text
    confirm = browser.get(f"/company/partner/links/{link_id}/end")
    assert confirm.status_code == 200 and "North Partners stops serving the company" in confirm.text
    ended = browser.post(f"/company/partner/links/{link_id}/end")
    assert ended.status_code == 303
    assert "The link with North Partners has ended" in browser.follow(ended).text
    with cloud.db() as db:
        assert db.get_one(PartnerLink, link_id).state == LinkState.ENDED
    again = browser.post(f"/company/partner/links/{link_id}/end")
    assert again.status_code == 409 and "This link has already ended." in again.text


def test_only_the_company_admin_changes_the_partner_link(cloud: Cloud) -> None:
    north = cloud.partner("North Partners")
    company = cloud.company("Bakery Ltd")
    cloud.member("vera@bakery.example", Role.COMPANY_VIEWER, company_id=company)
    viewer = cloud.browser()
    viewer.sign_in("vera@bakery.example")
    page = viewer.get("/company/partner")
    assert page.status_code == 200 and "North Partners" in page.text
    assert "Only an admin of the company may ask a partner." in page.text and "Send the request" not in page.text
    assert viewer.post("/company/partner/request", {"partner_id": str(north)}).status_code == 403
    with cloud.db() as db:
        assert db.scalars(select(PartnerLink)).first() is None


def test_the_request_form_refuses_a_partner_outside_the_directory(cloud: Cloud) -> None:
    cloud.partner("North Partners")
    company = cloud.company("Bakery Ltd")
    cloud.member("greta@bakery.example", Role.COMPANY_ADMIN, company_id=company)
    browser = cloud.browser()
    browser.sign_in("greta@bakery.example")
    missing = browser.post("/company/partner/request", {"partner_id": ""})
    assert missing.status_code == 422 and re.search(r'id="e-partner_id">Choose a partner\.<', missing.text)
    unknown = browser.post("/company/partner/request", {"partner_id": "999"})
    assert unknown.status_code == 422 and "Choose one of the partners offered." in unknown.text
    long = browser.post("/company/partner/request", {"partner_id": "1", "message": "x" * 501})
    assert long.status_code == 422 and "Use at most 500 characters." in long.text
    assert browser.get("/company/partner/links/12345/end").status_code == 404
