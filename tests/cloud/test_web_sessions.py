"""The rules of signing in and of every form, through the real pages: cookie flags, the
sign-in messages and the lockout, mailed links that expired or were used, password reset and
signing out (here or everywhere), CSRF, open redirects, oversized fields, choosing a cabinet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from cloud_api.accounts.models import ActionLink, Person, WebSession
from cloud_api.mail.models import MailOutbox
from cloud_api.tenancy.models import Role, User
from tests.cloud.api_support import migrated_engine
from tests.cloud.web_support import (
    PASSWORD,
    Browser,
    Cloud,
    mailed_link,
    make_cloud,
)

WRONG = "The e-mail or the password is wrong."
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def admin(cloud: Cloud) -> str:
    """A company admin's e-mail (the company's cabinet is the only one it opens)."""
    cloud.member("greta@bakery.example", Role.COMPANY_ADMIN, company_id=cloud.company("Bakery Ltd"))
    return "greta@bakery.example"


def signin_form(browser: Browser, email: str, password: str, **extra: str) -> Any:
    browser.get("/signin")
    return browser.post("/signin", {"email": email, "password": password, **extra})


def set_cookies(reply: Any) -> dict[str, str]:
    """Each cookie the reply sets, by name, with its attributes as sent."""
    found = {}
    for header in reply.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        found[name] = header
    return found


def last_link(cloud: Cloud, address: str, path: str) -> str:
    with cloud.db() as db:
        mail = db.scalars(
            select(MailOutbox).where(MailOutbox.to_address == address).order_by(MailOutbox.id.desc())
        ).first()
    assert mail is not None, f"no mail to {address}"
    return mailed_link(mail.body_text, path)


# ------------------------------------------------------------------------------ cookies
def test_the_session_cookie_is_httponly_and_lax(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    first = browser.get("/signin")
    csrf_cookie = set_cookies(first)["kassa_csrf"].lower()
    assert "httponly" in csrf_cookie and "samesite=strict" in csrf_cookie and "secure" not in csrf_cookie
    signed = browser.post("/signin", {"email": admin, "password": PASSWORD})
    cookie = set_cookies(signed)["kassa_session"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # this cloud is served over plain http


@pytest.fixture
def https_cloud(tmp_path: Path) -> Iterator[Cloud]:
    with migrated_engine("sqlite", tmp_path) as engine:
        yield make_cloud(engine, str(engine.url), public_url="https://cabinet.example")


def test_cookies_are_secure_when_the_cabinets_are_served_over_https(https_cloud: Cloud) -> None:
    https_cloud.member("greta@bakery.example", Role.COMPANY_ADMIN, company_id=https_cloud.company("Bakery Ltd"))
    browser = https_cloud.browser()
    browser.client = TestClient(https_cloud.app, base_url="https://cabinet.example", follow_redirects=False)
    assert "; secure" in set_cookies(browser.get("/signin"))["kassa_csrf"].lower()
    signed = browser.post("/signin", {"email": "greta@bakery.example", "password": PASSWORD})
    assert signed.status_code == 303
    assert "; secure" in set_cookies(signed)["kassa_session"].lower()
    assert browser.follow(signed).status_code == 200


# ------------------------------------------------------------------------------ sign-in messages
def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    wrong = signin_form(browser, admin, "not the password")
    unknown = signin_form(browser, "nobody@bakery.example", "not the password")
    for reply in (wrong, unknown):
        assert reply.status_code == 401 and WRONG in reply.text
        assert "kassa_session" not in set_cookies(reply)
    assert 'value="nobody@bakery.example"' in unknown.text


def test_an_unconfirmed_address_is_told_to_confirm_first(cloud: Cloud) -> None:
    cloud.person("new@bakery.example", verified=False)
    reply = signin_form(cloud.browser(), "new@bakery.example", PASSWORD)
    assert reply.status_code == 403
    assert "Confirm your e-mail address first: open the link we sent to new@bakery.example." in reply.text
    assert 'href="/resend"' in reply.text


def test_five_failures_lock_the_account_until_the_lock_time_passes(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    for _attempt in range(5):
        assert signin_form(browser, admin, "guess").status_code == 401
    locked = signin_form(browser, admin, PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins. Try again after" in locked.text
    assert "(UTC), or reset your password." in locked.text
    assert "kassa_session" not in set_cookies(locked)

    with cloud.db() as db:
        db.execute(
            update(Person).where(Person.email == admin).values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.commit()
    opened = signin_form(browser, admin, PASSWORD)
    assert opened.status_code == 303 and opened.headers["location"] == "/company/overview"


def test_many_attempts_from_one_address_are_slowed_whatever_the_account(tmp_path: Path) -> None:
    """Guessing many accounts' passwords from one address: after the limit, every attempt (even
    the right password of another account) waits, and no password is checked."""
    with migrated_engine("sqlite", tmp_path) as engine:
        limited = make_cloud(engine, str(engine.url), signin_attempts_per_minute=3)
        limited.member("ines@shop.example", Role.COMPANY_ADMIN, company_id=limited.company("Shop"))
        browser = limited.browser()
        for number in range(3):
            assert signin_form(browser, f"nobody{number}@shop.example", "guess").status_code == 401
        refused = signin_form(browser, "ines@shop.example", PASSWORD)
        assert refused.status_code == 429
        assert "Too many sign-in attempts from your network" in refused.text
        assert "kassa_session" not in set_cookies(refused)
        with limited.db() as db:  # nothing was counted against the account itself
            assert db.scalar(select(Person.failed_signins).where(Person.email == "ines@shop.example")) == 0


# ------------------------------------------------------------------------------ mailed links
def test_an_expired_link_and_a_used_link_say_so(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    browser.get("/reset")
    assert browser.post("/reset", {"email": admin}).status_code == 200
    expiring = last_link(cloud, admin, "/reset")
    with cloud.db() as db:
        db.execute(update(ActionLink).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        db.commit()
    expired = browser.get(expiring)
    assert expired.status_code == 409 and "This link has expired. Ask for a new one." in expired.text
    assert browser.post(expiring, {"password": NEW_PASSWORD}).status_code == 409

    browser.post("/reset", {"email": admin})
    fresh = last_link(cloud, admin, "/reset")
    assert browser.post(fresh, {"password": NEW_PASSWORD}).status_code == 303
    used = browser.get(fresh)
    assert used.status_code == 409 and "This link has already been used." in used.text
    assert 'href="/reset"' in used.text  # where to ask for a new one


def test_a_password_reset_signs_out_every_other_session(cloud: Cloud, admin: str) -> None:
    before = cloud.browser()
    before.sign_in(admin)
    assert before.get("/company/overview").status_code == 200

    forgetful = cloud.browser()
    forgetful.get("/reset")
    asked = forgetful.post("/reset", {"email": admin})
    assert asked.status_code == 200 and f"If {admin} has an account" in asked.text
    link = last_link(cloud, admin, "/reset")
    assert forgetful.get(link).status_code == 200
    weak = forgetful.post(link, {"password": "short"})
    assert weak.status_code == 422 and 'id="e-password"' in weak.text
    done = forgetful.post(link, {"password": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "/signin"
    assert "every other session is signed out" in forgetful.follow(done).text

    gone = before.get("/company/overview")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
    assert signin_form(cloud.browser(), admin, PASSWORD).status_code == 401
    assert forgetful.sign_in(admin, NEW_PASSWORD).status_code == 200


def test_unknown_addresses_get_the_same_reset_answer_and_no_mail(cloud: Cloud) -> None:
    browser = cloud.browser()
    browser.get("/reset")
    reply = browser.post("/reset", {"email": "nobody@bakery.example"})
    assert reply.status_code == 200 and "If nobody@bakery.example has an account" in reply.text
    with cloud.db() as db:
        assert db.scalar(select(func.count()).select_from(MailOutbox)) == 0


# ------------------------------------------------------------------------------ signing out
def test_signing_out_ends_this_session_only(cloud: Cloud, admin: str) -> None:
    here, there = cloud.browser(), cloud.browser()
    here.sign_in(admin)
    there.sign_in(admin)
    out = here.post("/signout")
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert "You are signed out." in here.follow(out).text
    assert here.get("/company/overview").status_code == 303
    assert there.get("/company/overview").status_code == 200


def test_signing_out_everywhere_ends_the_other_browsers_sessions(cloud: Cloud, admin: str) -> None:
    here, there = cloud.browser(), cloud.browser()
    here.sign_in(admin)
    there.sign_in(admin)
    assert "Sign out everywhere" in here.get("/account").text
    out = here.post("/account/signout-everywhere")
    assert out.status_code == 303 and "You are signed out on every device." in here.follow(out).text
    for browser in (here, there):
        reply = browser.get("/company/overview")
        assert reply.status_code == 303 and reply.headers["location"].startswith("/signin")
    with cloud.db() as db:
        assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.revoked_at.is_(None))) == 0


# ------------------------------------------------------------------------------ CSRF, redirects, sizes
def test_a_form_without_its_csrf_token_or_with_a_wrong_one_changes_nothing(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    browser.sign_in(admin)
    invite = {"email": "eve@bakery.example", "name": "Eve", "grade": "admin"}
    missing = browser.post("/company/people/invite", invite, csrf=False)
    assert missing.status_code == 403 and "This form has expired or did not come from this site." in missing.text
    wrong = browser.post("/company/people/invite", {**invite, "csrf_token": "x" * 43}, csrf=False)
    assert wrong.status_code == 403
    assert browser.post("/company/tokens", {"label": "sneaky"}, csrf=False).status_code == 403
    before_signin = cloud.browser()
    before_signin.get("/signin")
    assert before_signin.post("/signin", {"email": admin, "password": PASSWORD}, csrf=False).status_code == 403
    with cloud.db() as db:
        assert db.scalar(select(Person).where(Person.email == "eve@bakery.example")) is None
        assert db.scalar(select(func.count()).select_from(User).where(User.company_id.is_not(None))) == 1
        assert db.scalar(select(func.count()).select_from(MailOutbox)) == 0
    assert browser.post("/company/people/invite", invite).status_code == 303  # with its token it works


def test_an_open_redirect_in_next_is_not_followed(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    form = browser.get("/signin?next=//evil.example")
    assert "evil.example" not in form.text
    for target in ("//evil.example", "https://evil.example/x", "/\\evil.example"):
        reply = signin_form(browser, admin, PASSWORD, next=target)
        assert reply.status_code == 303 and reply.headers["location"] == "/company/overview", target
    asked = cloud.browser().get("/company/tokens?state=active")
    assert asked.headers["location"] == "/signin?next=%2Fcompany%2Ftokens%3Fstate%3Dactive"
    returning = cloud.browser()
    reply = signin_form(returning, admin, PASSWORD, next="/company/tokens?state=active")
    assert reply.headers["location"] == "/company/tokens?state=active"


def test_a_huge_field_is_refused_with_a_clear_message(cloud: Cloud, admin: str) -> None:
    browser = cloud.browser()
    huge = "a" * 20_000
    reply = signin_form(browser, huge + "@bakery.example", PASSWORD)
    assert reply.status_code == 422 and "Use at most 254 characters." in reply.text
    assert huge not in reply.text
    browser.sign_in(admin)
    invite = browser.post("/company/people/invite", {"email": "eve@bakery.example", "name": huge, "grade": "viewer"})
    assert invite.status_code == 422 and "Use at most 200 characters." in invite.text
    with cloud.db() as db:
        assert db.scalar(select(Person).where(Person.email == "eve@bakery.example")) is None


# ------------------------------------------------------------------------------ choosing a cabinet
def test_one_address_with_two_cabinets_chooses_and_switches(cloud: Cloud) -> None:
    partner_user = cloud.member("sam@both.example", Role.PARTNER_ADMIN, partner_id=cloud.partner("North Partners"))
    company_user = cloud.member("sam@both.example", Role.COMPANY_ADMIN, company_id=cloud.company("Bakery Ltd"))
    browser = cloud.browser()
    signed = signin_form(browser, "sam@both.example", PASSWORD)
    assert signed.headers["location"] == "/choose"
    assert browser.get("/company/overview").headers["location"] == "/choose"  # nothing open yet
    choose = browser.get("/choose")
    assert "North Partners" in choose.text and "Bakery Ltd" in choose.text
    assert f'value="{partner_user}"' in choose.text and f'value="{company_user}"' in choose.text

    as_partner = browser.post("/choose", {"membership": str(partner_user)})
    assert as_partner.status_code == 303 and as_partner.headers["location"].startswith("/partner/")
    people = browser.get("/partner/people")
    assert people.status_code == 200 and "North Partners" in people.text and 'href="/choose"' in people.text
    refused = browser.get("/company/overview")
    assert refused.status_code == 403 and "This page belongs to another cabinet." in refused.text

    as_company = browser.post("/choose", {"membership": str(company_user)})
    assert as_company.headers["location"] == "/company/overview"
    assert "Bakery Ltd" in browser.follow(as_company).text
    assert browser.get("/partner/people").status_code == 403
    someone_elses = browser.post("/choose", {"membership": "999"})
    assert someone_elses.headers["location"] == "/choose"
    assert browser.get("/company/overview").status_code == 200  # still the company's cabinet
