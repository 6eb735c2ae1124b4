"""The company's licence pages: the list and its filter, a licence's page with the part of its
trail the company may see, moving a licence between the company's devices (two phases),
releasing it back to the partner's stock, the key on an audited request, and who may not."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from broker.contract import licence as kl
from cloud_api.accounts.models import AuditEvent
from cloud_api.licences import book
from cloud_api.licences.binding import accept_release, bind
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.pushes.models import DeviceCommand
from cloud_api.tenancy.models import Device, LinkState, Partner, PartnerLink
from tests.cloud.api_support import migrated_engine
from tests.cloud.licence_support import CLOUD_KEY_ID, DeviceKey, short_policy, write_signing_key
from tests.cloud.web_support import Browser, Cloud, make_cloud


@dataclass
class Shop:
    cloud: Cloud
    policy: LicencePolicy
    partner_id: int
    partner_user: int
    company_id: int
    other_company_id: int
    tills: dict[str, DeviceKey]

    def browser(self, email: str) -> Browser:
        browser = self.cloud.browser()
        browser.sign_in(email)
        return browser

    def link(self, company_id: int) -> None:
        with self.cloud.db() as db:
            moment = datetime.now(UTC)
            db.add(
                PartnerLink(
                    company_id=company_id,
                    partner_id=self.partner_id,
                    state=LinkState.ACTIVE,
                    open_company_id=company_id,
                    requested_by=self.partner_user,
                    requested_at=moment,
                    decided_at=moment,
                )
            )
            db.commit()

    def device(self, device_id: str, company_id: int, *, with_key: bool = True) -> DeviceKey:
        till = DeviceKey(device_id)
        with self.cloud.db() as db:
            db.add(
                Device(
                    device_id=device_id,
                    company_id=company_id,
                    public_key=till.public_text if with_key else None,
                    created_at=datetime.now(UTC),
                )
            )
            db.commit()
        self.tills[device_id] = till
        return till

    def licence(self, company_id: int | None = None, *, on: str | None = None) -> str:
        """A licence sold to the partner and given to the company (its own by default), bound
        to device `on` when asked."""
        moment = datetime.now(UTC)
        with self.cloud.db() as db, db.begin():
            partner = db.get_one(Partner, self.partner_id)
            issued = book.issue_licences(
                db, partner, 1, {"seats": 2}, moment + timedelta(days=365), by_user=self.partner_user, now=moment
            )[0]
            book.assign(db, issued.id, company_id or self.company_id, by_user=self.partner_user, now=moment)
            licence_id, key = issued.id, issued.licence_key
        if on is not None:
            self.bind(licence_id, key, on)
        return licence_id

    def bind(self, licence_id: str, key: str, device_id: str) -> None:
        with self.cloud.db() as db, db.begin():
            till = self.tills[device_id]
            assert bind(db, device_id, key, till.public_text, datetime.now(UTC), self.policy).state == "bound"

    def row(self, licence_id: str) -> Licence:
        with self.cloud.db() as db:
            return db.get_one(Licence, licence_id)

    def audit(self, licence_id: str) -> list[tuple[str, str, int, str | None]]:
        with self.cloud.db() as db:
            return [
                (event.action, event.org_level, event.org_id, event.detail)
                for event in db.scalars(
                    select(AuditEvent).where(AuditEvent.target == licence_id).order_by(AuditEvent.id)
                )
            ]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    key_file, cloud_key = write_signing_key(tmp_path)
    with migrated_engine("sqlite", tmp_path) as engine:
        cloud = make_cloud(engine, str(engine.url), signing_key_file=key_file, signing_key_id=CLOUD_KEY_ID)
        partner_id = cloud.partner("Seller")
        partner_user = cloud.member("admin@seller.test", "partner_admin", partner_id=partner_id)
        company_id = cloud.company("Corner Shop")
        other_id = cloud.company("Other Shop")
        for grade in ("admin", "manager", "viewer"):
            cloud.member(f"{grade}@shop.test", f"company_{grade}", company_id=company_id)
        cloud.member("admin@other.test", "company_admin", company_id=other_id)
        world = Shop(cloud, short_policy(cloud_key), partner_id, partner_user, company_id, other_id, {})
        world.link(company_id)
        world.device("till-1", company_id)
        world.device("till-2", company_id)
        world.device("till-unpaired", company_id, with_key=False)
        yield world


def test_the_list_shows_each_licence_with_its_state_and_device_and_filters_by_state(shop: Shop) -> None:
    manager = shop.browser("manager@shop.test")
    empty = manager.get("/company/licences")
    assert empty.status_code == 200 and "Licences come from your partner" in empty.text
    free = shop.licence()
    bound = shop.licence(on="till-1")
    listed = manager.get("/company/licences").text
    assert free in listed and bound in listed and "till-1" in listed
    assert "Free" in listed and "On a device" in listed and "Lease expires" in listed
    only_bound = manager.get("/company/licences?state=bound").text
    assert bound in only_bound and free not in only_bound
    none_moving = manager.get("/company/licences?state=moving").text
    assert "No licence matches these filters." in none_moving
    assert bound in manager.get("/company/licences?q=till-1").text


def test_the_page_of_a_licence_shows_only_the_companys_part_of_its_trail(shop: Shop) -> None:
    """The licence was another company's first (on its own till), then came back to the
    partner and went to this company: none of that earlier part shows."""
    shop.link(shop.other_company_id)
    shop.device("their-till", shop.other_company_id)
    licence_id = shop.licence(shop.other_company_id, on="their-till")
    with shop.cloud.db() as db, db.begin():
        book.release_to_partner(
            db, licence_id, shop.other_company_id, by_user=shop.partner_user, now=datetime.now(UTC), policy=shop.policy
        )
    their = shop.tills["their-till"]
    with shop.cloud.db() as db, db.begin():  # its till let go
        assert accept_release(
            db,
            "their-till",
            licence_id,
            1,
            their.receipt(licence_id, 1, datetime.now(UTC)),
            datetime.now(UTC),
            shop.policy,
        )
    with shop.cloud.db() as db, db.begin():
        book.assign(db, licence_id, shop.company_id, by_user=shop.partner_user, now=datetime.now(UTC))
    shop.bind(licence_id, shop.row(licence_id).licence_key, "till-2")

    page = shop.browser("viewer@shop.test").get(f"/company/licences/{licence_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "On a device" in text and "till-2" in text and "seats" in text
    assert "Given to the company by the partner" in text and "Taken by a device" in text
    assert "their-till" not in text and "Release to the partner asked" not in text
    assert shop.row(licence_id).licence_key not in text  # and a viewer is offered no key button
    assert "Show key" not in text and "Move to another device" not in text


def test_a_bound_licence_moves_in_two_phases_to_another_device(shop: Shop) -> None:
    licence_id = shop.licence(on="till-1")
    manager = shop.browser("manager@shop.test")
    form = manager.get(f"/company/licences/{licence_id}/move")
    assert form.status_code == 200
    assert "till-2" in form.text and "till-unpaired" not in form.text and 'value="till-1"' not in form.text
    assert "is told to let go" in form.text

    done = manager.post(f"/company/licences/{licence_id}/move", {"device_id": "till-2"})
    assert done.status_code == 303 and done.headers["location"] == f"/company/licences/{licence_id}"
    shown = html.unescape(manager.follow(done).text)
    assert "Device till-1 is told to let go of the licence. till-2 gets it" in shown
    assert "Moving to another device" in shown
    moving = shop.row(licence_id)
    assert (moving.state, moving.releasing_from_device_id, moving.releasing_to_device_id) == (
        LicenceState.RELEASING,
        "till-1",
        "till-2",
    )
    with shop.cloud.db() as db:  # the old till got its release order
        assert db.scalar(select(DeviceCommand.device_id).where(DeviceCommand.device_id == "till-1")) == "till-1"
    assert shop.audit(licence_id) == [("licence.moved", "company", shop.company_id, "to device till-2")]


def test_a_move_to_a_device_without_a_key_is_refused_and_says_what_to_do(shop: Shop) -> None:
    licence_id = shop.licence(on="till-1")
    manager = shop.browser("manager@shop.test")
    refused = manager.post(f"/company/licences/{licence_id}/move", {"device_id": "till-unpaired"})
    assert refused.status_code == 409
    assert "This device has not registered its key yet. Pair it" in html.unescape(refused.text)
    unchosen = manager.post(f"/company/licences/{licence_id}/move", {"device_id": ""})
    assert unchosen.status_code == 422 and "Choose a device." in unchosen.text
    free = shop.licence()
    not_on_device = manager.post(f"/company/licences/{free}/move", {"device_id": "till-2"})
    assert not_on_device.status_code == 409 and "This licence is not on a device yet" in not_on_device.text
    assert shop.row(licence_id).state == LicenceState.BOUND and shop.audit(licence_id) == []


def test_a_free_licence_goes_back_to_the_partner_at_once(shop: Shop) -> None:
    licence_id = shop.licence()
    admin = shop.browser("admin@shop.test")
    confirm = admin.get(f"/company/licences/{licence_id}/release")
    assert confirm.status_code == 200 and "goes back to the partner's stock" in html.unescape(confirm.text)
    done = admin.post(f"/company/licences/{licence_id}/release", {})
    assert done.status_code == 303 and done.headers["location"] == "/company/licences"
    assert f"Licence {licence_id} is back in the partner" in html.unescape(admin.follow(done).text)
    row = shop.row(licence_id)
    assert (row.state, row.company_id) == (LicenceState.ASSIGNED, None)
    assert [(action, level) for action, level, _id, _detail in shop.audit(licence_id)] == [
        ("licence.released_to_partner", "company"),
        ("licence.returned_by_company", "partner"),
    ]
    assert admin.get(f"/company/licences/{licence_id}").status_code == 404


def test_a_bound_licence_returns_once_its_device_lets_go(shop: Shop) -> None:
    licence_id = shop.licence(on="till-1")
    admin = shop.browser("admin@shop.test")
    confirm = html.unescape(admin.get(f"/company/licences/{licence_id}/release").text)
    assert "Device till-1 is told to let go of it and stops selling with it" in confirm
    done = admin.post(f"/company/licences/{licence_id}/release", {})
    assert done.status_code == 303 and done.headers["location"] == f"/company/licences/{licence_id}"
    assert "Returning to the partner" in admin.follow(done).text
    row = shop.row(licence_id)
    assert (row.state, row.company_id, row.releasing_to_device_id) == (LicenceState.RELEASING, shop.company_id, None)
    assert admin.get(f"/company/licences/{licence_id}/release").text.count("Release back to the partner</button>") == 0


def test_a_viewer_changes_nothing_and_another_company_sees_nothing(shop: Shop) -> None:
    licence_id = shop.licence(on="till-1")
    viewer = shop.browser("viewer@shop.test")
    for path, form in [("move", {"device_id": "till-2"}), ("release", {}), ("key", {})]:
        reply = viewer.post(f"/company/licences/{licence_id}/{path}", form)
        assert reply.status_code == 403 and "read-only" in reply.text
    assert viewer.get(f"/company/licences/{licence_id}/move").status_code == 403
    outsider = shop.browser("admin@other.test")
    for path, form in [("move", {"device_id": "till-2"}), ("release", {}), ("key", {})]:
        assert outsider.post(f"/company/licences/{licence_id}/{path}", form).status_code == 404
    for path in ("", "/move", "/release"):
        reply = outsider.get(f"/company/licences/{licence_id}{path}")
        assert reply.status_code == 404 and "till-1" not in reply.text
    assert licence_id not in outsider.get("/company/licences").text
    row = shop.row(licence_id)
    assert (row.state, row.device_id) == (LicenceState.BOUND, "till-1") and shop.audit(licence_id) == []


def test_the_key_shows_only_on_request_and_every_look_is_audited(shop: Shop) -> None:
    licence_id = shop.licence(on="till-1")
    key = kl.format_licence_key(shop.row(licence_id).licence_key)
    manager = shop.browser("manager@shop.test")
    for path in ("/company/licences", f"/company/licences/{licence_id}", f"/company/licences/{licence_id}/move"):
        assert key not in manager.get(path).text
    shown = manager.post(f"/company/licences/{licence_id}/key", {})
    assert shown.status_code == 200 and f'<p class="secret" aria-label="Licence key">{key}</p>' in shown.text
    assert shop.audit(licence_id) == [("licence.key_shown", "company", shop.company_id, None)]
    assert key not in manager.get(f"/company/licences/{licence_id}").text
