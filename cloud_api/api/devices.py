"""A company's devices (with presence) and the sales they reported (from the ingest tables).

Sales belong to the company that owns the device (`devices.company_id`); a device id not
registered to the company shows nothing. The point-of-sale filter matches the
`point_of_sale_id` the terminal put in each sale (`sales.point_of_sale_code`) against the
point of sale's `code`. The device rows (presence, last seen, gaps, rejections) come from
cloud_api/tenancy/devices.py, which the company cabinet's device pages read too.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud_api.api.deps import ActorDep, PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, invalid, not_found
from cloud_api.api.schemas import (
    DEVICE_ID_PATTERN,
    MAX_ID,
    DeviceOut,
    GapOut,
    Id,
    PaymentOut,
    RefundLineOut,
    RefundOut,
    RejectionOut,
    SaleDetail,
    SaleLineOut,
    SaleOut,
    SalesPage,
    TaxOut,
)
from cloud_api.ingest.models import IngestedMessage, SequenceGap
from cloud_api.reports.models import RefundLine, RefundPayment, RefundRecord, SaleLine, SalePayment, SaleRecord
from cloud_api.tenancy import access, devices
from cloud_api.tenancy.models import Company, Device
from cloud_api.tenancy.tokens import utcnow

router = APIRouter(tags=["devices and sales"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
CODE_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
CSV_COLUMNS = [
    "sale_id",
    "sold_at",
    "device_id",
    "point_of_sale",
    "cashier_id",
    "receipt_number",
    "currency",
    "total_minor",
    "refunded_minor",
    "refund_count",
]
# Years a datetime may have here: Python and both databases handle all of them.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


@router.get("/companies/{company_id}/devices", response_model=list[DeviceOut], summary="A company's devices")
def list_devices(
    company_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    point_of_sale: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only devices assigned to this point of sale")
    ] = None,
) -> list[DeviceOut]:
    company = access.company_data(session, p, company_id)
    pos_id = None if point_of_sale is None else access.visible_point_of_sale(session, company, point_of_sale).id
    return devices.company_devices(session, company.id, point_of_sale_id=pos_id)


@router.get("/companies/{company_id}/devices/{device_id}", response_model=DeviceOut, summary="One device")
def get_device(company_id: IdPath, device_id: DeviceIdPath, session: SessionDep, p: PrincipalDep) -> DeviceOut:
    company = access.company_data(session, p, company_id)
    found = devices.company_devices(session, company.id, device_id=device_id)
    if not found:
        raise not_found(f"device {device_id}")
    return found[0]


class DeviceMoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    point_of_sale_id: Id = Field(description="The point of sale (not archived) the device serves from now on.")


@router.patch(
    "/companies/{company_id}/devices/{device_id}",
    response_model=DeviceOut,
    summary="Move a device to another of the company's points of sale (company admins and managers)",
)
def move_device(
    company_id: IdPath, device_id: DeviceIdPath, body: DeviceMoveIn, session: SessionDep, actor: ActorDep
) -> DeviceOut:
    devices.move_device(session, actor, company_id, device_id, body.point_of_sale_id, utcnow())
    session.commit()
    return devices.company_devices(session, company_id, device_id=device_id)[0]


@router.get(
    "/companies/{company_id}/devices/{device_id}/gaps",
    response_model=list[GapOut],
    summary="Sequence gaps of one device: seqs skipped, open until they arrive",
)
def list_gaps(
    company_id: IdPath,
    device_id: DeviceIdPath,
    session: SessionDep,
    p: PrincipalDep,
    state: Annotated[Literal["open", "all"], Query(description="open gaps only, or closed ones too")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[GapOut]:
    access.company_device(session, access.company_data(session, p, company_id), device_id)
    query = select(SequenceGap).where(SequenceGap.device_id == device_id)
    if state == "open":
        query = query.where(SequenceGap.closed_at.is_(None))
    gaps = session.scalars(query.order_by(SequenceGap.first_missing.desc()).limit(limit))
    return [
        GapOut(
            first_missing=g.first_missing,
            last_missing=g.last_missing,
            detected_at=_utc(g.detected_at),
            closed_at=_utc(g.closed_at),
        )
        for g in gaps
    ]


@router.get(
    "/companies/{company_id}/devices/{device_id}/rejections",
    response_model=list[RejectionOut],
    summary="Up messages of one device refused for good, newest first",
)
def list_rejections(
    company_id: IdPath,
    device_id: DeviceIdPath,
    session: SessionDep,
    p: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[RejectionOut]:
    access.company_device(session, access.company_data(session, p, company_id), device_id)
    messages = session.scalars(
        select(IngestedMessage)
        .where(IngestedMessage.device_id == device_id, devices.REJECTED)
        .order_by(*devices.NEWEST_REJECTION)
        .limit(limit)
        .offset(offset)
    )
    return [devices.rejection_out(message) for message in messages]


def _company_devices(company: Company) -> Select:
    return select(Device.device_id).where(Device.company_id == company.id)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise invalid("since and until must lie between 1970 and 9999")
    return moment.astimezone(UTC)


@router.get(
    "/companies/{company_id}/sales",
    response_model=SalesPage,
    responses={200: {"content": {"text/csv": {}}, "description": "a page of sales (JSON), or CSV with ?format=csv"}},
    summary="A company's sales, newest first, filtered; ?format=csv exports CSV",
)
def list_sales(
    company_id: IdPath,
    session: SessionDep,
    p: PrincipalDep,
    point_of_sale: Annotated[int | None, Query(ge=1, le=MAX_ID, description="point of sale id")] = None,
    device: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN, max_length=64)] = None,
    cashier: Annotated[str | None, Query(pattern=CODE_PATTERN, max_length=64, description="cashier id (code)")] = None,
    since: Annotated[datetime | None, Query(description="sold at or after (ISO 8601; UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="sold before (ISO 8601; UTC if no zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    company = access.company_data(session, p, company_id)
    start, end = _utc(since), _utc(until)
    query = select(
        SaleRecord.sale_id,
        SaleRecord.device_id,
        SaleRecord.point_of_sale_code,
        SaleRecord.cashier_id,
        SaleRecord.receipt_number,
        SaleRecord.currency,
        SaleRecord.total_minor,
        SaleRecord.sold_at,
    ).where(SaleRecord.device_id.in_(_company_devices(company)))
    if point_of_sale is not None:
        code = access.visible_point_of_sale(session, company, point_of_sale).code
        query = query.where(SaleRecord.point_of_sale_code == code)
    if device is not None:
        query = query.where(SaleRecord.device_id == device)
    if cashier is not None:
        query = query.where(SaleRecord.cashier_id == cashier)
    if start is not None:
        query = query.where(SaleRecord.sold_at >= start)
    if end is not None:
        query = query.where(SaleRecord.sold_at < end)
    rows = session.execute(
        query.order_by(SaleRecord.sold_at.desc(), SaleRecord.sale_id).limit(limit + 1).offset(offset)
    ).all()
    more = len(rows) > limit
    refunded = _refund_totals(session, company, [(r[0], r[1]) for r in rows[:limit]])
    sales = [
        SaleOut(
            sale_id=r[0],
            device_id=r[1],
            point_of_sale=r[2],
            cashier_id=r[3],
            receipt_number=r[4],
            currency=r[5],
            total_minor=r[6],
            sold_at=r[7],
            refunded_minor=refunded.get((r[0], r[1]), (0, 0))[0],
            refund_count=refunded.get((r[0], r[1]), (0, 0))[1],
        )
        for r in rows[:limit]
    ]
    if format == "csv":
        return _csv(sales, company.id, more)
    return SalesPage(items=sales, next_offset=offset + limit if more else None)


@router.get(
    "/companies/{company_id}/sales/{sale_id}",
    response_model=SaleDetail,
    summary="One sale with its lines, taxes, payments and refunds",
)
def get_sale(company_id: IdPath, sale_id: uuid.UUID, session: SessionDep, p: PrincipalDep) -> SaleDetail:
    company = access.company_data(session, p, company_id)
    sale = session.scalar(
        select(SaleRecord).where(SaleRecord.sale_id == sale_id, SaleRecord.device_id.in_(_company_devices(company)))
    )
    if sale is None:
        raise not_found(f"sale {sale_id}")
    lines = session.scalars(select(SaleLine).where(SaleLine.sale_id == sale_id).order_by(SaleLine.line_index))
    payments = session.scalars(
        select(SalePayment).where(SalePayment.sale_id == sale_id).order_by(SalePayment.payment_index)
    )
    refunds = _refunds_of(session, company, sale)
    # Taxes are a per-receipt summary nothing filters on: read from the body as received.
    taxes = [
        TaxOut(rate_bp=tax["rate_bp"], base_minor=tax["base"], tax_minor=tax["tax"]) for tax in sale.payload["taxes"]
    ]
    return SaleDetail(
        sale_id=sale.sale_id,
        device_id=sale.device_id,
        point_of_sale=sale.point_of_sale_code,
        cashier_id=sale.cashier_id,
        receipt_number=sale.receipt_number,
        currency=sale.currency,
        total_minor=sale.total_minor,
        sold_at=sale.sold_at,
        till_session_id=sale.till_session_id,
        tax_included=sale.tax_included,
        tax_total_minor=sale.tax_total_minor,
        change_minor=sale.change_minor,
        lines=[SaleLineOut.model_validate(line) for line in lines],
        taxes=taxes,
        payments=[PaymentOut.model_validate(payment) for payment in payments],
        refunds=refunds,
        refunded_minor=sum(refund.amount_minor for refund in refunds),
        refund_count=len(refunds),
    )


def _refund_totals(
    session: Session, company: Company, sales: list[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], tuple[int, int]]:
    """(refunded amount, refund count) per (sale id, device id) of a page of sales, counting
    the refunds `_refunds_of` shows. A refund stored before its sale arrived counts as soon
    as the sale is there: refunds are matched by the sale's id at read time."""
    if not sales:
        return {}
    rows = session.execute(
        select(
            RefundRecord.original_sale_id,
            RefundRecord.original_device_id,
            func.sum(RefundRecord.amount_minor),
            func.count(),
        )
        .where(
            RefundRecord.original_sale_id.in_(sorted({sale_id for sale_id, _ in sales}, key=str)),
            RefundRecord.device_id.in_(_company_devices(company)),
        )
        .group_by(RefundRecord.original_sale_id, RefundRecord.original_device_id)
    )
    return {(sale_id, device_id): (int(total or 0), int(count)) for sale_id, device_id, total, count in rows}


