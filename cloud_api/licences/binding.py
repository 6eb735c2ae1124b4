"""Device-driven transitions: binding a typed key, release receipts, lease reports.

Each function runs inside the caller's transaction and either changes the licence (with its
audit row and the devices' documents) or raises LicenceRefused before changing anything.
Everything is idempotent: devices resend on every reconnect.

Safety: a licence moves to a new device (epoch + 1) only after the old device's signed
receipt for the old epoch, or once every token the old device may hold has run out plus the
clock margin (sweeper.py). A licence in RELEASING is never renewed for anybody.

Ownership: a licence held by a company binds only to that company's devices; the partner's
unsealed stock (no company) binds to the first device of any company and becomes that
company's. The company changes nowhere else but when the holder releases the licence to the
partner's stock (book.release_to_partner): a RELEASING licence without a target device, which
returns to the stock once its device let go, by the same receipt or timeout as a move.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import TokenError
from cloud_api.licences.leases import granted_licences, issue_lease, lease_is_fresh, publish_doc, require_signer
from cloud_api.licences.models import Licence, LicenceAction, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.licences.records import (
    SYSTEM,
    LicenceRefused,
    canonical_key,
    check_move_rate,
    device_actor,
    locked_licence,
    locked_licence_by_key,
    record_event,
    utc,
)
from cloud_api.pushes.commands import create_command
from cloud_api.tenancy.models import Device

log = logging.getLogger(__name__)
MIN_RELEASE_COMMAND_S = 60


@dataclass(frozen=True)
class BindOutcome:
    licence_id: str
    state: str  # BOUND (to the device) or RELEASING (towards it)
    epoch: int
    changed: bool  # False: a repeated request, nothing new happened


def known_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise LicenceRefused("licence.device_unknown", f"device {device_id} is not registered with the cloud")
    return device


def is_returning(licence: Licence) -> bool:
    """RELEASING without a target device: the holder released it to the partner's stock."""
    return licence.state == LicenceState.RELEASING and licence.releasing_to_device_id is None


def refuse_returning(licence: Licence) -> None:
    if is_returning(licence):
        deadline = utc(licence.release_deadline)
        assert deadline is not None
        raise LicenceRefused(
            "licence.returning",
            "the company that held this licence released it to the partner's stock; it can be "
            f"entered again once its terminal has let go (at the latest at {deadline.isoformat()})",
        )


def refuse_other_company(licence: Licence, device: Device) -> None:
    """A licence held by a company binds only to that company's devices (partner stock, with
    no company, binds to anybody's). The message names no company: it is another tenant's."""
    if licence.company_id is not None and licence.company_id != device.company_id:
        raise LicenceRefused(
            "licence.other_company",
            "this licence belongs to another company: ask the company that holds it to release it "
            "to the partner, or ask your partner for a licence of your own",
        )


def bind(
    session: Session, device_id: str, typed_key: str, device_public_key: str, now: datetime, policy: LicencePolicy
) -> BindOutcome:
    """A licence key typed on device `device_id` (an up/licence BindRequest)."""
    key = canonical_key(typed_key)
    require_signer(policy)
    licence = locked_licence_by_key(session, key)
    if licence is None:
        raise LicenceRefused("licence.key_unknown", "no licence has this key; check it with your partner")
    if licence.state == LicenceState.SEALED:
        raise LicenceRefused("licence.not_assigned", "this licence has not been handed out yet; ask your partner")
    if licence.state == LicenceState.REVOKED:
        raise LicenceRefused("licence.revoked", "this licence was revoked; ask your partner")
    if utc(licence.valid_until) <= now:
        raise LicenceRefused("licence.expired", "this licence has run out; ask your partner")
    device = known_device(session, device_id)
    if device.public_key is not None and device.public_key != device_public_key:
        raise LicenceRefused(
            "licence.wrong_device_key", "the request is signed for another key than the one this device registered"
        )
    refuse_returning(licence)
    refuse_other_company(licence, device)
    if licence.state == LicenceState.BOUND and licence.device_id == device_id:
        if not lease_is_fresh(licence, now, policy):
            issue_lease(session, licence, device, now, policy)
        publish_doc(session, device_id, now)  # the device asked again: it may have lost its document
        return BindOutcome(licence.id, licence.state, licence.epoch, False)
    if licence.state == LicenceState.RELEASING and licence.releasing_to_device_id == device_id:
        return BindOutcome(licence.id, licence.state, licence.epoch, False)
    if licence.state in (LicenceState.BOUND, LicenceState.RELEASING):
        check_move_rate(session, licence, now, policy.moves_per_hour)
    if device.public_key is None:
        device.public_key = device_public_key  # first key this device shows: register it
    actor = device_actor(device_id)
    if licence.state == LicenceState.ASSIGNED:
        bind_free(session, licence, device, now, policy, actor)
    else:
        request_move(session, licence, device, now, policy, actor)
    return BindOutcome(licence.id, licence.state, licence.epoch, True)


