"""The partner's cabinet through its real pages: the licence stock, documents (move, unseal, key
shown once and then on an audited request, print, CSV), link requests (with and without htmx),
client companies, and what a partner must not reach (another partner's objects, a company's data)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from broker.contract import licence as kl
from cloud_api.accounts.models import AuditEvent
from cloud_api.documents.models import DocumentKind, LicenceDocument
from cloud_api.licences import book
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.tenancy.models import Device, LinkState, Partner, PartnerLink
from tests.cloud.api_support import migrated_engine
from tests.cloud.web_support import Browser, Cloud, make_cloud

VALID_INN = "7707083893"
WRONG_CHECK_DIGIT_INN = "7707083894"
HTMX = {"HX-Request": "true"}


@dataclass
class Partnership:
    """A partner with an admin, one client company (active link) and its sealed stock."""

    partner_id: int
    admin_user: int
    admin_email: str
    client_id: int
    client_link: int
    stock: list[str]


def _link(cloud: Cloud, company_id: int, partner_id: int, state: str, message: str | None = None) -> int:
    requester = cloud.member(f"admin{company_id}@company.test", "company_admin", company_id=company_id)
    moment = datetime.now(UTC) - timedelta(days=1)
    with cloud.db() as db:
        link = PartnerLink(
            company_id=company_id,
            partner_id=partner_id,
            state=state,
            open_company_id=company_id,
            message=message,
            requested_by=requester,
            requested_at=moment,
            decided_at=moment if state == LinkState.ACTIVE else None,
        )
        db.add(link)
        db.commit()
        return link.id


def _issue(cloud: Cloud, partner_id: int, user_id: int, count: int) -> list[str]:
    moment = datetime.now(UTC)
    with cloud.db() as db:
        partner = db.get_one(Partner, partner_id)
        issued = book.issue_licences(db, partner, count, {}, moment + timedelta(days=365), by_user=user_id, now=moment)
        db.commit()
        return sorted(licence.id for licence in issued)  # the oldest first: one moment, then by id


def _partner_member(cloud: Cloud, email: str, role: str, partner_id: int) -> int:
    """A partner membership of any grade."""
    return cloud.member(email, role, partner_id=partner_id)


def _partnership(cloud: Cloud, name: str, *, stock: int = 3, role: str = "partner_admin") -> Partnership:
    partner_id = cloud.partner(name)
    email = f"{role}@{name.lower().replace(' ', '-')}.test"
    user = _partner_member(cloud, email, role, partner_id)
    client = cloud.company(f"{name} Client")
    link = _link(cloud, client, partner_id, LinkState.ACTIVE)
    return Partnership(partner_id, user, email, client, link, _issue(cloud, partner_id, user, stock))


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with migrated_engine("sqlite", tmp_path) as engine:
        yield make_cloud(engine, str(engine.url))


@pytest.fixture
def north(cloud: Cloud) -> Partnership:
    return _partnership(cloud, "North")


def _signed_in(cloud: Cloud, email: str) -> Browser:
    browser = cloud.browser()
    landing = browser.sign_in(email)
    assert landing.status_code == 200 and "<h1>Licences</h1>" in landing.text
    return browser


def _licences(cloud: Cloud, partner_id: int) -> list[Licence]:
    with cloud.db() as db:
        return list(db.scalars(select(Licence).where(Licence.partner_id == partner_id).order_by(Licence.id)))


def _audit(cloud: Cloud, action: str) -> list[AuditEvent]:
    with cloud.db() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _unseal(browser: Browser, firm: str = "Romashka LLC", inn: str = VALID_INN) -> Any:
    return browser.post(
        "/partner/documents/new/unseal", {"firm_name": firm, "tax_number": inn, "buyer_email": "Buyer@Romashka.test"}
    )


def _count(page: str, state: str) -> str:
    found = re.search(rf'id="count-{state}">([^<]*)<', page)
    assert found, state
    return found.group(1)


# ------------------------------------------------------------------------------ stock
def test_stock_page_counts_filters_and_search(cloud: Cloud, north: Partnership) -> None:
    sealed, held, unsealed, bound, revoked = _issue(cloud, north.partner_id, north.admin_user, 5)
    moment = datetime.now(UTC)
    with cloud.db() as db:
        book.assign(db, held, north.client_id, by_user=north.admin_user, now=moment)
        book.unseal(db, unsealed, by_user=north.admin_user, now=moment)
        book.revoke(db, revoked, by_user=north.admin_user, now=moment)
        db.add(Device(device_id="dev-north-1", company_id=north.client_id, created_at=moment))
        book.assign(db, bound, north.client_id, by_user=north.admin_user, now=moment)
        db.flush()
        licence = db.get_one(Licence, bound)
        licence.state, licence.device_id, licence.epoch = LicenceState.BOUND, "dev-north-1", 1
        db.commit()
    south = _partnership(cloud, "South", stock=4)
    browser = _signed_in(cloud, north.admin_email)

    stock = browser.get("/partner/licences")
    assert stock.status_code == 200
    expected = {"sealed": "4", "unsealed": "1", "with_company": "1", "bound": "1", "releasing": "0", "revoked": "1"}
    assert {state: _count(stock.text, state) for state in expected} == expected
    assert "1–8 of 8" in stock.text
    assert not any(licence_id in stock.text for licence_id in south.stock)

    with_company = browser.get("/partner/licences?state=with_company").text
    assert held in with_company and "North Client" in with_company and sealed not in with_company
    bound_page = browser.get("/partner/licences?state=bound").text
    assert bound in bound_page and "dev-north-1" in bound_page and held not in bound_page
    assert "1–1 of 1" in browser.get("/partner/licences?state=revoked").text

    by_company = browser.get("/partner/licences", params={"q": "north client"}).text
    assert held in by_company and bound in by_company and "1–2 of 2" in by_company
    by_id = browser.get("/partner/licences", params={"q": sealed}).text
    assert "1–1 of 1" in by_id and sealed in by_id
    assert "No licence matches" in browser.get("/partner/licences", params={"q": "no_such%"}).text
    by_expiry = browser.get("/partner/licences?sort=valid_until&dir=desc&state=sealed")
    assert by_expiry.status_code == 200 and 'aria-sort="descending"' in by_expiry.text

    detail = browser.get(f"/partner/licences/{bound}").text
    assert "dev-north-1" in detail and "North Client" in detail and "Show key" not in detail


def test_partner_without_licences_sees_what_to_do(cloud: Cloud) -> None:
    partner_id = cloud.partner("Empty")
    cloud.member("admin@empty.test", "partner_admin", partner_id=partner_id)
    browser = _signed_in(cloud, "admin@empty.test")
    assert "No licences yet" in browser.get("/partner/licences").text
    assert browser.get("/partner").headers["location"] == "/partner/licences"
    move = browser.get("/partner/documents/new/move").text
    assert "accept its link request first" in move and 'name="quantity"' not in move
    assert "No documents yet" in browser.get("/partner/documents").text
    assert "No requests waiting" in browser.get("/partner/links").text
    assert "No client companies yet" in browser.get("/partner/clients").text


# ------------------------------------------------------------------------------ move
def test_move_sealed_licences_to_a_client(cloud: Cloud, north: Partnership) -> None:
    _link(cloud, cloud.company("Pending Co"), north.partner_id, LinkState.PENDING)
    browser = _signed_in(cloud, north.admin_email)
    form = browser.get("/partner/documents/new/move").text
    assert "You have 3 sealed licences." in form
    assert "North Client" in form and "Pending Co" not in form

    moved = browser.post(
        "/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "2", "note": "first batch"}
    )
    document_page = browser.follow(moved)
    assert "2 licences moved to the company" in document_page.text
    number = re.search(r"Document (M-\d{6})", document_page.text)
    assert number and "North Client" in document_page.text and "first batch" in document_page.text

    licences = {licence.id: licence for licence in _licences(cloud, north.partner_id)}
    moved_ids = north.stock[:2]  # the oldest first
    assert all(licences[i].state == LicenceState.ASSIGNED for i in moved_ids)
    assert all(licences[i].company_id == north.client_id for i in moved_ids)
    assert licences[north.stock[2]].state == LicenceState.SEALED
    assert all(licence_id in document_page.text for licence_id in moved_ids)
    assert {(e.org_level, e.org_id) for e in _audit(cloud, "licences.moved")} == {("partner", north.partner_id)}
    assert {(e.org_level, e.org_id) for e in _audit(cloud, "licences.received")} == {("company", north.client_id)}

    printed = browser.get(re.sub(r"^.*?(/partner/documents/\d+)$", r"\1/print", moved.headers["location"]))
    assert printed.status_code == 200 and 'class="document"' in printed.text and number.group(1) in printed.text
    assert "sidenav" not in printed.text and all(licence_id in printed.text for licence_id in moved_ids)
    assert not any(licences[i].licence_key in printed.text for i in moved_ids)


def test_moving_more_than_the_stock_changes_nothing(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    browser.get("/partner/documents/new/move")
    too_many = browser.post("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "5"})
    assert too_many.status_code == 409
    error = re.search(r'<p class="error" id="e-quantity">([^<]*)</p>', too_many.text)
    assert error and "You have 3 sealed licences" in error.group(1)
    assert 'value="5"' in too_many.text  # the form keeps what was typed

    not_a_client = cloud.company("Stranger")
    refused = browser.post("/partner/documents/new/move", {"company_id": str(not_a_client), "quantity": "1"})
    assert refused.status_code == 422 and 'id="e-company_id"' in refused.text
    no_number = browser.post("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "two"})
    assert no_number.status_code == 422 and "Enter a whole number." in no_number.text

    assert all(licence.state == LicenceState.SEALED for licence in _licences(cloud, north.partner_id))
    with cloud.db() as db:
        assert db.scalar(select(func.count()).select_from(LicenceDocument)) == 0


# ------------------------------------------------------------------------------ unseal
def test_unsealed_key_is_shown_once_then_on_an_audited_request(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    assert "You have 3 sealed licences." in browser.get("/partner/documents/new/unseal").text
    done = _unseal(browser)
    assert done.status_code == 200
    licence = next(item for item in _licences(cloud, north.partner_id) if item.state == LicenceState.ASSIGNED)
    key = kl.format_licence_key(licence.licence_key)
    secret = re.search(r'<p class="secret"[^>]*>([^<]+)</p>', done.text)
    assert secret and secret.group(1) == key
    assert re.search(r"Document U-\d{6}", done.text) and "recorded in the audit" in done.text
    assert licence.company_id is None and licence.id == north.stock[0]

    detail = browser.get(f"/partner/licences/{licence.id}").text
    assert key not in detail and licence.licence_key not in detail
    assert "Romashka LLC" in detail and VALID_INN in detail and "buyer@romashka.test" in detail
    assert "Show key" in detail and "Unsealed" in detail
    assert _audit(cloud, "licence.key_shown") == []

    shown = browser.post(f"/partner/licences/{licence.id}/key")
    assert shown.status_code == 200 and f'aria-label="Licence key">{key}</p>' in shown.text
    events = _audit(cloud, "licence.key_shown")
    assert [(e.target, e.org_level, e.actor) for e in events] == [(licence.id, "partner", north.admin_email)]

    document = browser.get("/partner/documents").text
    assert "Romashka LLC" in document and "Unsealed for a buyer" in document
    sealed_detail = browser.get(f"/partner/licences/{north.stock[1]}").text
    assert "Show key" not in sealed_detail
    refused = browser.post(f"/partner/licences/{north.stock[1]}/key")
    assert refused.status_code == 403 and "sealed ones keep it hidden" in refused.text
    assert len(_audit(cloud, "licence.key_shown")) == 1


def test_the_unseal_form_sent_twice_unseals_one_licence(cloud: Cloud, north: Partnership) -> None:
    """A reloaded answer page sends the form again: the same document comes back (the key's second
    showing is audited) instead of a second licence unsealed."""
    browser = _signed_in(cloud, north.admin_email)
    form = browser.get("/partner/documents/new/unseal").text
    request_id = re.search(r'name="request_id" value="([^"]+)"', form)
    assert request_id
    fields = {"firm_name": "Once LLC", "tax_number": VALID_INN, "buyer_email": "b@once.test"}
    first = browser.post("/partner/documents/new/unseal", {**fields, "request_id": request_id.group(1)})
    second = browser.post("/partner/documents/new/unseal", {**fields, "request_id": request_id.group(1)})
    number = re.search(r"Document (U-\d{6})", first.text)
    assert first.status_code == second.status_code == 200 and number and number.group(0) in second.text
    unsealed = [item for item in _licences(cloud, north.partner_id) if item.state == LicenceState.ASSIGNED]
    assert len(unsealed) == 1
    assert [e.target for e in _audit(cloud, "licence.key_shown")] == [unsealed[0].id]
    fresh = browser.get("/partner/documents/new/unseal").text
    assert f'value="{request_id.group(1)}"' not in fresh  # a new form is a new request


def test_a_wrong_tax_number_is_shown_next_to_its_field(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    wrong = _unseal(browser, inn=WRONG_CHECK_DIGIT_INN)
    assert wrong.status_code == 422
    error = re.search(r'<p class="error" id="e-tax_number">([^<]*)</p>', wrong.text)
    assert error and "Enter a valid INN" in error.group(1)
    assert 'value="Romashka LLC"' in wrong.text and 'class="secret"' not in wrong.text
    letters = _unseal(browser, inn="77070838ab")
    assert letters.status_code == 422 and 'id="e-tax_number"' in letters.text
    no_email = browser.post("/partner/documents/new/unseal", {"firm_name": "X", "tax_number": VALID_INN})
    assert no_email.status_code == 422 and 'id="e-buyer_email"' in no_email.text
    assert all(licence.state == LicenceState.SEALED for licence in _licences(cloud, north.partner_id))


def test_html_in_a_firm_name_is_shown_as_text(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    firm = '<script>alert("x")</script> & Co'
    done = _unseal(browser, firm=firm)
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co"
    assert escaped in done.text and "<script>alert" not in done.text
    for path in ("/partner/documents", f"/partner/licences/{north.stock[0]}"):
        text = browser.get(path).text
        assert escaped in text and "<script>alert" not in text


# ------------------------------------------------------------------------------ CSV
def test_documents_csv_reads_in_excel_and_runs_no_formula(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    browser.get("/partner/documents/new/move")
    browser.post("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "1"})
    _unseal(browser, firm='=HYPERLINK("http://evil.test","open")')
    _unseal(browser, firm="ООО «Ромашка»")

    export = browser.get("/partner/documents.csv")
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "Number",
        "Kind",
        "Date",
        "Company",
        "Firm",
        "Tax number (INN)",
        "Buyer e-mail",
        "Quantity",
        "Created by",
        "Licences",
    ]
    move, formula, cyrillic = rows[1:]
    assert re.fullmatch(r"M-\d{6}", move[0]) and move[3] == "North Client" and move[9] == north.stock[0]
    assert datetime.fromisoformat(move[2]).tzinfo is not None
    assert formula[4] == '\'=HYPERLINK("http://evil.test","open")' and formula[5] == VALID_INN
    assert formula[6] == "buyer@romashka.test" and formula[8] == north.admin_email and formula[9] == north.stock[1]
    assert cyrillic[4] == "ООО «Ромашка»"

    only_moves = browser.get("/partner/documents.csv", params={"kind": DocumentKind.MOVE})
    assert [row[0] for row in csv.reader(io.StringIO(only_moves.content.decode("utf-8-sig")))][1:] == [move[0]]
    by_firm = browser.get("/partner/documents.csv", params={"q": "ромашка"})
    assert len(list(csv.reader(io.StringIO(by_firm.content.decode("utf-8-sig"))))) in (1, 2)  # SQLite folds ASCII only
    listed = browser.get("/partner/documents?kind=unseal").text
    assert "1–2 of 2" in listed and "/partner/documents.csv?kind=unseal" in listed


# ------------------------------------------------------------------------------ links and clients
def test_accept_and_reject_link_requests_with_and_without_htmx(cloud: Cloud, north: Partnership) -> None:
    beta, gamma, delta = (cloud.company(name) for name in ("Beta", "Gamma", "Delta"))
    links = {
        company: _link(cloud, company, north.partner_id, LinkState.PENDING, message=f"Hello from {company}")
        for company in (beta, gamma, delta)
    }
    browser = _signed_in(cloud, north.admin_email)
    inbox = browser.get("/partner/links").text
    assert "1–3 of 3" in inbox and f"Hello from {beta}" in inbox and "hx-post" in inbox

    accepted = browser.post(f"/partner/links/{links[beta]}/accept")
    assert accepted.headers["location"] == "/partner/links"
    assert "Beta is now your client." in browser.follow(accepted).text

    rejected = browser.post(f"/partner/links/{links[gamma]}/reject", headers=HTMX)
    assert rejected.status_code == 200 and rejected.text.lstrip().startswith(f'<tr id="link-{links[gamma]}">')
    assert "Rejected" in rejected.text and "<html" not in rejected.text
    by_htmx = browser.client.post(
        f"/partner/links/{links[delta]}/accept", headers={**HTMX, "X-CSRF-Token": browser.csrf}
    )
    assert by_htmx.status_code == 200 and "Accepted" in by_htmx.text
    again = browser.post(f"/partner/links/{links[delta]}/reject", headers=HTMX)
    assert again.status_code == 200 and "answered or withdrawn meanwhile" in again.text
    assert browser.post(f"/partner/links/{links[delta]}/reject").status_code == 409

    with cloud.db() as db:
        states = {link.company_id: link.state for link in db.scalars(select(PartnerLink))}
    assert states[beta] == states[delta] == LinkState.ACTIVE and states[gamma] == LinkState.REJECTED
    assert {(e.org_level, e.target) for e in _audit(cloud, "link.rejected")} == {
        ("company", f"link {links[gamma]}"),
        ("partner", f"link {links[gamma]}"),
    }
    assert "No requests waiting" in browser.get("/partner/links").text
    clients = browser.get("/partner/clients").text
    assert "Beta" in clients and "Delta" in clients and "Gamma" not in clients and "1–3 of 3" in clients


def test_end_a_link_asks_once(cloud: Cloud, north: Partnership) -> None:
    browser = _signed_in(cloud, north.admin_email)
    browser.get("/partner/documents/new/move")
    browser.post("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "2"})
    clients = browser.get("/partner/clients").text
    assert re.search(r'<td class="num"><a [^>]*>2</a></td>', clients)
    confirm = browser.get(f"/partner/clients/{north.client_link}/end")
    assert confirm.status_code == 200
    assert "The 2 licences it holds from you stay with it" in confirm.text and "End the link" in confirm.text

    ended = browser.post(f"/partner/clients/{north.client_link}/end")
    assert ended.headers["location"] == "/partner/clients"
    assert "The link with North Client has ended." in browser.follow(ended).text
    with cloud.db() as db:
        assert db.get_one(PartnerLink, north.client_link).state == LinkState.ENDED
    assert len(_audit(cloud, "link.ended")) == 2
    assert browser.get(f"/partner/clients/{north.client_link}/end").status_code == 404
    assert browser.post(f"/partner/clients/{north.client_link}/end").status_code == 404
    assert "No client companies yet" in browser.get("/partner/clients").text


# ------------------------------------------------------------------------------ who may
def test_another_partners_objects_are_not_found(cloud: Cloud, north: Partnership) -> None:
    south = _partnership(cloud, "South")
    south_browser = _signed_in(cloud, south.admin_email)
    _unseal(south_browser)
    with cloud.db() as db:
        south_document = db.scalars(select(LicenceDocument).where(LicenceDocument.partner_id == south.partner_id)).one()
    pending = _link(cloud, cloud.company("Asks South"), south.partner_id, LinkState.PENDING)

    browser = _signed_in(cloud, north.admin_email)
    for path in (
        f"/partner/licences/{south.stock[0]}",
        f"/partner/documents/{south_document.id}",
        f"/partner/documents/{south_document.id}/print",
        f"/partner/clients/{south.client_link}/end",
    ):
        assert browser.get(path).status_code == 404, path
    for path in (
        f"/partner/licences/{south.stock[0]}/key",
        f"/partner/links/{pending}/accept",
        f"/partner/clients/{south.client_link}/end",
    ):
        assert browser.post(path).status_code == 404, path
    refused = browser.post("/partner/documents/new/move", {"company_id": str(south.client_id), "quantity": "1"})
    assert refused.status_code == 422 and 'id="e-company_id"' in refused.text
    assert browser.get(f"/partner/documents/{10**20}").status_code == 422  # more than the database holds
    assert browser.post(f"/partner/links/{10**20}/accept").status_code == 422
    assert south_document.firm_name not in browser.get("/partner/documents.csv").text
    assert _audit(cloud, "licence.key_shown") == []
    with cloud.db() as db:
        assert db.get_one(PartnerLink, pending).state == LinkState.PENDING
    assert cloud.browser().get("/partner/licences").headers["location"].startswith("/signin")


def test_a_viewer_reads_but_changes_nothing(cloud: Cloud, north: Partnership) -> None:
    admin = _signed_in(cloud, north.admin_email)
    _unseal(admin)
    pending = _link(cloud, cloud.company("Asks North"), north.partner_id, LinkState.PENDING)
    _partner_member(cloud, "viewer@north.test", "partner_viewer", north.partner_id)
    viewer = _signed_in(cloud, "viewer@north.test")
    assert "Show key" not in viewer.get(f"/partner/licences/{north.stock[0]}").text
    assert "hx-post" not in viewer.get("/partner/links").text
    assert "End link" not in viewer.get("/partner/clients").text
    for path, data in (
        ("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "1"}),
        ("/partner/documents/new/unseal", {"firm_name": "X", "tax_number": VALID_INN, "buyer_email": "x@x.test"}),
        (f"/partner/licences/{north.stock[0]}/key", {}),
        (f"/partner/links/{pending}/accept", {}),
        (f"/partner/clients/{north.client_link}/end", {}),
    ):
        reply = viewer.post(path, data)
        assert reply.status_code == 403 and "read-only" in reply.text, path
    assert _audit(cloud, "licence.key_shown") == []
    states = [licence.state for licence in _licences(cloud, north.partner_id)]
    assert states.count(LicenceState.SEALED) == 2


def test_a_manager_moves_and_unseals(cloud: Cloud) -> None:
    east = _partnership(cloud, "East", role="partner_manager")
    browser = _signed_in(cloud, east.admin_email)
    browser.get("/partner/documents/new/move")
    moved = browser.post("/partner/documents/new/move", {"company_id": str(east.client_id), "quantity": "1"})
    assert moved.status_code == 303
    assert _unseal(browser).status_code == 200
    assert browser.post(f"/partner/licences/{east.stock[1]}/key").status_code == 200


def test_a_manager_answers_link_requests(cloud: Cloud) -> None:
    east = _partnership(cloud, "East", role="partner_manager")
    pending = _link(cloud, cloud.company("Asks East"), east.partner_id, LinkState.PENDING)
    browser = _signed_in(cloud, east.admin_email)
    assert browser.post(f"/partner/links/{pending}/accept").status_code == 303
    assert browser.post(f"/partner/clients/{east.client_link}/end").status_code == 303


def test_a_post_without_its_csrf_token_changes_nothing(cloud: Cloud, north: Partnership) -> None:
    pending = _link(cloud, cloud.company("Asks North"), north.partner_id, LinkState.PENDING)
    browser = _signed_in(cloud, north.admin_email)
    for path, data in (
        ("/partner/documents/new/move", {"company_id": str(north.client_id), "quantity": "1"}),
        ("/partner/documents/new/unseal", {"firm_name": "X", "tax_number": VALID_INN, "buyer_email": "x@x.test"}),
        (f"/partner/links/{pending}/accept", {}),
        (f"/partner/clients/{north.client_link}/end", {}),
    ):
        assert browser.post(path, data, csrf=False).status_code == 403, path
    forged = browser.post("/partner/documents/new/move", {"quantity": "1", "csrf_token": "x" * 43}, csrf=False)
    assert forged.status_code == 403
    assert all(licence.state == LicenceState.SEALED for licence in _licences(cloud, north.partner_id))
    with cloud.db() as db:
        assert {link.state for link in db.scalars(select(PartnerLink))} == {LinkState.PENDING, LinkState.ACTIVE}
