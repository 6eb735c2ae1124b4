"""Lease tokens and the `licence` document of each device.

A device's document lists the newest token of every licence BOUND to it that has not run out;
nothing else. The token of the current binding is kept on the licence row, so publishing one
device's document never re-signs its other leases. `lease_expires_at` is the latest expiry of
any token issued for the current binding: a move waits for it (plus a clock margin) when the
old device stays silent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import load_public_key, public_key_fingerprint
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.licences.records import LicenceRefused, from_unix, unix, utc
from cloud_api.pushes.desired_state import set_doc
from cloud_api.signing_keys import SigningKeyError
from cloud_api.tenancy.models import Device


def require_signer(policy: LicencePolicy) -> Ed25519PrivateKey:
    """The lease signing key; transitions call this before changing anything, so a service
    without its key refuses cleanly instead of failing half-way."""
    try:
        return policy.signer.private_key()
    except SigningKeyError as exc:
        raise LicenceRefused("licence.unavailable", f"the cloud cannot sign leases now: {exc}") from None


def issue_lease(session: Session, licence: Licence, device: Device, now: datetime, policy: LicencePolicy) -> bool:
    """Sign a fresh token for the licence's bound `device` and keep it on the row; False when
    the licence itself has run out (no token then: the document drops the lease)."""
    valid_until = utc(licence.valid_until)
    assert valid_until is not None
    if valid_until <= now:
        licence.lease_token = None
        return False
    if device.public_key is None:  # bind registers it; only a row edited by hand lacks it
        raise LicenceRefused("licence.device_key_unknown", f"device {device.device_id} has no registered key")
    issued_at = unix(now)
    expires_at = min(issued_at + policy.lease_s, unix(valid_until))
    claims = kl.LeaseClaims(
        licence_id=licence.id,
        company_id=licence.company_id or device.company_id,
        device_id=device.device_id,
        device_key=public_key_fingerprint(load_public_key(device.public_key)),
        epoch=licence.epoch,
        entitlements=dict(licence.entitlements or {}),
        issued_at=issued_at,
        expires_at=expires_at,
        renew_after_s=policy.renew_after_s,
    )
    private_key = require_signer(policy)
    licence.lease_token = kl.sign_lease(claims, private_key, policy.signer.key_id)
    licence.lease_issued_at = now
    previous = utc(licence.lease_expires_at)
    new_expiry = from_unix(expires_at)
    # Same binding: never lower what a silent device may still hold.
    licence.lease_expires_at = max(previous, new_expiry) if previous is not None else new_expiry
    return True


def lease_is_fresh(licence: Licence, now: datetime, policy: LicencePolicy) -> bool:
    issued = utc(licence.lease_issued_at)
    return (
        licence.lease_token is not None
        and issued is not None
        and now - issued < timedelta(seconds=policy.renew_min_age_s)
    )


def granted_licences(session: Session, device_id: str) -> list[Licence]:
    """Licences BOUND to the device (in id order: documents list leases in a stable order)."""
    return list(
        session.scalars(
            select(Licence)
            .where(Licence.device_id == device_id, Licence.state == LicenceState.BOUND)
            .order_by(Licence.id)
        )
    )


def device_doc(session: Session, device_id: str, now: datetime) -> dict[str, list[str]]:
    session.flush()
    leases = [
        licence.lease_token
        for licence in granted_licences(session, device_id)
        if licence.lease_token is not None and utc(licence.valid_until) > now
    ]
    return kl.LicenceDoc(leases=leases[: kl.MAX_LEASES_PER_DEVICE]).model_dump()


def publish_doc(session: Session, device_id: str, now: datetime) -> int:
    """Make the device's current leases its desired `licence` document (sent after commit)."""
    return set_doc(session, device_id, kc.StateDomain.LICENCE, device_doc(session, device_id, now))
