"""Shared by the licence modules: refusals, key lookup, row locks, the audit row."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import overload

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.db import locked_row
from cloud_api.licences.models import Licence, LicenceAction, LicenceEvent, LicenceState

SYSTEM = "system"


class LicenceRefused(Exception):
    """A licence operation refused for a business reason: a stable `code` (the ingest's
    rejection reason, the API's error code) and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@overload
def utc(moment: datetime) -> datetime: ...


@overload
def utc(moment: None) -> None: ...


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC): make every one aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def new_licence_id() -> str:
    return "lic_" + secrets.token_hex(10)


def key_lookup(canonical_key: str) -> str:
    return hashlib.sha256(canonical_key.encode("ascii")).hexdigest()


def canonical_key(typed: str) -> str:
    try:
        return kl.normalize_licence_key(typed)
    except kl.LicenceKeyError as exc:
        raise LicenceRefused("licence.key_invalid", str(exc)) from None


def locked_licence(session: Session, licence_id: str) -> Licence | None:
    """The licence row, locked until the transaction ends: read it only through this before
    changing it."""
    return _locked(session, Licence.id == licence_id)


def locked_licence_by_key(session: Session, canonical: str) -> Licence | None:
    return _locked(session, Licence.key_lookup == key_lookup(canonical))


def _locked(session: Session, where: ColumnElement[bool]) -> Licence | None:
    # On SQLite too: a partner's assign and a device's bind of the same licence cannot both act
    # on the state they read.
    return locked_row(session, Licence, where, Licence.updated_at)


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def device_actor(device_id: str) -> str:
    return f"device:{device_id}"


def record_event(
    session: Session,
    licence: Licence,
    *,
    actor: str,
    action: str,
    from_state: str | None,
    from_device_id: str | None,
    now: datetime,
    detail: str | None = None,
) -> LicenceEvent:
    """The audit row of a transition; call after changing `licence` (its new state, device
    and epoch are what the row records as "to"; while releasing, the target: none when the
    licence goes back to the partner's stock)."""
    licence.updated_at = now
    to_device_id = licence.releasing_to_device_id if licence.state == LicenceState.RELEASING else licence.device_id
    event = LicenceEvent(
        licence_id=licence.id,
        at=now,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=licence.state,
        from_device_id=from_device_id,
        to_device_id=to_device_id,
        epoch=licence.epoch,
        detail=(detail or None) and detail[:500],
        company_id=licence.company_id,
    )
    session.add(event)
    return event


def check_move_rate(session: Session, licence: Licence, now: datetime, moves_per_hour: int) -> None:
    """Refuse a move beyond `moves_per_hour` in the last hour. Moves are never limited in
    total: a licence can follow its company's hardware for years."""
    recent = session.scalar(
        select(func.count())
        .select_from(LicenceEvent)
        .where(
            LicenceEvent.licence_id == licence.id,
            LicenceEvent.action.in_(LicenceAction.MOVES),
            LicenceEvent.at > now - timedelta(hours=1),
        )
    )
    if (recent or 0) >= moves_per_hour:
        raise LicenceRefused(
            "licence.move_rate_limited",
            f"licence {licence.id} was moved {recent} times in the last hour (limit {moves_per_hour}); try again later",
        )
