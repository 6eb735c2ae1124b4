"""Licence book tables: one row per licence (its state is the truth), and the audit trail.

A licence is sold by the owner to a partner (SEALED), handed to a company or unsealed by the
partner for itself (ASSIGNED), bound to one device at an epoch (BOUND), moving from one device
to another (RELEASING), or REVOKED. Every transition writes one `licence_events` row in the
same transaction, so the trail and the state never disagree.

`company_id` is the holder: None while the licence is the partner's stock. It is set when a
partner assigns the licence or the first device binds unsealed stock, and cleared only when
the holder releases it to the partner (RELEASING with no target device until its device has
let go); moves never change it.

The key is kept (the holder may read it again) next to a SHA-256 of its canonical form: the
unique lookup column devices' bind requests are matched on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import DEVICE_ID, Base, JsonDocument

LICENCE_ID = String(40)


class LicenceState:
    SEALED = "sealed"  # the partner's stock: nobody has seen the key yet
    ASSIGNED = "assigned"  # free: held by a company (or unsealed by the partner), waiting for a device
    BOUND = "bound"  # one device holds the lease at `epoch`
    RELEASING = "releasing"  # the old device was ordered to release; the new one (or the partner's stock) waits
    REVOKED = "revoked"  # withdrawn for good

    ALL = (SEALED, ASSIGNED, BOUND, RELEASING, REVOKED)


class LicenceAction:
    """What `licence_events.action` holds."""

    ISSUED = "issued"
    ASSIGNED = "assigned"
    UNSEALED = "unsealed"
    BOUND = "bound"
    MOVE_REQUESTED = "move_requested"
    MOVE_RETARGETED = "move_retargeted"
    RELEASED = "released"  # the old device's receipt arrived
    RELEASED_BY_TIMEOUT = "released_by_timeout"  # the old device stayed silent past its lease
    RETURN_REQUESTED = "return_requested"  # the holder released a bound (or moving) licence: its device must let go
    RETURNED = "returned"  # the holder released a free licence: it is the partner's unsealed stock again
    REVOKED = "revoked"
    EXPIRED = "expired"  # the licence ran out: the device's document dropped the lease

    MOVES = (MOVE_REQUESTED, MOVE_RETARGETED)  # what the per-hour rate limit counts


class Licence(Base):
    __tablename__ = "licences"

    id: Mapped[str] = mapped_column(LICENCE_ID, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)  # the seller
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)  # the holder
    state: Mapped[str] = mapped_column(String(16))
    licence_key: Mapped[str] = mapped_column(String(32))  # canonical form; never logged
    key_lookup: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of licence_key
    key_revealed_at: Mapped[datetime | None]  # unsealed (partner) or assigned (company)
    entitlements: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    valid_until: Mapped[datetime]
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.device_id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)  # 0 until first bound; +1 on every binding
    lease_token: Mapped[str | None] = mapped_column(Text)  # the bound device's newest lease
    lease_issued_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]  # no token for this epoch outlives it
    releasing_from_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.device_id"))
    releasing_from_epoch: Mapped[int | None] = mapped_column(Integer)
    # None while RELEASING: the licence goes back to the partner's stock, not to a device.
    releasing_to_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.device_id"), index=True)
    release_deadline: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_licences_state_release_deadline", "state", "release_deadline"),
        # A partner's list, sorted by id and paged (the partner cabinet): the big partners' first page
        # is read from the index instead of filtering the whole table.
        Index("ix_licences_partner_id_id", "partner_id", "id"),
    )


class LicenceEvent(Base):
    """One transition of one licence: who, when, from which state and device to which."""

    __tablename__ = "licence_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    licence_id: Mapped[str] = mapped_column(ForeignKey("licences.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))  # "user:<id>", "device:<id>" or "system"
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    from_device_id: Mapped[str | None] = mapped_column(DEVICE_ID)
    to_device_id: Mapped[str | None] = mapped_column(DEVICE_ID)
    epoch: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(500))
    # The company holding the licence after this transition (None: the partner's stock). A
    # company sees only the part of a licence's trail that happened while it held it.
    company_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_licence_events_licence_id_at", "licence_id", "at"),
        Index("ix_licence_events_licence_action_at", "licence_id", "action", "at"),
    )
