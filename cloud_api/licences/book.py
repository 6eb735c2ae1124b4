"""What people do with licences (through the admin API): issue, assign, unseal, move, revoke,
and the holder company's release back to the partner's stock.

The API checks who may see and change a licence (api/licences.py); these functions check
that the change fits the licence's state, write it with its audit row, and raise
LicenceRefused otherwise. None of them commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.licences import binding
from cloud_api.licences.leases import publish_doc, require_signer
from cloud_api.licences.models import Licence, LicenceAction, LicenceEvent, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.licences.records import (
    LicenceRefused,
    check_move_rate,
    key_lookup,
    locked_licence,
    new_licence_id,
    record_event,
    user_actor,
    utc,
)
from cloud_api.tenancy.models import Device, LinkState, Partner, PartnerLink

MAX_ISSUE = 1000


def issue_licences(
    session: Session,
    partner: Partner,
    count: int,
    entitlements: dict[str, Any],
    valid_until: datetime,
    *,
    by_user: int,
    now: datetime,
) -> list[Licence]:
    """`count` new SEALED licences sold to `partner`."""
    if not 1 <= count <= MAX_ISSUE:
        raise LicenceRefused("licence.invalid_count", f"issue between 1 and {MAX_ISSUE} licences at a time")
    if valid_until <= now:
        raise LicenceRefused("licence.invalid_expiry", "valid_until must be in the future")
    issued = []
    for _ in range(count):
        key = kl.new_licence_key()
        licence = Licence(
            id=new_licence_id(),
            owner_id=partner.owner_id,
            partner_id=partner.id,
            company_id=None,
            state=LicenceState.SEALED,
            licence_key=key,
            key_lookup=key_lookup(key),
            key_revealed_at=None,
            entitlements=dict(entitlements),
            valid_until=valid_until,
            device_id=None,
            epoch=0,
            created_at=now,
            updated_at=now,
        )
        session.add(licence)
        record_event(
            session,
            licence,
            actor=user_actor(by_user),
            action=LicenceAction.ISSUED,
            from_state=None,
            from_device_id=None,
            now=now,
            detail=f"sold to partner {partner.id}",
        )
        issued.append(licence)
    session.flush()
    return issued


def _locked(session: Session, licence_id: str) -> Licence:
    licence = locked_licence(session, licence_id)
    if licence is None:
        raise LicenceRefused("not_found", f"licence {licence_id} not found")
    return licence


def _is_partner_stock(licence: Licence) -> bool:
    return licence.state == LicenceState.SEALED or (
        licence.state == LicenceState.ASSIGNED and licence.company_id is None
    )


def assign(session: Session, licence_id: str, company_id: int, *, by_user: int, now: datetime) -> Licence:
    """The seller hands a licence of its stock to a company it has an active link with."""
    licence = _locked(session, licence_id)
    if not _is_partner_stock(licence):
        raise LicenceRefused(
            "licence.not_in_stock",
            f"licence {licence_id} is {licence.state} with a company; "
            "only sealed or unsealed licences of the partner's stock can be assigned",
        )
    linked = session.scalar(
        select(PartnerLink.id).where(
            PartnerLink.partner_id == licence.partner_id,
            PartnerLink.company_id == company_id,
            PartnerLink.state == LinkState.ACTIVE,
        )
    )
    if linked is None:
        raise LicenceRefused("licence.company_not_linked", f"company {company_id} has no active link with the partner")
    from_state = licence.state
    licence.state = LicenceState.ASSIGNED
    licence.company_id = company_id
    licence.key_revealed_at = licence.key_revealed_at or now
    record_event(
        session,
        licence,
        actor=user_actor(by_user),
        action=LicenceAction.ASSIGNED,
        from_state=from_state,
        from_device_id=None,
        now=now,
        detail=f"assigned to company {company_id}",
    )
    return licence


def unseal(session: Session, licence_id: str, *, by_user: int, now: datetime) -> Licence:
    """The seller opens a sealed licence for itself: the key is shown, any device may bind it.
    Unsealing an unsealed licence again just shows the key."""
    licence = _locked(session, licence_id)
    if licence.state == LicenceState.ASSIGNED and licence.company_id is None:
        return licence
    if licence.state != LicenceState.SEALED:
        raise LicenceRefused("licence.not_sealed", f"licence {licence_id} is {licence.state}, not sealed")
    licence.state = LicenceState.ASSIGNED
    licence.key_revealed_at = now
    record_event(
        session,
        licence,
        actor=user_actor(by_user),
        action=LicenceAction.UNSEALED,
        from_state=LicenceState.SEALED,
        from_device_id=None,
        now=now,
        detail="key revealed to the partner",
    )
    return licence


def move(
    session: Session, licence_id: str, device_id: str, *, by_user: int, now: datetime, policy: LicencePolicy
) -> Licence:
    """Move a bound licence to another device of its company: the same release flow as a key
    typed on that device."""
    require_signer(policy)
    licence = _locked(session, licence_id)
    if licence.state not in (LicenceState.BOUND, LicenceState.RELEASING):
        raise LicenceRefused(
            "licence.not_bound",
            f"licence {licence_id} is {licence.state}; only a bound licence moves "
            "(a free one is bound by entering its key on the device)",
        )
    binding.refuse_returning(licence)
    target = session.get(Device, device_id)
    if target is None or target.company_id != licence.company_id:
        raise LicenceRefused("not_found", f"device {device_id} not found")
    if licence.state == LicenceState.BOUND and licence.device_id == device_id:
        raise LicenceRefused("licence.already_there", f"licence {licence_id} is already bound to {device_id}")
    if licence.state == LicenceState.RELEASING and licence.releasing_to_device_id == device_id:
        return licence
    if target.public_key is None:
        raise LicenceRefused(
            "licence.device_key_unknown",
            f"device {device_id} has not registered its key yet "
            "(it does when it is paired or a licence key is entered on it)",
        )
    check_move_rate(session, licence, now, policy.moves_per_hour)
    binding.request_move(session, licence, target, now, policy, user_actor(by_user))
    return licence


def release_to_partner(
    session: Session, licence_id: str, company_id: int, *, by_user: int, now: datetime, policy: LicencePolicy
) -> Licence:
    """The holder company gives a licence back to its partner's stock, the only way a
    company's licence reaches another company. Its key has been seen: it returns unsealed,
    and the first device of any company that enters it binds it.

    A free licence returns at once. A bound one goes the way of a move, towards the stock
    instead of a device: its device is ordered to release and the licence returns on its
    receipt or once its last lease has expired plus the clock margin. A licence that is
    moving is sent to the stock instead of the new device (which never got a lease). Asking
    again while it returns changes nothing.
    """
    licence = _locked(session, licence_id)
    if licence.company_id != company_id:
        raise LicenceRefused("not_found", f"licence {licence_id} not found")
    if licence.state == LicenceState.REVOKED:
        raise LicenceRefused("licence.revoked", f"licence {licence_id} was revoked; there is nothing to release")
    if licence.state == LicenceState.ASSIGNED:
        licence.company_id = None
        record_event(
            session,
            licence,
            actor=user_actor(by_user),
            action=LicenceAction.RETURNED,
            from_state=LicenceState.ASSIGNED,
            from_device_id=None,
            now=now,
            detail=f"company {company_id} released it to the partner's stock",
        )
        return licence
    if binding.is_returning(licence):
        return licence
    binding.request_move(session, licence, None, now, policy, user_actor(by_user))
    return licence


def revoke(session: Session, licence_id: str, *, by_user: int, now: datetime, reason: str | None = None) -> Licence:
    """Withdraw a licence for good; its device's document drops the lease at once."""
    licence = _locked(session, licence_id)
    if licence.state == LicenceState.REVOKED:
        return licence
    from_state = licence.state
    holder = licence.device_id
    licence.state = LicenceState.REVOKED
    licence.lease_token = None
    licence.releasing_from_device_id = licence.releasing_from_epoch = None
    licence.releasing_to_device_id = licence.release_deadline = None
    record_event(
        session,
        licence,
        actor=user_actor(by_user),
        action=LicenceAction.REVOKED,
        from_state=from_state,
        from_device_id=holder,
        now=now,
        detail=reason or "revoked",
    )
    if holder is not None:
        publish_doc(session, holder, now)
    return licence


def licence_events(session: Session, licence_id: str, *, company_id: int | None = None) -> list[LicenceEvent]:
    """The licence's trail, oldest first; with `company_id`, only what happened while that
    company held it (a company never sees another company's devices or its own predecessor)."""
    query = select(LicenceEvent).where(LicenceEvent.licence_id == licence_id)
    if company_id is not None:
        query = query.where(LicenceEvent.company_id == company_id)
    return list(session.scalars(query.order_by(LicenceEvent.at, LicenceEvent.id)))


def lease_expiry(licence: Licence) -> datetime | None:
    """The newest lease's expiry: the bound device's, or while releasing the old device's
    (the grant waits for it when that device stays silent)."""
    return utc(licence.lease_expires_at) if licence.state in (LicenceState.BOUND, LicenceState.RELEASING) else None
