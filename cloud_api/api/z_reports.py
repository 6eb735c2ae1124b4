"""A company's Z reports (the close of a till period), as its devices reported them.

Reports belong to the company that owns the device (`devices.company_id`), like sales. The
period filter matches the report's `closed_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from broker.contract.fields import MAX_STORED_INT
from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.devices import DeviceIdPath, IdPath, _company_devices, _utc
from cloud_api.api.errors import ERROR_RESPONSES, not_found
from cloud_api.api.schemas import DEVICE_ID_PATTERN, TaxOut, Utc
from cloud_api.reports.models import ZReportRecord
from cloud_api.tenancy import access

router = APIRouter(tags=["z reports"], responses=ERROR_RESPONSES)


class PaymentTotalOut(BaseModel):
    method: Literal["cash", "card", "other"]
    taken_minor: int = Field(description="taken by sales (cash: net of change)")
    paid_out_minor: int = Field(description="paid out by refunds")


class ZReportOut(BaseModel):
    report_id: uuid.UUID
    device_id: str
    z_no: int = Field(description="the device's Z counter, without gaps")
    currency: str
    opened_at: Utc
    closed_at: Utc
    closed_by: str = Field(description="cashier id who closed the period")
    first_receipt_no: int | None
    last_receipt_no: int | None
    sales_count: int
    refunds_count: int
    sales_total_minor: int
    refunds_total_minor: int
    net_total_minor: int = Field(description="sales_total_minor - refunds_total_minor")
    tax_total_minor: int = Field(description="tax of the sales less the refunded tax")
    payments: list[PaymentTotalOut]
    taxes: list[TaxOut]
    received_at: Utc = Field(description="when the cloud stored the report")


class ZReportsPage(BaseModel):
    items: list[ZReportOut]
    next_offset: int | None = Field(description="offset of the next page; null on the last page")


def _out(report: ZReportRecord) -> ZReportOut:
    return ZReportOut(
        report_id=report.report_id,
        device_id=report.device_id,
        z_no=report.z_no,
        currency=report.currency,
        opened_at=report.opened_at,
        closed_at=report.closed_at,
        closed_by=report.closed_by,
        first_receipt_no=report.first_receipt_no,
        last_receipt_no=report.last_receipt_no,
        sales_count=report.sales_count,
        refunds_count=report.refunds_count,
        sales_total_minor=report.sales_total_minor,
        refunds_total_minor=report.refunds_total_minor,
        net_total_minor=report.sales_total_minor - report.refunds_total_minor,
        tax_total_minor=report.tax_total_minor,
        payments=[
            PaymentTotalOut(method=p["method"], taken_minor=p["taken"], paid_out_minor=p["paid_out"])
            for p in report.payments
        ],
        taxes=[TaxOut(rate_bp=t["rate_bp"], base_minor=t["base"], tax_minor=t["tax"]) for t in report.taxes],
        received_at=report.received_at,
    )


@router.get(
    "/companies/{company_id}/z-reports",
    response_model=ZReportsPage,
    summary="A company's Z reports, newest close first, filtered by device and period",
)
def list_z_reports(
    company_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    device: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN, max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="closed at or after (ISO 8601; UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="closed before (ISO 8601; UTC if no zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ZReportsPage:
    company = access.company_data(session, p, company_id)
    start, end = _utc(since), _utc(until)
    query = select(ZReportRecord).where(ZReportRecord.device_id.in_(_company_devices(company)))
    if device is not None:
        query = query.where(ZReportRecord.device_id == device)
    if start is not None:
        query = query.where(ZReportRecord.closed_at >= start)
    if end is not None:
        query = query.where(ZReportRecord.closed_at < end)
    rows = list(
        session.scalars(
            query.order_by(ZReportRecord.closed_at.desc(), ZReportRecord.device_id, ZReportRecord.z_no.desc())
            .limit(limit + 1)
            .offset(offset)
        )
    )
    more = len(rows) > limit
    return ZReportsPage(items=[_out(row) for row in rows[:limit]], next_offset=offset + limit if more else None)


@router.get(
    "/companies/{company_id}/devices/{device_id}/z-reports/{z_no}",
    response_model=ZReportOut,
    summary="One Z report of a device, by its Z number",
)
def get_z_report(
    company_id: IdPath,
    device_id: DeviceIdPath,
    z_no: Annotated[int, Path(ge=1, le=MAX_STORED_INT)],
    session: SessionDep,
    p: PrincipalDep,
) -> ZReportOut:
    company = access.company_data(session, p, company_id)
    report = session.scalar(
        select(ZReportRecord).where(
            ZReportRecord.device_id == device_id,
            ZReportRecord.z_no == z_no,
            ZReportRecord.device_id.in_(_company_devices(company)),
        )
    )
    if report is None:
        raise not_found(f"Z report {z_no} of device {device_id}")
    return _out(report)
