"""Z reports: stored once by the ingest (up/z_report), one per Z number of a device, and read
back through GET /companies/{id}/z-reports and .../devices/{device_id}/z-reports/{z_no}.
On SQLite and PostgreSQL (the `api` fixture)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _z_report
from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.models import IngestedMessage
from cloud_api.ingest.plan import AckPlan
from cloud_api.reports.models import ZReportRecord
from tests.cloud.api_support import Api, add_device, error_code

T0 = datetime(2026, 4, 1, 20, 0, tzinfo=UTC)
BOOT = uuid.UUID("6a1f0000-0000-4000-8000-000000000007")


def ingest(api: Api, envelopes: list[kc.Envelope]) -> AckPlan:
    """As a worker receives them: encoded, parsed, applied in one transaction."""
    items = [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
    with Session(api.engine) as session, session.begin():
        return apply_batch(session, items)


def up(body: kc.Body, device_id: str, seq: int) -> kc.Envelope:
    return kc.up_message(body, device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True, created_at=T0)


def z(z_no: int, day: int, **update) -> kc.ZReport:
    closed = T0 + timedelta(days=day)
    return _z_report().model_copy(
        update={
            "report_id": uuid.uuid4(),
            "z_no": z_no,
            "opened_at": closed - timedelta(hours=12),
            "closed_at": closed,
            **update,
        }
    )


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    """Two tills of one company with three Zs, another company's till with one."""
    cid, admin = api.company("Z Co")
    add_device(api, "z-till-1", cid)
    add_device(api, "z-till-2", cid)
    other_cid, other_admin = api.company("Z Other Co")
    add_device(api, "z-other", other_cid)
    reports = [z(1, 0), z(2, 1), z(1, 2, sales_total=5000, sales_count=3)]
    theirs = z(1, 0)
    plan = ingest(
        api,
        [
            up(reports[0], "z-till-1", 1),
            up(reports[1], "z-till-1", 2),
            up(reports[2], "z-till-2", 1),
            up(theirs, "z-other", 1),
        ],
    )
    assert (plan.applied, plan.rejected) == (4, 0)
    return {
        "cid": cid,
        "admin": admin,
        "viewer": api.user("company_viewer", admin, company_id=cid),
        "reports": reports,
        "other_cid": other_cid,
        "other_admin": other_admin,
        "theirs": theirs,
    }


def listed(api: Api, shop: dict, query: str = "") -> list[str]:
    page = api.call("GET", f"/companies/{shop['cid']}/z-reports{query}", shop["viewer"], 200).json()
    return [item["report_id"] for item in page["items"]]


def test_a_z_report_is_stored_with_its_totals(api: Api, shop: dict) -> None:
    report = shop["reports"][0]
    got = api.call("GET", f"/companies/{shop['cid']}/devices/z-till-1/z-reports/1", shop["viewer"], 200).json()
    received_at = got.pop("received_at")
    assert received_at.endswith("Z")
    assert got == {
        "report_id": str(report.report_id),
        "device_id": "z-till-1",
        "z_no": 1,
        "currency": "EUR",
        "opened_at": "2026-04-01T08:00:00Z",
        "closed_at": "2026-04-01T20:00:00Z",
        "closed_by": "C-0107",
        "first_receipt_no": 1187,
        "last_receipt_no": 1188,
        "sales_count": 1,
        "refunds_count": 1,
        "sales_total_minor": 2040,
        "refunds_total_minor": 1190,
        "net_total_minor": 850,
        "tax_total_minor": 56,
        "payments": [
            {"method": "cash", "taken_minor": 1040, "paid_out_minor": 1190},
            {"method": "card", "taken_minor": 1000, "paid_out_minor": 0},
        ],
        "taxes": [
            {"rate_bp": 700, "base_minor": 850, "tax_minor": 56},
            {"rate_bp": 1900, "base_minor": 0, "tax_minor": 0},
        ],
    }


