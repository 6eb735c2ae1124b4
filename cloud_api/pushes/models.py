"""Tables of the pushes: desired state per device and domain, device commands, the
publisher lease. They share `cloud_api.db.Base` (one metadata for Alembic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import DEVICE_ID, Base

DOMAIN = String(16)  # cashiers, config, licence (kc.StateDomain)


class DesiredState(Base):
    """The document a device should hold for one domain.

    `version` only grows: every change is `version = version + 1` in the database (row lock
    on PostgreSQL, the write lock on SQLite), so concurrent writers never share a version.
    Rows are never deleted, so a version is never used twice. `publish_pending` is true
    while `version` has not been PUBACKed by the broker; the publisher clears it.
    """

    __tablename__ = "desired_state"

    device_id: Mapped[str] = mapped_column(DEVICE_ID, ForeignKey("devices.device_id"), primary_key=True)
    domain: Mapped[str] = mapped_column(DOMAIN, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    doc: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_version: Mapped[int] = mapped_column(BigInteger)
    published_at: Mapped[datetime | None]
    publish_pending: Mapped[bool] = mapped_column(index=True)

    __table_args__ = (
        CheckConstraint(
            "version >= 1 AND published_version >= 0 AND published_version <= version", name="ck_desired_state_versions"
        ),
    )


class DeviceCommand(Base):
    """A command for one device. `command_id` is the envelope id of every (re)send and the
    correlation id of the device's reply (`command_replies.correlation_id`).

    `open` while the publisher may still send it: it closes when the reply is recorded, the
    command expires, or the attempts are used up.
    """

    __tablename__ = "device_commands"

    command_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID, ForeignKey("devices.device_id"))
    name: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer)  # sends the broker PUBACKed
    last_sent_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime]
    open: Mapped[bool]
    closed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_device_commands_device_created", "device_id", "created_at"),
        Index("ix_device_commands_open_due", "open", "next_attempt_at"),
    )


class PublisherLease(Base):
    """Which publisher may publish now (`holder`), until `expires_at` unless renewed."""

    __tablename__ = "publisher_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
