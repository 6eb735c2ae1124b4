"""Tables the ingest keeps: the exactly-once ledger and sequence tracking per device, and what
devices tell about themselves (audit events, command replies, state reports, presence).

Sales, refunds and Z reports are in `cloud_api/reports/models.py`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import DEVICE_ID, Base


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