def test_list_filters_and_pages(api: Api, shop: dict) -> None:
    r = [str(report.report_id) for report in shop["reports"]]
    assert listed(api, shop) == [r[2], r[1], r[0]]  # newest close first; not the other company's
    assert listed(api, shop, "?device=z-till-1") == [r[1], r[0]]
    assert listed(api, shop, "?device=z-other") == []
    assert listed(api, shop, "?since=2026-04-02T00:00:00Z") == [r[2], r[1]]
    assert listed(api, shop, "?since=2026-04-02T00:00:00Z&until=2026-04-03T00:00:00Z") == [r[1]]
    assert listed(api, shop, "?until=2026-04-01T20:00:00") == []  # before, not at; no zone: UTC
    page = api.call("GET", f"/companies/{shop['cid']}/z-reports?limit=2", shop["admin"], 200).json()
    assert [i["report_id"] for i in page["items"]] == [r[2], r[1]] and page["next_offset"] == 2
    last = api.call("GET", f"/companies/{shop['cid']}/z-reports?limit=2&offset=2", shop["admin"], 200).json()
    assert [i["report_id"] for i in last["items"]] == [r[0]] and last["next_offset"] is None
    owner = api.call("GET", f"/companies/{shop['cid']}/z-reports", api.owner_token, 200).json()
    assert [i["report_id"] for i in owner["items"]] == [r[2], r[1], r[0]]
    for query in ("?limit=0", "?since=yesterday", "?device=a%20b", "?offset=-1"):
        assert (
            error_code(api.call("GET", f"/companies/{shop['cid']}/z-reports{query}", shop["admin"], 422))
            == "invalid_request"
        )


def test_tenant_scope_and_not_found(api: Api, shop: dict) -> None:
    base = f"/companies/{shop['cid']}/devices"
    assert error_code(api.call("GET", f"{base}/z-other/z-reports/1", shop["admin"], 404)) == "not_found"
    assert error_code(api.call("GET", f"{base}/z-till-1/z-reports/3", shop["admin"], 404)) == "not_found"
    api.call("GET", f"{base}/z-till-1/z-reports/1", shop["other_admin"], 404)
    api.call("GET", f"/companies/{shop['cid']}/z-reports", shop["other_admin"], 404)
    api.call("GET", f"/companies/{shop['other_cid']}/devices/z-other/z-reports/1", shop["other_admin"], 200)
    assert error_code(api.call("GET", f"{base}/z-till-1/z-reports/0", shop["admin"], 422)) == "invalid_request"


def _stored(api: Api, device_id: str) -> int:
    with Session(api.engine) as session:
        return session.scalar(
            select(func.count()).select_from(ZReportRecord).where(ZReportRecord.device_id == device_id)
        )


def _outcome(api: Api, message_id: uuid.UUID) -> tuple[str, str | None]:
    with Session(api.engine) as session:
        row = session.get(IngestedMessage, message_id)
        return row.outcome, row.reject_reason


def test_exactly_once_and_the_business_refusals(api: Api) -> None:
    cid, _admin = api.company("Z Rules Co")
    add_device(api, "z-rules", cid)
    first = z(7, 0)
    original = up(first, "z-rules", 1)
    assert ingest(api, [original]).applied == 1
    # the same message again (a redelivery): nothing changes, acked again
    again = ingest(api, [original])
    assert (again.duplicates, again.applied) == (1, 0)
    assert list(again.devices["z-rules"].acked) == [original.id]
    # the same report resent under a new message id: acked, still one row
    resent = up(first, "z-rules", 2)
    plan = ingest(api, [resent])
    assert (plan.applied, plan.rejected) == (1, 0) and _stored(api, "z-rules") == 1
    # another report with a used Z number: refused for good, with its reason
    reused = up(z(7, 1), "z-rules", 3)
    plan = ingest(api, [reused])
    (rejection,) = plan.devices["z-rules"].rejected.values()
    assert rejection.reason == "z_report.number_reused" and str(first.report_id) in rejection.detail
    assert _outcome(api, reused.id) == ("rejected", "z_report.number_reused")
    # redelivered, the refusal is answered the same way
    assert next(iter(ingest(api, [reused]).devices["z-rules"].rejected.values())).reason == "z_report.number_reused"
    # the same report id with other content
    changed = up(first.model_copy(update={"sales_total": 1}), "z-rules", 4)
    plan = ingest(api, [changed])
    assert [r.reason for r in plan.devices["z-rules"].rejected.values()] == ["z_report.conflict"]
    # two reports with one Z number in one batch: the first (by seq) wins
    a, b = z(8, 2), z(8, 3)
    plan = ingest(api, [up(b, "z-rules", 6), up(a, "z-rules", 5)])
    assert (plan.applied, plan.rejected) == (1, 1)
    assert _stored(api, "z-rules") == 2
    with Session(api.engine) as session:
        assert (
            session.scalar(
                select(ZReportRecord.report_id).where(ZReportRecord.device_id == "z-rules", ZReportRecord.z_no == 8)
            )
            == a.report_id
        )
    # Z numbers are per device: another device may use 7
    add_device(api, "z-rules-2", cid)
    assert ingest(api, [up(z(7, 0), "z-rules-2", 1)]).applied == 1
