"""The pages every cabinet shares, through the real pages: people (inviting someone who then
signs in), API tokens (shown once, working on the JSON API until revoked), and the audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cloud_api.accounts.models import AuditEvent, Person
from cloud_api.mail.models import MailOutbox
from cloud_api.tenancy.models import ApiToken, User
from cloud_api.tenancy.tokens import issue_token
from tests.cloud.web_support import (
    Browser,
    Cloud,
    mailed_link,
)

LEVELS = ("owner", "partner", "company")
_SECRET = re.compile(r'class="secret">(kst_[A-Za-z0-9_-]+)<')


def org_member(cloud: Cloud, level: str, email: str, grade: str, org_id: int | None = None) -> tuple[int, int]:
    """A membership of `email` at `level` with `grade`; returns (organisation id, user id)."""
    if level == "owner":
        return cloud.owner_id, cloud.member(email, f"owner_{grade}")
    if level == "partner":
        org_id = org_id or cloud.partner("Acme Partners")
        return org_id, cloud.member(email, f"partner_{grade}", partner_id=org_id)
    org_id = org_id or cloud.company("Bakery Ltd")
    return org_id, cloud.member(email, f"company_{grade}", company_id=org_id)


def signed_in(cloud: Cloud, email: str) -> Browser:
    browser = cloud.browser()
    browser.sign_in(email)
    return browser


def last_mail_to(cloud: Cloud, address: str) -> MailOutbox:
    with cloud.db() as db:
        mail = db.scalars(
            select(MailOutbox).where(MailOutbox.to_address == address).order_by(MailOutbox.id.desc())
        ).first()
    assert mail is not None, f"no mail to {address}"
    return mail


# ------------------------------------------------------------------------------ people
@pytest.mark.parametrize("level", LEVELS)
def test_an_admin_invites_a_manager_who_accepts_and_opens_the_cabinet(cloud: Cloud, level: str) -> None:
    org_member(cloud, level, "boss@example.com", "admin")
    admin = signed_in(cloud, "boss@example.com")

    people = admin.get(f"/{level}/people")
    assert people.status_code == 200
    assert "Invite someone" in people.text and "boss@example.com" in people.text

    sent = admin.post(
        f"/{level}/people/invite", {"email": "Nina@Example.com", "name": "Nina Novak", "grade": "manager"}
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/{level}/people"
    listed = admin.follow(sent)
    assert "nina@example.com is invited" in listed.text
    nina_row = listed.text.split("nina@example.com</td>", 1)[1].split("</tr>", 1)[0]
    assert "manager" in nina_row and "pending" in nina_row

    mail = last_mail_to(cloud, "nina@example.com")
    invitation = mailed_link(mail.body_text, "/invite")
    nina = cloud.browser()
    offer = nina.get(invitation)
    assert offer.status_code == 200 and "Choose a password" in offer.text
    accepted = nina.post(invitation, {"name": "Nina Novak", "password": "a long new password"})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/signin"

    nina.sign_in("nina@example.com", "a long new password")
    cabinet = nina.get(f"/{level}/people")
    assert cabinet.status_code == 200
    assert 'Nina Novak <span class="muted">(manager)</span>' in cabinet.text
    assert "Invite someone" not in cabinet.text  # a manager does not invite
    assert "accepted" in admin.get(f"/{level}/people").text.split("nina@example.com</td>", 1)[1].split("</tr>")[0]
    with cloud.db() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "person.invited")).one()
        assert (event.org_level, event.actor, event.target) == (level, "boss@example.com", "nina@example.com")


def test_a_manager_may_not_invite(cloud: Cloud) -> None:
    partner_id, _ = org_member(cloud, "partner", "boss@example.com", "admin")
    org_member(cloud, "partner", "mark@example.com", "manager", partner_id)
    manager = signed_in(cloud, "mark@example.com")
    assert "Invite someone" not in manager.get("/partner/people").text

    refused = manager.post("/partner/people/invite", {"email": "eve@example.com", "name": "Eve", "grade": "admin"})
    assert refused.status_code == 403
    assert "Only an admin of your organisation may do this." in refused.text
    with cloud.db() as db:
        assert db.scalar(select(Person).where(Person.email == "eve@example.com")) is None
        assert db.scalar(select(func.count()).select_from(MailOutbox)) == 0


def test_the_invite_form_says_what_is_wrong_next_to_the_field(cloud: Cloud) -> None:
    org_member(cloud, "company", "boss@example.com", "admin")
    admin = signed_in(cloud, "boss@example.com")
    bad = admin.post("/company/people/invite", {"email": "not an address", "name": "X", "grade": "manager"})
    assert bad.status_code == 422 and "Enter an e-mail address like name@example.com." in bad.text
    twice = admin.post("/company/people/invite", {"email": "boss@example.com", "name": "B", "grade": "viewer"})
    assert twice.status_code == 409 and "boss@example.com is already a member here." in twice.text
    odd_role = admin.post("/company/people/invite", {"email": "a@example.com", "name": "A", "grade": "owner"})
    assert odd_role.status_code == 422 and 'id="e-grade"' in odd_role.text


# ------------------------------------------------------------------------------ tokens
def test_a_token_is_shown_once_works_on_the_api_and_stops_when_revoked(cloud: Cloud) -> None:
    company_id, user_id = org_member(cloud, "company", "boss@example.com", "admin")
    admin = signed_in(cloud, "boss@example.com")
    assert "No tokens yet" in admin.get("/company/tokens").text

    created = admin.post("/company/tokens", {"label": "till sync"})
    assert created.status_code == 201
    token = _SECRET.search(created.text)
    assert token, created.text[:2000]
    secret = token.group(1)

    api = admin.client
    me = api.get("/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["id"] == user_id

    listed = admin.get("/company/tokens")
    assert secret not in listed.text and secret[:12] in listed.text and "till sync" in listed.text
    with cloud.db() as db:
        row = db.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.label == "till sync")).one()
    ask = admin.get(f"/company/tokens/{row.id}/revoke")
    assert ask.status_code == 200 and "Every program that uses this token is refused" in ask.text
    revoked = admin.post(f"/company/tokens/{row.id}/revoke")
    assert revoked.status_code == 303
    assert "is revoked" in admin.follow(revoked).text
    assert api.get("/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    audit = admin.get("/company/audit")
    assert audit.status_code == 200
    for action in ("token.created", "token.revoked"):
        entry = audit.text.split(f"<code>{action}</code>", 1)
        assert len(entry) == 2, action
        assert "boss@example.com" in entry[0].rsplit("<tr>", 1)[1] and secret[:12] in entry[1].split("</tr>")[0]
    assert secret not in audit.text
    with cloud.db() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action.like("token.%"))).all()
        assert {(e.org_level, e.org_id, e.target) for e in events} == {("company", company_id, secret[:12])}


def test_admins_manage_machine_tokens_and_nobody_touches_another_persons(cloud: Cloud) -> None:
    partner_id, _ = org_member(cloud, "partner", "boss@example.com", "admin")
    org_member(cloud, "partner", "mark@example.com", "manager", partner_id)
    with cloud.db() as db:
        machine = User(
            name="Stock sync",
            role="partner_admin",
            owner_id=cloud.owner_id,
            partner_id=partner_id,
            created_at=datetime.now(UTC),
        )
        db.add(machine)
        db.flush()
        machine_token, _text = issue_token(db, machine, label="nightly")
        db.commit()
    manager = signed_in(cloud, "mark@example.com")
    made = manager.post("/partner/tokens", {"label": "mark's laptop"})
    assert made.status_code == 201
    with cloud.db() as db:
        mark_token = db.scalars(select(ApiToken).where(ApiToken.label == "mark's laptop")).one()

    admin = signed_in(cloud, "boss@example.com")
    tokens = admin.get("/partner/tokens").text
    assert machine_token.prefix in tokens and "Stock sync" in tokens and mark_token.prefix not in tokens
    assert admin.get(f"/partner/tokens/{mark_token.id}/revoke").status_code == 404
    assert admin.post(f"/partner/tokens/{mark_token.id}/revoke").status_code == 404
    assert admin.post(f"/partner/tokens/{machine_token.id}/revoke").status_code == 303

    assert machine_token.prefix not in manager.get("/partner/tokens").text
    assert manager.post(f"/partner/tokens/{machine_token.id}/revoke").status_code == 404
    with cloud.db() as db:
        assert db.get_one(ApiToken, mark_token.id).revoked_at is None
        assert db.get_one(ApiToken, machine_token.id).revoked_at is not None


# ------------------------------------------------------------------------------ audit
@pytest.mark.parametrize("level", LEVELS)
def test_only_admins_read_the_audit(cloud: Cloud, level: str) -> None:
    org_id, _ = org_member(cloud, level, "boss@example.com", "admin")
    org_member(cloud, level, "vera@example.com", "viewer", org_id)
    viewer = signed_in(cloud, "vera@example.com")
    refused = viewer.get(f"/{level}/audit")
    assert refused.status_code == 403 and "Only an admin of your organisation may do this." in refused.text
    assert signed_in(cloud, "boss@example.com").get(f"/{level}/audit").status_code == 200


def test_the_audit_pages_newest_first_and_filters_by_action_and_actor(cloud: Cloud) -> None:
    partner_id, _ = org_member(cloud, "partner", "boss@example.com", "admin")
    other_partner = cloud.partner("Someone Else")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with cloud.db() as db:
        for n in range(60):
            db.add(
                AuditEvent(
                    at=start + timedelta(minutes=n),
                    org_level="partner",
                    org_id=partner_id,
                    actor="ann@example.com" if n % 2 else "bob@example.com",
                    action="licences.received" if n % 3 else "person.invited",
                    target=f"T-{n:03}",
                    ip="192.0.2.7",
                )
            )
        db.add(AuditEvent(at=start, org_level="partner", org_id=other_partner, actor="x@y.z", action="a.b"))
        db.commit()
    admin = signed_in(cloud, "boss@example.com")

    first = admin.get("/partner/audit")
    assert "1–50 of 60" in first.text and "T-000" not in first.text
    assert first.text.index("T-059") < first.text.index("T-058") and "192.0.2.7" in first.text
    second = admin.get(re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&"))
    assert "51–60 of 60" in second.text and "T-000" in second.text and "x@y.z" not in second.text

    invited = admin.get("/partner/audit?action=person.")
    assert "1–20 of 20" in invited.text and "licences.received" not in invited.text.split("<tbody>")[1]
    by_ann = admin.get("/partner/audit?action=person.&q=ANN@")
    assert "1–10 of 10" in by_ann.text and "bob@example.com" not in by_ann.text
    wildcard = admin.get("/partner/audit?q=%25")
    assert "No changes match these filters." in wildcard.text


def test_another_cabinets_shared_pages_are_refused(cloud: Cloud) -> None:
    org_member(cloud, "company", "boss@example.com", "admin")
    admin = signed_in(cloud, "boss@example.com")
    for path in ("/partner/people", "/owner/tokens", "/partner/audit"):
        assert admin.get(path).status_code == 403, path
    outside = cloud.browser().get("/company/people")
    assert outside.status_code == 303 and outside.headers["location"] == "/signin?next=%2Fcompany%2Fpeople"
