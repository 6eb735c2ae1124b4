"""A company's devices, the rules: the list with presence (the JSON API's GET .../devices and the
company cabinet's device pages read the same rows) and moving a device to another point of sale.

A device's presence is its last retained status (device_presence); last seen is the later of
that status's arrival and the device's last up message. Its up messages refused for good are
the rejected rows of the ingest ledger (ingested_messages). Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.orm import Session

from cloud_api.accounts import audit
from cloud_api.accounts.audit import Actor
from cloud_api.api.schemas import DeviceOut, RejectionOut
from cloud_api.ingest.models import DevicePresence, DeviceStream, IngestedMessage, Outcome, SequenceGap
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy import access, points_of_sale
from cloud_api.tenancy.models import Device, PointOfSale

# The WHERE of the partial index ix_ingested_messages_rejected, spelled as the index has it:
# SQLite uses a partial index only for a literal, not for a bound parameter.
REJECTED = IngestedMessage.outcome == literal_column(f"'{Outcome.REJECTED}'")
# Newest first; one batch shares a receipt time, and message ids (UUIDv7) follow creation.
NEWEST_REJECTION = (IngestedMessage.received_at.desc(), IngestedMessage.message_id.desc())
PRESENCES = ("online", "offline", "unknown")


def devices_with_presence(company_id: int) -> Select[Any]:
    """The company's devices with what device_outs needs; callers add filters and the order."""
    open_gaps = (
        select(func.count())
        .select_from(SequenceGap)
        .where(SequenceGap.device_id == Device.device_id, SequenceGap.closed_at.is_(None))
        .correlate(Device)
        .scalar_subquery()
    )
    rejected = (
        select(func.count())
        .select_from(IngestedMessage)
        .where(IngestedMessage.device_id == Device.device_id, REJECTED)
        .correlate(Device)
        .scalar_subquery()
    )
    last_rejected = (
        select(IngestedMessage.message_id)
        .where(IngestedMessage.device_id == Device.device_id, REJECTED)
        .order_by(*NEWEST_REJECTION)
        .limit(1)
        .correlate(Device)
        .scalar_subquery()
    )
    return (
        select(
            Device,
            DevicePresence.state,
            DevicePresence.last_seen_at,
            DeviceStream.last_seen_at,
            DeviceStream.high_water,
            DeviceStream.max_seq,
            open_gaps,
            rejected,
            last_rejected,
        )
        .outerjoin(DevicePresence, DevicePresence.device_id == Device.device_id)
        .outerjoin(DeviceStream, DeviceStream.device_id == Device.device_id)
        .where(Device.company_id == company_id)
    )


def company_devices(
    session: Session,
    company_id: int,
    *,
    point_of_sale_id: int | None = None,
    presence: str | None = None,
    device_id: str | None = None,
) -> list[DeviceOut]:
    """The company's devices by device id, optionally only those at a point of sale, with a
    presence (online, offline, unknown: never reported one) or the one device."""
    query = devices_with_presence(company_id)
    if point_of_sale_id is not None:
        query = query.where(Device.point_of_sale_id == point_of_sale_id)
    if presence == "unknown":
        query = query.where(DevicePresence.state.is_(None))
    elif presence is not None:
        query = query.where(DevicePresence.state == presence)
    if device_id is not None:
        query = query.where(Device.device_id == device_id)
    return device_outs(session, list(session.execute(query.order_by(Device.device_id))))


def device_outs(session: Session, rows: list[Any]) -> list[DeviceOut]:
    latest = [row[-1] for row in rows if row[-1] is not None]
    rejections = (
        {}
        if not latest
        else {
            message.message_id: rejection_out(message)
            for message in session.scalars(select(IngestedMessage).where(IngestedMessage.message_id.in_(latest)))
        }
    )
    return [_device_out(row, rejections.get(row[-1])) for row in rows]


def _device_out(row: Any, last_rejection: RejectionOut | None) -> DeviceOut:
    device, state, status_seen, up_seen, high_water, max_seq, open_gaps, rejected, _ = row
    seen = [moment for moment in (status_seen, up_seen) if moment is not None]
    return DeviceOut(
        device_id=device.device_id,
        company_id=device.company_id,
        point_of_sale_id=device.point_of_sale_id,
        paired=device.public_key is not None,
        created_at=device.created_at,
        presence=state or "unknown",
        last_seen_at=max(seen) if seen else None,
        high_water=high_water or 0,
        max_seq=max_seq or 0,
        open_gaps=open_gaps or 0,
        rejected=rejected or 0,
        last_rejection=last_rejection,
    )


def rejection_out(message: IngestedMessage) -> RejectionOut:
    return RejectionOut(
        message_id=message.message_id,
        seq=message.seq,
        type=message.type,
        reason=message.reject_reason or "rejected",
        detail=message.reject_detail or "",
        received_at=message.received_at,
    )


def move_device(session: Session, actor: Actor, company_id: int, device_id: str, pos_id: int, now: datetime) -> Device:
    """Assign the company's device to another of its points of sale (not an archived one).
    Moving it where it already is changes nothing and records nothing."""
    company = points_of_sale.company_for_change(session, actor, company_id)
    device = access.company_device(session, company, device_id)
    pos = session.scalar(select(PointOfSale).where(PointOfSale.id == pos_id, PointOfSale.company_id == company.id))
    if pos is None:
        raise Refused(
            "unknown_point_of_sale",
            N_("Choose one of the company's points of sale."),
            field="point_of_sale_id",
            kind="invalid",
        )
    if pos.archived_at is not None:
        raise Refused(
            "point_of_sale_archived",
            N_("The point of sale {name} is archived: restore it first, or choose another one."),
            field="point_of_sale_id",
            name=pos.name,
        )
    if device.point_of_sale_id == pos.id:
        return device
    before = device.point_of_sale_id
    device.point_of_sale_id = pos.id
    detail = f"point of sale {before if before is not None else '-'} -> {pos.id} ({pos.code} {pos.name})"
    target = f"device {device.device_id}"
    audit.record(session, actor, "device.moved", target=target, detail=detail, org=("company", company.id), now=now)
    if actor.org != ("company", company.id):
        audit.record(session, actor, "device.moved", target=target, detail=detail, now=now)
    session.flush()
    return device
