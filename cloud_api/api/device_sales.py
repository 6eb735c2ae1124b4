"""Sale lookup for devices (``POST /device-api/sales/lookup``): an admin cashier on one
terminal refunds a sale made on another terminal of the same company.

No bearer token: the request is signed with the device's Ed25519 identity key (the wire
formats and the check are in broker/contract/device_requests.py) and verified against the key
the device registered when it was paired (`devices.public_key`). Only sales of devices of
the asking device's company are answered; any other sale id is 404 `not_found`, exactly like
one the cloud never received.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker import contract as kc
from broker.contract.device_requests import (
    SALE_LOOKUP_PATH,
    DeviceProofError,
    LookupRefund,
    LookupRefundLine,
    LookupRefundPayment,
    SaleLookupReply,
    SaleLookupRequest,
    verify_sale_lookup,
)
from cloud_api.api.errors import ApiError, ErrorResponse, not_found
from cloud_api.api.pairing import _body_schema, _parse
from cloud_api.pairing.limits import read_body
from cloud_api.reports.models import RefundLine, RefundPayment, RefundRecord, SaleRecord
from cloud_api.tenancy.models import Device

router = APIRouter(tags=["device API"])

LOOKUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in [
        (
            401,
            "bad_signature (not signed by the device's registered identity key, or the device is "
            "unknown or not paired), proof_mismatch",
        ),
        (404, "not_found: no such sale among the sales of the device's company"),
        (413, "too_large: body over 16 KiB"),
        (422, "invalid_request, clock_skew (sign with the time of the HTTP Date header)"),
    ]
}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@router.post(
    SALE_LOOKUP_PATH,
    response_model=SaleLookupReply,
    responses=LOOKUP_RESPONSES,
    openapi_extra=_body_schema(SaleLookupRequest),
    summary="A paired device looks up a sale of its company and what was refunded of it "
    "(no token; signed with its identity key)",
)
async def lookup_sale(request: Request) -> SaleLookupReply:
    body: SaleLookupRequest = _parse(SaleLookupRequest, await read_body(request))

    def work() -> SaleLookupReply:
        with Session(request.app.state.engine) as session:
            return lookup(session, body, datetime.now(UTC))

    return await run_in_threadpool(work)


def lookup(session: Session, body: SaleLookupRequest, now: datetime) -> SaleLookupReply:
    device = session.get(Device, body.device_id)
    if device is None or device.public_key is None:
        # Same answer as a forged proof: nobody learns which device ids exist.
        raise ApiError(401, "bad_signature", "the proof is not signed by a paired device's identity key")
    try:
        verify_sale_lookup(body, device.public_key, now)
    except DeviceProofError as exc:
        raise ApiError(422 if exc.reason == "clock_skew" else 401, exc.reason, str(exc)) from None
    company_devices = select(Device.device_id).where(Device.company_id == device.company_id)
    sale = session.scalar(
        select(SaleRecord).where(SaleRecord.sale_id == body.sale_id, SaleRecord.device_id.in_(company_devices))
    )
    if sale is None:
        raise not_found(f"sale {body.sale_id}")
    refunds = list(
        session.scalars(
            select(RefundRecord)
            .where(
                RefundRecord.original_sale_id == sale.sale_id,
                RefundRecord.original_device_id == sale.device_id,
                RefundRecord.device_id.in_(company_devices),
            )
            .order_by(RefundRecord.refunded_at, RefundRecord.refund_id)
        )
    )
    lines: dict[uuid.UUID, list[LookupRefundLine]] = {refund.refund_id: [] for refund in refunds}
    payments: dict[uuid.UUID, list[LookupRefundPayment]] = {refund.refund_id: [] for refund in refunds}
    refunded: dict[int, tuple[int, int]] = {}
    if refunds:
        for payment in session.scalars(
            select(RefundPayment)
            .where(RefundPayment.refund_id.in_(list(payments)))
            .order_by(RefundPayment.refund_id, RefundPayment.payment_index)
        ):
            payments[payment.refund_id].append(
                LookupRefundPayment(method=payment.method, amount=payment.amount_minor, reference=payment.reference)
            )
        for line in session.scalars(
            select(RefundLine).where(RefundLine.refund_id.in_(list(lines))).order_by(RefundLine.line_index)
        ):
            lines[line.refund_id].append(
                LookupRefundLine(line_index=line.line_index, qty_milli=line.qty_milli, amount=line.amount_minor)
            )
            qty, amount = refunded.get(line.line_index, (0, 0))
            refunded[line.line_index] = (qty + line.qty_milli, amount + line.amount_minor)
    return SaleLookupReply(
        device_id=sale.device_id,
        sold_at=_utc(sale.sold_at),
        sale=kc.Sale.model_validate(sale.payload),
        refunds=[
            LookupRefund(
                refund_id=r.refund_id,
                device_id=r.device_id,
                scope=r.scope,
                amount=r.amount_minor,
                lines=lines[r.refund_id],
                payments=payments[r.refund_id],
                cashier_id=r.cashier_id,
                till_session_id=r.till_session_id,
                receipt_no=(r.payload or {}).get("receipt_no"),
                refunded_at=_utc(r.refunded_at),
            )
            for r in refunds
        ],
        refunded_amount=sum(r.amount_minor for r in refunds),
        refunded_lines=[
            LookupRefundLine(line_index=index, qty_milli=qty, amount=amount)
            for index, (qty, amount) in sorted(refunded.items())
        ],
        whole_refunded=any(r.scope == kc.RefundScope.WHOLE.value for r in refunds),
    )
