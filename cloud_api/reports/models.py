"""The business records terminals report: sales and refunds with their lines and payments, and
Z reports. Written by the ingest (`ingest/bodies.py`, `ingest/reports.py`), read by the API.

A sale is kept once per device receipt number (`uq_sales_device_receipt`). A Z report is kept
once by its `report_id` (migration 0007); `uq_z_reports_device_z_no` keeps one report per Z
number of a device (the ingest refuses a second one as `z_report.number_reused`, and two workers
racing to store such a pair are settled by this index: the loser retries its batch).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import CODE, DEVICE_ID, Base, JsonDocument, ReceivedJson


class SaleRecord(Base):
    """A sale as the device reported it; its lines and payments are rows of their own.

    One receipt number per device (`uq_sales_device_receipt`): a second, different sale
    with a used number is refused by the ingest (`sale.receipt_no_reused`), and two workers
    racing to store such a pair are settled by this index (the loser retries its batch).
    """

    __tablename__ = "sales"

    sale_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    receipt_number: Mapped[int] = mapped_column(BigInteger)
    cashier_id: Mapped[str] = mapped_column(CODE)
    # The `point_of_sale_id` the terminal reported: a points_of_sale.code of its company.
    point_of_sale_code: Mapped[str] = mapped_column(CODE)
    till_session_id: Mapped[uuid.UUID]
    currency: Mapped[str] = mapped_column(String(3))
    tax_included: Mapped[bool]
    total_minor: Mapped[int] = mapped_column(BigInteger)
    tax_total_minor: Mapped[int] = mapped_column(BigInteger)
    change_minor: Mapped[int] = mapped_column(BigInteger)
    sold_at: Mapped[datetime]
    payload: Mapped[Any] = mapped_column(ReceivedJson)  # the body as received (audit)
    message_id: Mapped[uuid.UUID]

    __table_args__ = (Index("uq_sales_device_receipt", "device_id", "receipt_number", unique=True),)


# Child rows carry no foreign key to their sale or refund on purpose: the ingest writes them
# in the same transaction as the parent, nothing deletes either, and PostgreSQL checks a
# foreign key with a per-row trigger query, which measured ~7 µs per row (~35 µs per 5-line
# sale) on the ingest's hot path.
class SaleLine(Base):
    __tablename__ = "sale_lines"

    sale_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    line_index: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based, as refunds name it
    sku: Mapped[str] = mapped_column(CODE)
    name: Mapped[str] = mapped_column(String(200))
    qty_milli: Mapped[int] = mapped_column(BigInteger)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)


class SalePayment(Base):
    __tablename__ = "sale_payments"

    sale_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    payment_index: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based, as sent
    method: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(CODE)


class RefundRecord(Base):
    __tablename__ = "refunds"

    refund_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    original_sale_id: Mapped[uuid.UUID] = mapped_column(index=True)
    original_device_id: Mapped[str] = mapped_column(DEVICE_ID)
    scope: Mapped[str] = mapped_column(String(16))  # whole | lines
    cashier_id: Mapped[str] = mapped_column(CODE)
    till_session_id: Mapped[uuid.UUID]
    reason: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_at: Mapped[datetime]
    payload: Mapped[Any] = mapped_column(ReceivedJson)  # the body as received (audit)
    message_id: Mapped[uuid.UUID]


class RefundLine(Base):
    """A refunded line of the original sale (only in `lines` refunds)."""

    __tablename__ = "refund_lines"

    refund_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    line_index: Mapped[int] = mapped_column(Integer, primary_key=True)  # the sale's line
    qty_milli: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class RefundPayment(Base):
    __tablename__ = "refund_payments"

    refund_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    payment_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(CODE)


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