def _refunds_of(session: Session, company: Company, sale: SaleRecord) -> list[RefundOut]:
    """Refunds of the sale made on the company's own devices: a refund from another company's
    device naming this sale is that company's business, not shown here."""
    refunds = list(
        session.scalars(
            select(RefundRecord)
            .where(
                RefundRecord.original_sale_id == sale.sale_id,
                RefundRecord.original_device_id == sale.device_id,
                RefundRecord.device_id.in_(_company_devices(company)),
            )
            .order_by(RefundRecord.refunded_at, RefundRecord.refund_id)
        )
    )
    ids = [refund.refund_id for refund in refunds]
    lines: dict[uuid.UUID, list[RefundLineOut]] = {refund_id: [] for refund_id in ids}
    payments: dict[uuid.UUID, list[PaymentOut]] = {refund_id: [] for refund_id in ids}
    if ids:
        for line in session.scalars(
            select(RefundLine).where(RefundLine.refund_id.in_(ids)).order_by(RefundLine.line_index)
        ):
            lines[line.refund_id].append(RefundLineOut.model_validate(line))
        for payment in session.scalars(
            select(RefundPayment).where(RefundPayment.refund_id.in_(ids)).order_by(RefundPayment.payment_index)
        ):
            payments[payment.refund_id].append(PaymentOut.model_validate(payment))
    return [
        RefundOut(
            refund_id=r.refund_id,
            device_id=r.device_id,
            scope=r.scope,
            cashier_id=r.cashier_id,
            till_session_id=r.till_session_id,
            reason=r.reason,
            currency=r.currency,
            amount_minor=r.amount_minor,
            refunded_at=r.refunded_at,
            lines=lines[r.refund_id],
            payments=payments[r.refund_id],
        )
        for r in refunds
    ]


def _csv(sales: list[SaleOut], company_id: int, more: bool) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for sale in sales:
        row = sale.model_dump(mode="json")
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    headers = {"Content-Disposition": f'attachment; filename="company-{company_id}-sales.csv"'}
    if more:
        headers["X-More-Rows"] = "true"  # the page was full: ask again with offset + limit
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: object) -> object:
    # A cell starting with = + - @ is a formula in spreadsheets: quote it (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value
