"""The `z_reports` table: one row per Z report a device sent (migration 0007).

A report is kept once by its `report_id`; `uq_z_reports_device_z_no` keeps one report per
Z number of a device (the ingest refuses a second one as `z_report.number_reused`, and two
workers racing to store such a pair are settled by this index: the loser retries its batch).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.models import CODE, DEVICE_ID, Base, JsonDocument, ReceivedJson


class ZReportRecord(Base):
    __tablename__ = "z_reports"

    report_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    z_no: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime]
    closed_by: Mapped[str] = mapped_column(CODE)  # cashier id
    first_receipt_no: Mapped[int | None] = mapped_column(BigInteger)
    last_receipt_no: Mapped[int | None] = mapped_column(BigInteger)
    sales_count: Mapped[int] = mapped_column(BigInteger)
    refunds_count: Mapped[int] = mapped_column(BigInteger)
    sales_total_minor: Mapped[int] = mapped_column(BigInteger)
    refunds_total_minor: Mapped[int] = mapped_column(BigInteger)
    tax_total_minor: Mapped[int] = mapped_column(BigInteger)
    payments: Mapped[Any] = mapped_column(JsonDocument)  # [{method, taken, paid_out}] as sent
    taxes: Mapped[Any] = mapped_column(JsonDocument)  # [{rate_bp, base, tax}] as sent
    payload: Mapped[Any] = mapped_column(ReceivedJson)  # the body as received (audit)
    message_id: Mapped[uuid.UUID]
    received_at: Mapped[datetime]

    __table_args__ = (
        Index("uq_z_reports_device_z_no", "device_id", "z_no", unique=True),
        Index("ix_z_reports_closed_at", "closed_at"),
    )
