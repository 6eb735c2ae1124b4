"""Database tables of the cloud service (SQLAlchemy 2, typed declarative mapping).

Portable between SQLite and PostgreSQL: UUIDs use `Uuid` (native on PostgreSQL, 32 hex
characters on SQLite), JSON documents that are queried use JSONB on PostgreSQL, received
sale and refund bodies are kept as text (`ReceivedJson`), every timestamp is UTC. The schema
is built by the Alembic migrations in `cloud_api/migrations` (`schema_init.create_schema`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Sized by the wire contract: device ids are at most 64 characters, reasons are dotted names
# of at most 64, rejection details at most 500.
DEVICE_ID = String(64)
CODE = String(64)  # the contract's codes: cashier ids, point-of-sale ids, SKUs, references
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


class ReceivedJson(TypeDecorator):
    """A JSON document stored as TEXT on both databases: written as given, read back parsed.

    For the received bodies of sales and refunds, kept for audit. Everything queried about
    them is in columns and child rows, so the database never needs to look inside; JSONB
    made PostgreSQL parse every body on insert (about 60 µs per sale, the largest single
    cost of the ingest). A `str` is taken as JSON text already (the ingest passes the bytes
    it received when it proved them canonical); anything else is serialised.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or type(value) is str:
            return value
        if isinstance(value, str):
            return str.__str__(value)  # a str subclass: plain text for the driver
        try:
            return to_json(value).decode()
        except ValueError:  # e.g. a lone surrogate, which json.dumps escapes
            return json.dumps(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


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
    """Every up message id the cloud has settled: the exactly-once ledger.

    A message refused before it could be read as a valid envelope (`schema`, `wrong_device`,
    ... reported to its device in down/ack) is recorded too, rejected, with only what can be
    trusted: the device of its topic (the broker's ACL vouches for it), its id, the seq of a
    version-1 up envelope (else null) and the type its topic names (null for a batch line).
    Its boot id, clock and clock_trusted stay null.
    """

    __tablename__ = "ingested_messages"

    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str | None] = mapped_column(String(32))
    boot_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime | None]  # the device's clock, see clock_trusted
    clock_trusted: Mapped[bool | None]
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    reject_reason: Mapped[str | None] = mapped_column(String(64))
    reject_detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_ingested_messages_device_seq", "device_id", "seq"),
        # Rejected rows only (few): a device's rejection count and newest-first list, at no
        # cost to the inserts of applied messages.
        Index(
            "ix_ingested_messages_rejected",
            "device_id",
            "received_at",
            sqlite_where=text("outcome = 'rejected'"),
            postgresql_where=text("outcome = 'rejected'"),
        ),
    )


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
    # When a worker first received this status: the will's arrival is when the device
    # dropped off. A retained copy delivered again (on every worker subscribe) changes nothing.
    last_seen_at: Mapped[datetime]
