"""Applying up/z_report messages: store each Z report once, one per Z number of a device.

Called by apply.py for the new (just recorded) messages of the batch, in the transaction that
records their ids. A report id already stored with the same content changes nothing (the
device resent it under a new message id); with other content it is refused as
`z_report.conflict`. A second report of a device with a used `z_no` is refused as
`z_report.number_reused`. A clash stored concurrently by another worker fails the insert
(primary key or `uq_z_reports_device_z_no`) and the batch is retried, now seeing it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.fields import MAX_STORED_INT
from cloud_api.db import table_of
from cloud_api.ingest.sql import ConcurrentChangeError, select_where_in
from cloud_api.ingest.up import Up
from cloud_api.reports.models import ZReportRecord

Refusals = dict[uuid.UUID, tuple[str, str]]
_z_reports = table_of(ZReportRecord)


def apply_z_reports(session: Session, ups: list[Up], now: datetime) -> Refusals:
    reports: list[tuple[Up, kc.ZReport, dict[str, Any]]] = [(up, up.body, up.wire_form()) for up in ups]
    stored = {
        report_id: (device_id, payload)
        for report_id, device_id, payload in select_where_in(
            session,
            _z_reports,
            ("report_id", "device_id", "payload"),
            [("report_id", sorted({body.report_id for _, body, _ in reports}, key=lambda u: u.int))],
        )
    }
    numbers = {
        (device_id, z_no): report_id
        for device_id, z_no, report_id in select_where_in(
            session,
            _z_reports,
            ("device_id", "z_no", "report_id"),
            [
                ("device_id", sorted({up.device_id for up in ups})),
                ("z_no", sorted({body.z_no for _, body, _ in reports if body.z_no <= MAX_STORED_INT})),
            ],
        )
    }
    refusals: Refusals = {}
    rows: list[dict[str, Any]] = []
    for up, report, payload in sorted(reports, key=lambda item: item[0].seq):
        if report.report_id in stored:
            if stored[report.report_id] != (up.device_id, payload):
                refusals[up.id] = (
                    "z_report.conflict",
                    f"Z report {report.report_id} is already recorded with different content",
                )
            continue
        if (
            max(
                report.z_no,
                report.sales_count,
                report.refunds_count,
                report.first_receipt_no or 0,
                report.last_receipt_no or 0,
            )
            > MAX_STORED_INT
        ):
            refusals[up.id] = ("message.unstorable", "a counter of the Z report exceeds 2^63-1")
            continue
        owner = numbers.get((up.device_id, report.z_no))
        if owner is not None:
            refusals[up.id] = ("z_report.number_reused", f"Z {report.z_no} is already recorded for report {owner}")
            continue
        stored[report.report_id] = (up.device_id, payload)
        numbers[(up.device_id, report.z_no)] = report.report_id
        rows.append(
            {
                "report_id": report.report_id,
                "device_id": up.device_id,
                "z_no": report.z_no,
                "currency": report.currency,
                "opened_at": report.opened_at,
                "closed_at": report.closed_at,
                "closed_by": report.closed_by,
                "first_receipt_no": report.first_receipt_no,
                "last_receipt_no": report.last_receipt_no,
                "sales_count": report.sales_count,
                "refunds_count": report.refunds_count,
                "sales_total_minor": report.sales_total,
                "refunds_total_minor": report.refunds_total,
                "tax_total_minor": report.tax_total,
                "payments": payload.get("payments", []),
                "taxes": payload.get("taxes", []),
                "payload": payload,
                "message_id": up.id,
                "received_at": now,
            }
        )
    if rows:
        try:
            session.execute(_z_reports.insert(), sorted(rows, key=lambda row: row["report_id"].int))
        except IntegrityError as exc:
            raise ConcurrentChangeError("z_reports: a report id or Z number was stored concurrently") from exc
    return refusals