def bind_free(
    session: Session, licence: Licence, device: Device, now: datetime, policy: LicencePolicy, actor: str
) -> None:
    """ASSIGNED -> BOUND(device, epoch + 1). The licence already is the device's company's, or
    was the partner's unsealed stock: then the first device's company becomes its holder."""
    from_state = licence.state
    licence.state = LicenceState.BOUND
    licence.device_id = device.device_id
    licence.company_id = device.company_id
    licence.epoch += 1
    licence.lease_expires_at = None
    issue_lease(session, licence, device, now, policy)
    record_event(
        session, licence, actor=actor, action=LicenceAction.BOUND, from_state=from_state, from_device_id=None, now=now
    )
    publish_doc(session, device.device_id, now)


def request_move(
    session: Session, licence: Licence, target: Device | None, now: datetime, policy: LicencePolicy, actor: str
) -> None:
    """BOUND(old) -> RELEASING(old -> target), or a RELEASING licence aimed at a new target.
    `target` None: back to the partner's stock (the holder released it) instead of a device.

    The release order to the old device is sent once per move; a new target only changes
    who gets the licence when the old device has let go.
    """
    from_state = licence.state
    target_id = None if target is None else target.device_id
    if licence.state == LicenceState.RELEASING:
        previous_target = licence.releasing_to_device_id
        licence.releasing_to_device_id = target_id
        if target_id is None:
            action, detail = (
                LicenceAction.RETURN_REQUESTED,
                f"move to {previous_target} cancelled; back to the partner's "
                f"stock once {licence.releasing_from_device_id} has let go",
            )
        else:
            action, detail = LicenceAction.MOVE_RETARGETED, f"target changed from {previous_target} to {target_id}"
        record_event(
            session,
            licence,
            actor=actor,
            action=action,
            from_state=from_state,
            from_device_id=licence.releasing_from_device_id,
            now=now,
            detail=detail,
        )
        return
    old_device_id = licence.device_id
    assert old_device_id is not None
    last_expiry = utc(licence.lease_expires_at) or now
    licence.state = LicenceState.RELEASING
    licence.releasing_from_device_id = old_device_id
    licence.releasing_from_epoch = licence.epoch
    licence.releasing_to_device_id = target_id
    licence.release_deadline = max(now, last_expiry) + timedelta(seconds=policy.clock_margin_s)
    create_command(
        session,
        old_device_id,
        kc.CommandName.LICENCE_RELEASE,
        {"licence_id": licence.id, "epoch": licence.epoch},
        expires_in=max(licence.release_deadline - now, timedelta(seconds=MIN_RELEASE_COMMAND_S)),
    )
    destination = "the partner's stock" if target_id is None else target_id
    record_event(
        session,
        licence,
        actor=actor,
        action=LicenceAction.RETURN_REQUESTED if target_id is None else LicenceAction.MOVE_REQUESTED,
        from_state=from_state,
        from_device_id=old_device_id,
        now=now,
        detail=f"release ordered; to {destination} at the latest at {licence.release_deadline.isoformat()}",
    )
    publish_doc(session, old_device_id, now)  # second channel: the document drops the lease too


def grant_to_target(
    session: Session, licence: Licence, now: datetime, policy: LicencePolicy, *, actor: str, action: str, detail: str
) -> None:
    """Once the old device let go: RELEASING(old -> new) -> BOUND(new, epoch + 1), or
    RELEASING(old -> partner) -> ASSIGNED in the partner's unsealed stock (no company: its key
    has been seen, so not sealed again; the next binding is epoch + 1)."""
    old_device_id = licence.releasing_from_device_id
    target_id = licence.releasing_to_device_id
    target = None if target_id is None else session.get(Device, target_id)
    assert old_device_id is not None and (target_id is None or target is not None)
    from_state = licence.state
    licence.releasing_from_device_id = licence.releasing_from_epoch = None
    licence.releasing_to_device_id = licence.release_deadline = None
    licence.lease_expires_at = None
    if target is None:
        licence.state = LicenceState.ASSIGNED
        licence.device_id = None
        licence.company_id = None
        licence.lease_token = None
        detail += "; back in the partner's stock"
    else:  # a device of the holder company (bind and book.move refuse any other)
        licence.state = LicenceState.BOUND
        licence.device_id = target.device_id
        licence.epoch += 1
        issue_lease(session, licence, target, now, policy)
    record_event(
        session,
        licence,
        actor=actor,
        action=action,
        from_state=from_state,
        from_device_id=old_device_id,
        now=now,
        detail=detail,
    )
    if target is not None:
        publish_doc(session, target.device_id, now)
    if target_id != old_device_id:
        publish_doc(session, old_device_id, now)


