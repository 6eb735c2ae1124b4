"""A company's points of sale through the real pages: add, a taken code, rename, a code that
terminals use, archive (refused while devices are assigned), restore; viewers, the audit,
escaping and oversized input."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from sqlalchemy import select

from cloud_api.accounts.models import AuditEvent
from cloud_api.cashiers.models import Cashier, CashierDetailsSet
from cloud_api.tenancy.models import Device, PointOfSale
from tests.cloud.web_support import Browser, Cloud

LIST = "/company/points-of-sale"


def company_with(cloud: Cloud, grade: str = "manager") -> tuple[int, Browser]:
    company_id = cloud.company("Bakery Ltd")
    cloud.member(f"{grade}@bakery.example", f"company_{grade}", company_id=company_id)
    browser = cloud.browser()
    browser.sign_in(f"{grade}@bakery.example")
    return company_id, browser


def add(browser: Browser, name: str, code: str) -> int:
    reply = browser.post(f"{LIST}/new", {"name": name, "code": code})
    assert reply.status_code == 303, reply.text[:800]
    return int(reply.headers["location"].rsplit("/", 1)[1])


def put_device(cloud: Cloud, company_id: int, pos_id: int | None, device_id: str) -> None:
    with cloud.db() as db:
        db.add(
            Device(device_id=device_id, company_id=company_id, point_of_sale_id=pos_id, created_at=datetime.now(UTC))
        )
        db.commit()


def move_devices(cloud: Cloud, from_pos: int, to_pos: int) -> None:
    with cloud.db() as db:
        for device in db.scalars(select(Device).where(Device.point_of_sale_id == from_pos)):
            device.point_of_sale_id = to_pos
        db.commit()


def give_details(cloud: Cloud, company_id: int, pos_id: int) -> None:
    moment = datetime.now(UTC)
    with cloud.db() as db:
        cashier = Cashier(
            company_id=company_id,
            code="C-17",
            name="Olga Till",
            operator_code="1717",
            roles=["cashier"],
            enabled=True,
            all_devices=True,
            created_at=moment,
            updated_at=moment,
        )
        db.add(cashier)
        db.flush()
        db.add(
            CashierDetailsSet(cashier_id=cashier.id, point_of_sale_id=pos_id, terminal_id="T-9", session_label="Gate 4")
        )
        db.commit()


def actions(cloud: Cloud, company_id: int) -> list[str]:
    with cloud.db() as db:
        return list(
            db.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.org_level == "company", AuditEvent.org_id == company_id)
                .where(AuditEvent.action.like("point_of_sale.%"))
                .order_by(AuditEvent.id)
            )
        )


def test_a_manager_adds_renames_archives_and_restores_a_point_of_sale(cloud: Cloud) -> None:
    company_id, browser = company_with(cloud)
    empty = browser.get(LIST)
    assert empty.status_code == 200 and "No points of sale yet — add the first one." in empty.text

    form = browser.get(f"{LIST}/new")
    assert form.status_code == 200 and 'name="code"' in form.text
    created = browser.post(f"{LIST}/new", {"name": "Main street", "code": "MAIN"})
    shown = browser.follow(created)
    assert "The point of sale Main street is added." in shown.text and "MAIN" in shown.text
    main = int(created.headers["location"].rsplit("/", 1)[1])
    kiosk = add(browser, "Kiosk", "KIOSK")

    taken = browser.post(f"{LIST}/new", {"name": "Again", "code": "MAIN"})
    assert taken.status_code == 409
    assert 'id="e-code"' in taken.text and "already has this code" in taken.text and 'value="Again"' in taken.text

    renamed = browser.post(f"{LIST}/{main}/edit", {"name": "Main street 5", "code": "MAIN"})
    assert "The point of sale Main street 5 is saved." in browser.follow(renamed).text

    put_device(cloud, company_id, main, "dev-main-1")
    give_details(cloud, company_id, main)
    page = browser.get(f"{LIST}/{main}")
    assert "dev-main-1" in page.text and "Olga Till" in page.text and "T-9" in page.text and "Gate 4" in page.text
    recoded = browser.post(f"{LIST}/{main}/edit", {"name": "Main street 5", "code": "MAIN-2"})
    assert recoded.status_code == 409 and 'id="e-code"' in recoded.text
    assert "1 device(s) are assigned here and 1 cashier(s) have details here" in recoded.text

    asked = browser.get(f"{LIST}/{main}/archive")
    assert asked.status_code == 200 and "Move its devices to another point of sale first." in asked.text
    refused = browser.post(f"{LIST}/{main}/archive")
    assert refused.status_code == 409 and "Move its devices to another point of sale first." in refused.text
    move_devices(cloud, main, kiosk)
    confirm = browser.get(f"{LIST}/{main}/archive")
    assert f'action="{LIST}/{main}/archive"' in confirm.text
    archived = browser.post(f"{LIST}/{main}/archive")
    assert "The point of sale Main street 5 is archived." in browser.follow(archived).text
    again = browser.post(f"{LIST}/{main}/archive")  # twice is harmless
    assert "is archived" in browser.follow(again).text

    in_use = browser.get(LIST)
    assert "Kiosk" in in_use.text and "Main street 5" not in in_use.text
    only_archived = browser.get(f"{LIST}?state=archived")
    assert "Main street 5" in only_archived.text and "Kiosk" not in only_archived.text
    assert "Kiosk" in browser.get(f"{LIST}?state=all&q=kio").text
    assert "Main street 5" not in browser.get(f"{LIST}?state=all&q=kio").text

    restored = browser.post(f"{LIST}/{main}/restore")
    assert "The point of sale Main street 5 is in use again." in browser.follow(restored).text
    with cloud.db() as db:
        assert db.get_one(PointOfSale, main).archived_at is None
    assert actions(cloud, company_id) == [
        "point_of_sale.created",
        "point_of_sale.created",
        "point_of_sale.edited",
        "point_of_sale.archived",
        "point_of_sale.restored",
    ]


def test_a_viewer_sees_the_points_of_sale_and_changes_none(cloud: Cloud) -> None:
    company_id, manager = company_with(cloud)
    main = add(manager, "Main street", "MAIN")
    cloud.member("viewer@bakery.example", "company_viewer", company_id=company_id)
    viewer = cloud.browser()
    viewer.sign_in("viewer@bakery.example")
    listed = viewer.get(LIST)
    assert listed.status_code == 200 and "Main street" in listed.text and f"{LIST}/new" not in listed.text
    assert viewer.get(f"{LIST}/{main}").status_code == 200
    for url in (f"{LIST}/new", f"{LIST}/{main}/edit", f"{LIST}/{main}/archive"):
        assert viewer.get(url).status_code == 403
    for url, form in [
        (f"{LIST}/new", {"name": "Viewer shop", "code": "V"}),
        (f"{LIST}/{main}/edit", {"name": "Renamed", "code": "MAIN"}),
        (f"{LIST}/{main}/archive", {}),
        (f"{LIST}/{main}/restore", {}),
    ]:
        reply = viewer.post(url, form)
        assert reply.status_code == 403 and "read-only" in reply.text
    with cloud.db() as db:
        pos = db.get_one(PointOfSale, main)
        assert (pos.name, pos.archived_at) == ("Main street", None)
    assert actions(cloud, company_id) == ["point_of_sale.created"]


def test_another_companys_point_of_sale_is_not_found(cloud: Cloud) -> None:
    _company_id, browser = company_with(cloud)
    other = cloud.company("Other Ltd")
    cloud.member("admin@other.example", "company_admin", company_id=other)
    stranger = cloud.browser()
    stranger.sign_in("admin@other.example")
    theirs = add(stranger, "Secret counter", "SECRET")
    for url in (f"{LIST}/{theirs}", f"{LIST}/{theirs}/edit", f"{LIST}/{theirs}/archive"):
        reply = browser.get(url)
        assert reply.status_code == 404 and "Secret counter" not in reply.text
    assert browser.post(f"{LIST}/{theirs}/archive").status_code == 404
    assert "Secret counter" not in browser.get(f"{LIST}?state=all").text


def test_names_are_escaped_and_oversized_or_empty_input_is_refused_next_to_the_field(cloud: Cloud) -> None:
    _company_id, browser = company_with(cloud)
    script = "<script>alert(1)</script> & Co"
    pos = add(browser, script, "X<1")
    page = browser.get(f"{LIST}/{pos}")
    assert script not in page.text and html.escape(script, quote=False) in page.text
    assert "X&lt;1" in page.text and "<script>" not in browser.get(LIST).text

    huge = browser.post(f"{LIST}/new", {"name": "n" * 20_000, "code": "BIG"})
    assert huge.status_code == 422 and 'id="e-name"' in huge.text and "at most 200 characters" in huge.text
    blank = browser.post(f"{LIST}/{pos}/edit", {"name": "Shop", "code": "with space"})
    assert blank.status_code == 422 and 'id="e-code"' in blank.text
    missing = browser.post(f"{LIST}/new", {"name": "", "code": "OK"})
    assert missing.status_code == 422 and 'id="e-name"' in missing.text and "Fill in this field." in missing.text
    with_csrf_missing = browser.post(f"{LIST}/new", {"name": "No token", "code": "NT"}, csrf=False)
    assert with_csrf_missing.status_code in (400, 403)
    with cloud.db() as db:
        names = set(db.scalars(select(PointOfSale.name)))
    assert names == {"<script>alert(1)</script> & Co"}
