"""Database tables of the cloud service (SQLAlchemy 2, typed declarative mapping).

Portable between SQLite and PostgreSQL: UUIDs use `Uuid` (native on PostgreSQL, 32 hex
characters on SQLite), JSON documents use JSONB on PostgreSQL, every timestamp is UTC.
Tables are created with `cloud_api.schema_init.create_schema` until Alembic takes over.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Sized by the wire contract: device ids are at most 64 characters, reasons are dotted names
# of at most 64, rejection details at most 500.
DEVICE_ID = String(64)
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map = {
        uuid.UUID: Uuid(),
        datetime: UtcDateTime,
        dict[str, Any]: JsonDocument,
    }


class Outcome:
    """What happened to a recorded up message; a redelivery is answered the same way."""

    APPLIED = "applied"
    REJECTED = "rejected"


class IngestedMessage(Base):
    """Every up message id the cloud has settled: the exactly-once ledger."""

    __tablename__ = "ingested_messages"

    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    boot_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]  # the device's clock, see clock_trusted
    clock_trusted: Mapped[bool]
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    reject_reason: Mapped[str | None] = mapped_column(String(64))
    reject_detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_ingested_messages_device_seq", "device_id", "seq"),)


class DeviceStream(Base):
    """Per-device sequence tracking.

    high_water: every seq in 1..high_water is recorded. max_seq: the highest seq seen. Every
    seq in (high_water, max_seq] that is missing lies inside an open `sequence_gaps` row.
    """

    __tablename__ = "device_streams"

    device_id: Mapped[str] = mapped_column(DEVICE_ID, primary_key=True)
    high_water: Mapped[int] = mapped_column(BigInteger, default=0)
    max_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen_at: Mapped[datetime | None]
    last_boot_id: Mapped[uuid.UUID | None]


class SequenceGap(Base):
    """A run of seqs skipped when a later seq arrived; closed once all of them arrived."""

    __tablename__ = "sequence_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    first_missing: Mapped[int] = mapped_column(BigInteger)
    last_missing: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_sequence_gaps_device_open", "device_id", "closed_at"),)


class SaleRecord(Base):
    __tablename__ = "sales"

    sale_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    receipt_number: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    sold_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    message_id: Mapped[uuid.UUID]

    __table_args__ = (Index("ix_sales_device_receipt", "device_id", "receipt_number"),)


class RefundRecord(Base):
    __tablename__ = "refunds"

    refund_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    original_sale_id: Mapped[uuid.UUID] = mapped_column(index=True)
    original_device_id: Mapped[str] = mapped_column(DEVICE_ID)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    message_id: Mapped[uuid.UUID]


class DeviceEvent(Base):
    """Audit events (cashier login, lockout, drawer opened without a sale, ...)."""

    __tablename__ = "device_events"

    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    cashier_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]


class CommandReply(Base):
    """A device's answer to one down/cmd, found by the command id (correlation id)."""

    __tablename__ = "command_replies"

    correlation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    ok: Mapped[bool]
    reply: Mapped[dict[str, Any]]
    message_id: Mapped[uuid.UUID]
    received_at: Mapped[datetime]


class DeviceReport(Base):
    """The latest report of each kind per device: `state`, or a licence report kind."""

    __tablename__ = "device_reports"

    device_id: Mapped[str] = mapped_column(DEVICE_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # reports arriving out of order never win
    report: Mapped[dict[str, Any]]
    message_id: Mapped[uuid.UUID]
    reported_at: Mapped[datetime]


class DevicePresence(Base):
    """Online/offline from the retained `status` topic (offline is the device's MQTT will)."""

    __tablename__ = "device_presence"

    device_id: Mapped[str] = mapped_column(DEVICE_ID, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    boot_id: Mapped[uuid.UUID | None]
    status_message_id: Mapped[uuid.UUID]
    status_at: Mapped[datetime]  # when the device made the status (the will: at connect time)
    last_seen_at: Mapped[datetime]  # when a worker received it
