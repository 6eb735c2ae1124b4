"""A company's devices through the real pages: the list with presence words and its live
fragment, its filters, claiming a terminal by the code it shows (a good one and a wrong one),
a device's page, moving it to another point of sale (audited; the same rule answers the JSON
API's PATCH), a viewer's refusal and another company's device."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud_api.accounts.models import AuditEvent
from cloud_api.ingest.models import DevicePresence, SequenceGap
from cloud_api.pairing.models import PairingRegistration
from cloud_api.tenancy.models import Device, PointOfSale, User
from cloud_api.tenancy.tokens import issue_token
from tests.cloud.api_support import migrated_engine
from tests.cloud.pairing_support import Terminal, make_pki
from tests.cloud.web_support import Browser, Cloud, make_cloud

LIST = "/company/devices"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("devices-pki"))


@pytest.fixture
def cloud(tmp_path: Path, pki: Path) -> Iterator[Cloud]:
    """A cloud with a device CA, so that a claim can sign the terminal's certificate."""
    with migrated_engine("sqlite", tmp_path) as engine:
        yield make_cloud(
            engine,
            str(engine.url),
            pairing_broker_host="mqtt.example.com",
            device_ca_cert_file=pki / "device-ca.crt",
            device_ca_key_file=pki / "device-ca.key",
            pairing_broker_ca_file=pki / "cloud-ca.crt",
        )


def company_with(cloud: Cloud, name: str = "Bakery Ltd", grade: str = "manager") -> tuple[int, Browser]:
    company_id = cloud.company(name)
    domain = name.split()[0].lower()
    cloud.member(f"{grade}@{domain}.example", f"company_{grade}", company_id=company_id)
    browser = cloud.browser()
    browser.sign_in(f"{grade}@{domain}.example")
    return company_id, browser


def store(cloud: Cloud, company_id: int, name: str, code: str, *, archived: bool = False) -> int:
    with cloud.db() as db:
        pos = PointOfSale(
            company_id=company_id, name=name, code=code, created_at=NOW, archived_at=NOW if archived else None
        )
        db.add(pos)
        db.commit()
        return pos.id


def device(cloud: Cloud, company_id: int, pos_id: int | None, device_id: str, presence: str | None = None) -> None:
    with cloud.db() as db:
        db.add(
            Device(device_id=device_id, company_id=company_id, point_of_sale_id=pos_id, public_key="k", created_at=NOW)
        )
        if presence is not None:
            db.add(
                DevicePresence(
                    device_id=device_id,
                    state=presence,
                    status_message_id=uuid.uuid4(),
                    status_at=NOW,
                    last_seen_at=NOW - timedelta(minutes=3),
                )
            )
        db.commit()


def shown(reply: object) -> str:
    text = html.unescape(reply.text)  # type: ignore[attr-defined]
    return re.sub(r"\s+", " ", text)


def test_the_list_shows_presence_as_words_and_the_fragment_refreshes_it(cloud: Cloud) -> None:
    company_id, browser = company_with(cloud)
    main = store(cloud, company_id, "Main Street", "MAIN")
    kiosk = store(cloud, company_id, "Station Kiosk", "KIOSK")
    device(cloud, company_id, main, "till-on", "online")
    device(cloud, company_id, kiosk, "till-off", "offline")
    device(cloud, company_id, kiosk, "till-new")
    with cloud.db() as db:
        db.add(SequenceGap(device_id="till-off", first_missing=4, last_missing=6, detected_at=NOW))
        db.commit()

    page = browser.get(LIST)
    assert page.status_code == 200
    text = shown(page)
    assert "● Online" in text and "○ Offline" in text and "? Unknown" in text
    assert 'href="/company/devices"' in page.text  # the nav names the section
    assert 'hx-get="/company/devices/rows"' in page.text and 'hx-trigger="every 10s"' in page.text
    assert 'hx-swap="outerHTML"' in page.text and "<script" not in page.text.split("</head>")[1]

    rows = browser.get(f"{LIST}/rows")
    assert rows.status_code == 200 and rows.text.lstrip().startswith("<tbody")
    assert "till-on" in rows.text and "Main Street" in rows.text and "<nav" not in rows.text

    with cloud.db() as db:  # the device drops off: the next refresh says so
        db.get_one(DevicePresence, "till-on").state = "offline"
        db.commit()
    assert "● Online" not in shown(browser.get(f"{LIST}/rows"))

    only_kiosk = shown(browser.get(f"{LIST}/rows?pos={kiosk}"))
    assert "till-off" in only_kiosk and "till-new" in only_kiosk and "till-on" not in only_kiosk
    unknown = shown(browser.get(f"{LIST}?presence=unknown"))
    assert "till-new" in unknown and "till-off" not in unknown
    assert 'hx-get="/company/devices/rows?presence=unknown"' in browser.get(f"{LIST}?presence=unknown").text
    none = shown(browser.get(f"{LIST}?presence=online&pos={kiosk}"))
    assert "No device matches these filters." in none


def test_no_devices_yet_says_how_to_get_one(cloud: Cloud) -> None:
    _company_id, browser = company_with(cloud)
    text = shown(browser.get(LIST))
    assert "No devices yet — claim a terminal with the code it shows." in text
    assert 'href="/company/devices/claim"' in text


