"""A company's devices and the sales they reported (from the ingest `sales` table).

Sales belong to the company that owns the device (`devices.company_id`); a device id not
registered to the company shows nothing. The point-of-sale filter matches the
`point_of_sale_id` the terminal put in each sale against the point of sale's `code`.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy import select

from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, invalid, not_found
from cloud_api.api.schemas import DEVICE_ID_PATTERN, MAX_ID, DeviceOut, SaleOut, SalesPage
from cloud_api.models import SaleRecord
from cloud_api.tenancy import access
from cloud_api.tenancy.models import Device

router = APIRouter(tags=["devices and sales"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
CODE_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
CSV_COLUMNS = ["sale_id", "sold_at", "device_id", "point_of_sale", "cashier_id", "receipt_number",
               "currency", "total_minor"]
# Years a datetime may have here: Python and both databases handle all of them.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)


def _device_out(device: Device) -> DeviceOut:
    return DeviceOut(device_id=device.device_id, company_id=device.company_id,
                     point_of_sale_id=device.point_of_sale_id, paired=device.public_key is not None,
                     created_at=device.created_at)


@router.get("/companies/{company_id}/devices", response_model=list[DeviceOut], summary="A company's devices")
def list_devices(company_id: IdPath, session: SessionDep, p: PrincipalDep,
                 point_of_sale: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only devices assigned to this point of sale")] = None) -> list[DeviceOut]:
    company = access.company_data(session, p, company_id)
    query = select(Device).where(Device.company_id == company.id)
    if point_of_sale is not None:
        pos = access.visible_point_of_sale(session, company, point_of_sale)
        query = query.where(Device.point_of_sale_id == pos.id)
    return [_device_out(d) for d in session.scalars(query.order_by(Device.device_id))]


@router.get("/companies/{company_id}/devices/{device_id}", response_model=DeviceOut, summary="One device")
def get_device(company_id: IdPath, device_id: DeviceIdPath, session: SessionDep, p: PrincipalDep) -> DeviceOut:
    company = access.company_data(session, p, company_id)
    device = session.scalar(select(Device).where(Device.device_id == device_id, Device.company_id == company.id))
    if device is None:
        raise not_found(f"device {device_id}")
    return _device_out(device)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if not EARLIEST <= moment <= LATEST:
        raise invalid("since and until must lie between 1970 and 9999")
    return moment.astimezone(timezone.utc)


@router.get("/companies/{company_id}/sales", response_model=SalesPage,
            responses={200: {"content": {"text/csv": {}},
                             "description": "a page of sales (JSON), or CSV with ?format=csv"}},
            summary="A company's sales, newest first, filtered; ?format=csv exports CSV")
def list_sales(
    company_id: IdPath, session: SessionDep, p: PrincipalDep,
    point_of_sale: Annotated[int | None, Query(ge=1, le=MAX_ID, description="point of sale id")] = None,
    device: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN, max_length=64)] = None,
    cashier: Annotated[str | None, Query(pattern=CODE_PATTERN, max_length=64, description="cashier id (code)")] = None,
    since: Annotated[datetime | None, Query(description="sold at or after (ISO 8601; UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="sold before (ISO 8601; UTC if no zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    format: Annotated[Literal["json", "csv"], Query()] = "json",  # noqa: A002 - the query name
) -> Any:
    company = access.company_data(session, p, company_id)
    start, end = _utc(since), _utc(until)
    pos_code = SaleRecord.payload["point_of_sale_id"].as_string()
    cashier_id = SaleRecord.payload["cashier_id"].as_string()
    query = (select(SaleRecord.sale_id, SaleRecord.device_id, pos_code, cashier_id,
                    SaleRecord.receipt_number, SaleRecord.currency, SaleRecord.total_minor,
                    SaleRecord.sold_at)
             .where(SaleRecord.device_id.in_(select(Device.device_id).where(Device.company_id == company.id))))
    if point_of_sale is not None:
        query = query.where(pos_code == access.visible_point_of_sale(session, company, point_of_sale).code)
    if device is not None:
        query = query.where(SaleRecord.device_id == device)
    if cashier is not None:
        query = query.where(cashier_id == cashier)
    if start is not None:
        query = query.where(SaleRecord.sold_at >= start)
    if end is not None:
        query = query.where(SaleRecord.sold_at < end)
    rows = session.execute(query.order_by(SaleRecord.sold_at.desc(), SaleRecord.sale_id)
                           .limit(limit + 1).offset(offset)).all()
    more = len(rows) > limit
    sales = [SaleOut(sale_id=r[0], device_id=r[1], point_of_sale=r[2], cashier_id=r[3],
                     receipt_number=r[4], currency=r[5], total_minor=r[6], sold_at=r[7])
             for r in rows[:limit]]
    if format == "csv":
        return _csv(sales, company.id, more)
    return SalesPage(items=sales, next_offset=offset + limit if more else None)


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