def accept_release(
    session: Session,
    device_id: str,
    licence_id: str,
    epoch: int,
    receipt: str,
    now: datetime,
    policy: LicencePolicy,
    *,
    actor: str | None = None,
) -> bool:
    """A release receipt of device `device_id` (message, tombstone or uploaded file).

    True when it moved the licence on; False when it changed nothing (already superseded or
    revoked). Raises LicenceRefused for a receipt that is not genuine or names something else.
    """
    require_signer(policy)
    device = known_device(session, device_id)
    licence = locked_licence(session, licence_id)
    if licence is None:
        raise LicenceRefused("licence.unknown", f"no licence {licence_id}")
    if device.public_key is None:
        raise LicenceRefused("licence.receipt_invalid", f"device {device_id} has no registered key to check it with")
    try:
        claims = kl.read_release(receipt, device.public_key)
    except (TokenError, ValueError) as exc:
        raise LicenceRefused(
            "licence.receipt_invalid", f"not a genuine release receipt of {device_id}: {exc}"
        ) from None
    if (claims.licence_id, claims.device_id, claims.epoch) != (licence_id, device_id, epoch):
        raise LicenceRefused("licence.receipt_mismatch", "the signed receipt names another licence, device or epoch")
    actor = actor or device_actor(device_id)
    if (
        licence.state == LicenceState.RELEASING
        and licence.releasing_from_device_id == device_id
        and licence.releasing_from_epoch == epoch
    ):
        grant_to_target(
            session,
            licence,
            now,
            policy,
            actor=actor,
            action=LicenceAction.RELEASED,
            detail=f"release receipt of {device_id} for epoch {epoch}",
        )
        return True
    if licence.state == LicenceState.BOUND and licence.device_id == device_id and licence.epoch == epoch:
        # Released on the device before any move was asked: the licence is free again.
        licence.state = LicenceState.ASSIGNED
        licence.device_id = None
        licence.lease_token = None
        record_event(
            session,
            licence,
            actor=actor,
            action=LicenceAction.RELEASED,
            from_state=LicenceState.BOUND,
            from_device_id=device_id,
            now=now,
            detail=f"released on {device_id} for epoch {epoch}",
        )
        publish_doc(session, device_id, now)
        return True
    if epoch < licence.epoch or licence.state in (LicenceState.REVOKED, LicenceState.ASSIGNED):
        return False  # a resend, or an old binding: nothing left to do
    raise LicenceRefused(
        "licence.receipt_mismatch", f"licence {licence_id} is not held by {device_id} at epoch {epoch}"
    )


def apply_lease_report(
    session: Session, device_id: str, report: kc.LeaseReport, now: datetime, policy: LicencePolicy
) -> None:
    """Tombstones count as receipts; leases the cloud still grants are renewed; the device's
    document is republished when it holds something it no longer may, or lacks a lease."""
    device = session.get(Device, device_id)
    if device is None:
        return  # nothing of the book can concern a device the cloud does not know
    for tombstone in report.tombstones:
        try:
            accept_release(session, device_id, tombstone.licence_id, tombstone.epoch, tombstone.receipt, now, policy)
        except LicenceRefused as exc:  # one bad tombstone does not refuse the whole report
            log.warning(
                "tombstone refused",
                extra={
                    "device_id": device_id,
                    "licence_id": tombstone.licence_id,
                    "reason": exc.code,
                    "detail": exc.message,
                },
            )
    granted = {licence.id: licence for licence in granted_licences(session, device_id)}
    if granted:
        require_signer(policy)
    held = {lease.licence_id: lease.epoch for lease in report.leases}
    changed = set(held) != set(granted)
    for licence_id, licence in granted.items():
        if held.get(licence_id) != licence.epoch:
            changed = True
        if not lease_is_fresh(licence, now, policy):
            changed |= issue_lease(session, licence, device, now, policy) or licence.lease_token is None
    if changed:
        publish_doc(session, device_id, now)


__all__ = [
    "SYSTEM",
    "BindOutcome",
    "accept_release",
    "apply_lease_report",
    "bind",
    "grant_to_target",
    "is_returning",
    "refuse_other_company",
    "refuse_returning",
    "request_move",
]