def test_claim_a_terminal_by_its_code(cloud: Cloud) -> None:
    company_id, browser = company_with(cloud)
    main = store(cloud, company_id, "Main Street", "MAIN")
    store(cloud, company_id, "Old Shop", "OLD", archived=True)
    till = Terminal("web-till-1")
    assert browser.client.post("/pairing/registrations", json=till.registration()).status_code == 201

    form = browser.get(f"{LIST}/claim")
    assert form.status_code == 200 and "Main Street" in form.text and "Old Shop" not in form.text

    wrong = browser.post(f"{LIST}/claim", {"pairing_code": "7KQ-2M9-XDT", "point_of_sale_id": str(main)})
    assert wrong.status_code == 404
    assert 'id="e-pairing_code"' in wrong.text and "No terminal waits with this code." in shown(wrong)
    with cloud.db() as db:
        assert db.get(Device, "web-till-1") is None

    reply = browser.post(f"{LIST}/claim", {"pairing_code": till.code, "point_of_sale_id": str(main)})
    assert reply.status_code == 303 and reply.headers["location"] == f"{LIST}/web-till-1"
    page = shown(browser.follow(reply))
    assert "Terminal web-till-1 is claimed into Main Street." in page and "valid until" in page
    with cloud.db() as db:
        claimed = db.get_one(Device, "web-till-1")
        assert (claimed.company_id, claimed.point_of_sale_id, claimed.public_key is not None) == (
            company_id,
            main,
            True,
        )
        registration = db.scalar(select(PairingRegistration).where(PairingRegistration.device_id == "web-till-1"))
        assert registration is not None and registration.certificate_serial is not None

    again = browser.post(f"{LIST}/claim", {"pairing_code": till.code, "point_of_sale_id": str(main)})
    assert again.status_code == 409 and "This code was already used." in shown(again)
    typo = browser.post(f"{LIST}/claim", {"pairing_code": "12", "point_of_sale_id": str(main)})
    assert typo.status_code == 422 and 'id="e-pairing_code"' in typo.text


def test_move_a_device_to_another_point_of_sale_and_through_the_api(cloud: Cloud) -> None:
    company_id, browser = company_with(cloud)
    main = store(cloud, company_id, "Main Street", "MAIN")
    kiosk = store(cloud, company_id, "Station Kiosk", "KIOSK")
    old = store(cloud, company_id, "Old Shop", "OLD", archived=True)
    device(cloud, company_id, main, "till-7", "online")

    detail = shown(browser.get(f"{LIST}/till-7"))
    assert "Main Street" in detail and "● Online" in detail and f"{LIST}/till-7/move" in detail
    form = browser.get(f"{LIST}/till-7/move")
    assert form.status_code == 200 and "Station Kiosk" in form.text and "Old Shop" not in form.text

    refused = browser.post(f"{LIST}/till-7/move", {"point_of_sale_id": str(old)})
    assert refused.status_code == 409 and 'id="e-point_of_sale_id"' in refused.text
    assert "archived" in shown(refused)
    reply = browser.post(f"{LIST}/till-7/move", {"point_of_sale_id": str(kiosk)})
    assert reply.status_code == 303
    assert "Device till-7 now serves Station Kiosk." in shown(browser.follow(reply))
    with cloud.db() as db:
        assert db.get_one(Device, "till-7").point_of_sale_id == kiosk
        moves = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "device.moved")))
        assert [(e.org_level, e.org_id, e.target) for e in moves] == [("company", company_id, "device till-7")]

        admin = User(name="api", role="company_admin", owner_id=cloud.owner_id, company_id=company_id, created_at=NOW)
        db.add(admin)
        db.flush()
        token = issue_token(db, admin)[1]
        db.commit()
    api = browser.client
    auth = {"Authorization": f"Bearer {token}"}
    patched = api.patch(f"/companies/{company_id}/devices/till-7", json={"point_of_sale_id": main}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["point_of_sale_id"], patched.json()["presence"]) == (main, "online")
    archived = api.patch(f"/companies/{company_id}/devices/till-7", json={"point_of_sale_id": old}, headers=auth)
    assert archived.status_code == 409
    with cloud.db() as db:
        assert db.get_one(Device, "till-7").point_of_sale_id == main
        assert len(list(db.scalars(select(AuditEvent).where(AuditEvent.action == "device.moved")))) == 2


def test_a_viewer_sees_but_changes_nothing_and_another_company_gets_404(cloud: Cloud) -> None:
    company_id, viewer = company_with(cloud, grade="viewer")
    main = store(cloud, company_id, "Main Street", "MAIN")
    kiosk = store(cloud, company_id, "Station Kiosk", "KIOSK")
    device(cloud, company_id, main, "till-v", "online")
    assert viewer.get(LIST).status_code == 200 and "Claim a terminal" not in viewer.get(LIST).text
    assert viewer.get(f"{LIST}/claim").status_code == 403
    assert (
        viewer.post(f"{LIST}/claim", {"pairing_code": "7KQ-2M9-XDT", "point_of_sale_id": str(main)}).status_code == 403
    )
    assert viewer.post(f"{LIST}/till-v/move", {"point_of_sale_id": str(kiosk)}).status_code == 403

    other_id, other = company_with(cloud, "Cobbler Inc")
    other_pos = store(cloud, other_id, "Cobbler Shop", "COB")
    for url in (f"{LIST}/till-v", f"{LIST}/till-v/move"):
        reply = other.get(url)
        assert reply.status_code == 404 and "Main Street" not in reply.text
    assert other.post(f"{LIST}/till-v/move", {"point_of_sale_id": str(other_pos)}).status_code == 404
    assert "till-v" not in other.get(LIST).text and "till-v" not in other.get(f"{LIST}/rows").text
    # claiming into another company's point of sale is refused before any code is looked at
    taken = other.post(f"{LIST}/claim", {"pairing_code": "7KQ-2M9-XDT", "point_of_sale_id": str(main)})
    assert taken.status_code == 404
    with cloud.db() as db:
        assert db.get_one(Device, "till-v").point_of_sale_id == main
