"""The owner's cabinet through its real pages: partners (register, invite, list with their
stock), selling sealed licences, the documents; who may do what; the keys never shown."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, insert, select

from broker.contract import licence as kl
from cloud_api.accounts.audit import Actor
from cloud_api.accounts.models import Person
from cloud_api.documents import service as documents
from cloud_api.documents.models import DocumentKind, LicenceDocument
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.mail.models import MailOutbox
from cloud_api.tenancy.models import LinkState, Partner, PartnerLink, Role, User
from cloud_api.tenancy.tokens import Principal, create_owner
from cloud_api.web.i18n import cabinet_language
from tests.cloud.web_support import (
    PASSWORD,
    Browser,
    Cloud,
    mailed_link,
)

BOSS = "boss@kassa.test"
NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()


def owner_admin(cloud: Cloud) -> Browser:
    cloud.member(BOSS, Role.OWNER_ADMIN)
    browser = cloud.browser()
    landing = browser.sign_in(BOSS)
    assert landing.status_code == 200, landing.text[:500]
    return browser


def sell(browser: Browser, partner_id: int, quantity: int = 5, **fields: str) -> Any:
    form = {"partner_id": str(partner_id), "quantity": str(quantity), "valid_until": NEXT_YEAR, **fields}
    return browser.post("/owner/sales/new", form)


def error_of(page: str, field: str) -> str:
    """The error shown next to `field` (the macro's <p class="error" id="e-field">)."""
    found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    assert found, f"no error next to {field}"
    return html.unescape(found.group(1))


def counts(cloud: Cloud) -> tuple[int, int, int]:
    with cloud.db() as db:
        return (
            db.scalar(select(func.count()).select_from(Partner)) or 0,
            db.scalar(select(func.count()).select_from(MailOutbox)) or 0,
            db.scalar(select(func.count()).select_from(LicenceDocument)) or 0,
        )


def owner_viewer(cloud: Cloud, email: str) -> None:
    """An owner_viewer membership. The users table's role check is widened to every grade by
    migration 0012 (member grades), still a placeholder on this branch: this one insert goes in
    with SQLite's check constraints off."""
    person_id = cloud.person(email)
    with cloud.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        try:
            conn.execute(
                insert(User).values(
                    name=email,
                    role=Role.OWNER_VIEWER,
                    owner_id=cloud.owner_id,
                    person_id=person_id,
                    created_at=datetime.now(UTC),
                )
            )
            conn.commit()
        finally:
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


@contextmanager
def statements(cloud: Cloud) -> Iterator[list[str]]:
    """The SQL statements run on the cloud's engine meanwhile."""
    seen: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(cloud.engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(cloud.engine, "before_cursor_execute", remember)


# ------------------------------------------------------------------------------ partners
def test_the_owner_registers_a_partner_whose_admin_accepts_and_opens_the_partner_cabinet(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    assert boss.get("/owner").headers["location"] == "/owner/partners"
    empty = boss.get("/owner/partners")
    assert "No partners yet — register the first one." in empty.text

    assert boss.get("/owner/partners/new").status_code == 200
    reply = boss.post(
        "/owner/partners/new",
        {"partner_name": "Acme Resellers", "admin_name": "Ada Admin", "admin_email": "Ada@Partner.test"},
    )
    assert reply.status_code == 303, reply.text[:800]
    detail = boss.follow(reply)
    assert detail.status_code == 200
    assert "Partner registered. We sent an invitation to Ada@Partner.test." in html.unescape(detail.text)
    assert "ada@partner.test" in detail.text and "Not accepted yet" in detail.text

    with cloud.db() as db:
        partner = db.scalars(select(Partner).where(Partner.name == "Acme Resellers")).one()
        mail = db.scalars(select(MailOutbox).where(MailOutbox.to_address == "ada@partner.test")).one()
    assert reply.headers["location"] == f"/owner/partners/{partner.id}"

    invited = cloud.browser()
    link = mailed_link(mail.body_text, "/invite")
    assert "Acme Resellers" in invited.get(link).text
    accepted = invited.post(link, {"name": "Ada Admin", "password": PASSWORD})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/signin"
    invited.get("/signin")
    signed_in = invited.post("/signin", {"email": "ada@partner.test", "password": PASSWORD})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/partner/licences"  # their only cabinet: the partner's

    assert "Accepted" in boss.get(f"/owner/partners/{partner.id}").text


def test_the_owner_invites_another_admin_of_a_partner(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    partner_id = cloud.partner("Beta Partner")
    url = f"/owner/partners/{partner_id}/invite"

    wrong = boss.post(url, {"name": "Bob", "email": "not an address", "grade": "admin"})
    assert wrong.status_code == 422
    assert error_of(wrong.text, "email") == "Enter an e-mail address like name@example.com."
    assert 'value="Bob"' in wrong.text  # what was typed stays

    reply = boss.post(url, {"name": "Bob", "email": "bob@beta.test", "grade": "admin"})
    assert reply.status_code == 303
    assert "We sent an invitation to bob@beta.test." in boss.follow(reply).text
    again = boss.post(url, {"name": "Bob", "email": "bob@beta.test", "grade": "admin"})
    assert again.status_code == 303  # not accepted yet: a fresh invitation for the same membership
    with cloud.db() as db:
        mails = db.scalar(select(func.count()).select_from(MailOutbox).where(MailOutbox.to_address == "bob@beta.test"))
        assert mails == 2
    with cloud.db() as db:  # Bob accepts (through the service, as the invitation page does)
        from cloud_api.accounts.people import accept_invitation

        body = db.scalars(select(MailOutbox.body_text).where(MailOutbox.to_address == "bob@beta.test")).all()[-1]
        accept_invitation(
            db, mailed_link(body, "/invite").rsplit("/", 1)[1], password=PASSWORD, name=None, now=datetime.now(UTC)
        )
        db.commit()
    accepted = boss.post(url, {"name": "Bob", "email": "bob@beta.test", "grade": "admin"})
    assert accepted.status_code == 422
    assert error_of(accepted.text, "email") == "bob@beta.test is already a member here."
    no_such_grade = boss.post(url, {"name": "Cy", "email": "cy@beta.test", "grade": "root"})
    assert error_of(no_such_grade.text, "grade") == "This value has the wrong form."
    with cloud.db() as db:
        user = db.scalars(select(User).where(User.partner_id == partner_id)).one()
        assert user.role == Role.PARTNER_ADMIN
        assert db.scalar(select(func.count()).select_from(MailOutbox).where(MailOutbox.to_address == "bob@beta.test"))


def test_partners_list_searches_sorts_and_pages_with_one_stock_query_per_page(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    ids = [cloud.partner(f"Partner {number:03d}") for number in range(1, 61)]
    assert sell(boss, ids[0], 3).status_code == 303  # "Partner 001" holds three sealed licences

    with statements(cloud) as seen:
        first = boss.get("/owner/partners")
    assert first.status_code == 200
    assert "1–50 of 60" in first.text
    stock_queries = [s for s in seen if "FROM licences" in s]
    assert len(stock_queries) == 1, stock_queries
    row = re.search(rf'href="/owner/partners/{ids[0]}">Partner 001</a></td>(.*?)</tr>', first.text, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(1)) == ["3", "0", "0", "0", "0"]

    second = boss.get(html.unescape(re.search(r'href="([^"]+)" rel="next"', first.text).group(1)))  # type: ignore[union-attr]
    assert "51–60 of 60" in second.text and "Partner 060" in second.text and "Partner 001" not in second.text

    found = boss.get("/owner/partners", params={"q": "partner 05"})
    assert "1–10 of 10" in found.text
    assert all(f"Partner {n:03d}" in found.text for n in range(50, 60))

    newest_first = boss.get("/owner/partners", params={"sort": "registered", "dir": "desc"})
    names = re.findall(r'href="/owner/partners/\d+">(Partner \d+)</a>', newest_first.text)
    assert names[0] == "Partner 060"

    nothing = boss.get("/owner/partners", params={"q": "%"})
    assert "No partner's name contains “%”." in html.unescape(nothing.text)


def test_a_name_too_long_is_refused_next_to_its_field_and_html_in_a_name_is_shown_as_text(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    before = counts(cloud)
    reply = boss.post(
        "/owner/partners/new",
        {"partner_name": "x" * 20_000, "admin_name": "Ada", "admin_email": "ada@partner.test"},
    )
    assert reply.status_code == 422
    assert error_of(reply.text, "partner_name") == "Use at most 200 characters."
    assert 'value="ada@partner.test"' in reply.text
    assert counts(cloud) == before

    missing = boss.post("/owner/partners/new", {"partner_name": "Gamma", "admin_name": "", "admin_email": "bad"})
    assert missing.status_code == 422
    assert error_of(missing.text, "admin_name") == "Fill in this field."
    assert counts(cloud) == before
    bad_email = boss.post("/owner/partners/new", {"partner_name": "Gamma", "admin_name": "G", "admin_email": "bad"})
    assert error_of(bad_email.text, "admin_email") == "Enter an e-mail address like name@example.com."
    assert counts(cloud) == before

    name = '<script>alert("x")</script> & Co'
    reply = boss.post("/owner/partners/new", {"partner_name": name, "admin_name": "Eve", "admin_email": "eve@co.test"})
    assert reply.status_code == 303
    for url in (reply.headers["location"], "/owner/partners"):
        text = boss.get(url).text
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in text


# ------------------------------------------------------------------------------ selling, documents
def test_selling_five_sealed_licences_makes_a_document_and_no_page_shows_a_key(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    partner_id = cloud.partner("Delta Partner")
    form = boss.get(f"/owner/sales/new?partner_id={partner_id}")
    assert f'<option value="{partner_id}" selected>' in form.text
    assert f'value="{NEXT_YEAR[:4]}' in form.text  # a year ahead by default

    reply = sell(boss, partner_id, 5, note="First delivery")
    assert reply.status_code == 303, reply.text[:800]
    document_page = boss.follow(reply)
    with cloud.db() as db:
        document = db.scalars(select(LicenceDocument)).one()
        licences = documents.document_licences(db, document)
    assert reply.headers["location"] == f"/owner/documents/{document.id}"
    assert document.kind == DocumentKind.SALE and document.quantity == 5 and document.number.startswith("S-")
    assert len(licences) == 5 and {licence.state for licence in licences} == {LicenceState.SEALED}
    assert all(licence.partner_id == partner_id and licence.company_id is None for licence in licences)
    assert f"{document.number}: 5 sealed licences sold." in document_page.text
    assert all(licence.id in document_page.text for licence in licences)
    assert document_page.text.count(">Sealed</span>") == 5

    pages = [
        document_page.text,
        boss.get(f"/owner/documents/{document.id}/print").text,
        boss.get("/owner/documents").text,
        boss.get(f"/owner/partners/{partner_id}").text,
        boss.get("/owner/partners").text,
    ]
    assert document.number in pages[1] and "First delivery" in pages[1] and 'class="document"' in pages[1]
    assert document.number in pages[2] and document.number in pages[3]
    for text in pages:
        for licence in licences:
            assert licence.licence_key not in text
            assert kl.format_licence_key(licence.licence_key) not in text


def test_a_sale_refused_by_its_fields_changes_nothing(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    partner_id = cloud.partner("Echo Partner")
    with cloud.db() as db:
        other_owner, _admin, _token = create_owner(db, "Another Cloud")
        stranger = Partner(owner_id=other_owner.id, name="Not yours", created_at=datetime.now(UTC))
        db.add(stranger)
        db.commit()

    too_many = sell(boss, partner_id, 1001)
    assert too_many.status_code == 422 and error_of(too_many.text, "quantity") == "Enter a number of at most 1000."
    assert 'value="1001"' in too_many.text
    past = sell(boss, partner_id, 2, valid_until="2000-01-01")
    assert past.status_code == 422 and error_of(past.text, "valid_until") == "Choose a date after today."
    not_yours = sell(boss, stranger.id, 2)
    assert not_yours.status_code == 422
    assert error_of(not_yours.text, "partner_id") == "Choose one of the partners offered."
    assert "Not yours" not in not_yours.text
    no_partner = boss.post("/owner/sales/new", {"quantity": "2", "valid_until": NEXT_YEAR})
    assert error_of(no_partner.text, "partner_id") == "Fill in this field."
    with cloud.db() as db:
        assert db.scalar(select(func.count()).select_from(Licence)) == 0
        assert db.scalar(select(func.count()).select_from(LicenceDocument)) == 0
    assert boss.get(f"/owner/partners/{stranger.id}").status_code == 404


def test_documents_list_shows_the_partners_moves_with_filters(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    first, second = cloud.partner("Foxtrot"), cloud.partner("Golf")
    assert sell(boss, first, 4).status_code == 303
    assert sell(boss, second, 2).status_code == 303
    company_id = cloud.company("Hotel Shop")
    partner_user = cloud.member("fox@foxtrot.test", Role.PARTNER_ADMIN, partner_id=first)
    now = datetime.now(UTC)
    with cloud.db() as db:
        db.add(
            PartnerLink(
                company_id=company_id,
                partner_id=first,
                state=LinkState.ACTIVE,
                open_company_id=company_id,
                requested_by=partner_user,
                requested_at=now,
                decided_at=now,
            )
        )
        principal = Principal(partner_user, Role.PARTNER_ADMIN, cloud.owner_id, first, None, 0)
        move = documents.move_sealed(
            db, Actor(principal, "fox@foxtrot.test"), company_id=company_id, quantity=3, now=now
        )
        db.commit()

    everything = boss.get("/owner/documents")
    assert "1–3 of 3" in everything.text and move.number in everything.text and "Hotel Shop" in everything.text
    moves = boss.get("/owner/documents", params={"kind": "move"})
    assert "1–1 of 1" in moves.text and move.number in moves.text
    golf = boss.get("/owner/documents", params={"partner_id": str(second)})
    assert "1–1 of 1" in golf.text and "Golf" in golf.text
    by_number = boss.get("/owner/documents", params={"q": move.number.lower()})
    assert "1–1 of 1" in by_number.text
    none = boss.get("/owner/documents", params={"q": "Z-404"})
    assert "No document matches these filters." in none.text

    moved = boss.get(f"/owner/documents/{move.id}")
    assert moved.status_code == 200 and "Hotel Shop" in moved.text and "Move to a company" in moved.text
    listing = boss.get("/owner/partners", params={"q": "Foxtrot"}).text
    row = re.search(r">Foxtrot</a></td>(.*?)</tr>", listing, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(1)) == ["1", "0", "3", "0", "1"]
    assert boss.get("/owner/documents/999999").status_code == 404


# ------------------------------------------------------------------------------ who may
def test_an_owner_viewer_reads_but_may_not_change_and_a_partner_may_not_enter(cloud: Cloud) -> None:
    partner_id = cloud.partner("India")
    owner_viewer(cloud, "viewer@kassa.test")
    viewer = cloud.browser()
    listing = viewer.sign_in("viewer@kassa.test")
    assert listing.status_code == 200 and "India" in listing.text
    assert 'href="/owner/partners/new"' not in listing.text
    before = counts(cloud)
    for url, form in (
        ("/owner/partners/new", {"partner_name": "X", "admin_name": "X", "admin_email": "x@x.test"}),
        (f"/owner/partners/{partner_id}/invite", {"name": "X", "email": "x@x.test", "grade": "admin"}),
        ("/owner/sales/new", {"partner_id": str(partner_id), "quantity": "1", "valid_until": NEXT_YEAR}),
    ):
        assert viewer.post(url, form).status_code == 403, url
    assert viewer.get("/owner/sales/new").status_code == 403
    assert counts(cloud) == before

    cloud.member("partner@india.test", Role.PARTNER_ADMIN, partner_id=partner_id)
    outsider = cloud.browser()
    outsider.get("/signin")
    assert outsider.post("/signin", {"email": "partner@india.test", "password": PASSWORD}).status_code == 303
    for url in ("/owner/partners", f"/owner/partners/{partner_id}", "/owner/documents", "/owner/sales/new"):
        assert outsider.get(url).status_code == 403, url


def test_every_owner_page_renders_in_russian(cloud: Cloud) -> None:
    boss = owner_admin(cloud)
    partner_id = cloud.partner("Juliett")
    sell(boss, partner_id, 1)
    with cloud.db() as db:
        document_id = db.scalars(select(LicenceDocument.id)).one()
        assert db.scalars(select(Person.locale).where(Person.email == BOSS)).one() is None
    ru = {"Accept-Language": "ru-RU,ru;q=0.9"}
    russian = cabinet_language("ru")  # English until the cabinet's Russian catalogue exists
    for url in (
        "/owner/partners",
        "/owner/partners/new",
        f"/owner/partners/{partner_id}",
        "/owner/sales/new",
        "/owner/documents",
        f"/owner/documents/{document_id}",
        f"/owner/documents/{document_id}/print",
    ):
        reply = boss.get(url, headers=ru)
        assert reply.status_code == 200, url
        assert f'<html lang="{russian.code}">' in reply.text, url
        assert russian.gettext("Documents") in reply.text, url
