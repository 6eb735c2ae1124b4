"""What the holder company does with its licences, for the JSON API and the company cabinet
alike: move one between its own devices, release one back to the partner's stock, and look
at its key.

The licence book (book.py) keeps the state machine; these functions decide who may ask,
turn the book's refusals into messages people can act on (catalogue msgids), and write the
audit rows. A move concerns the company alone, so only its audit gets a row (the seller's
technician moving a client's licence writes in both); a release hands the licence to the
partner, so both audits get one. None commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.accounts import audit
from cloud_api.accounts.audit import Actor
from cloud_api.licences import book
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.licences.records import LicenceRefused
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.access import licence_scope
from cloud_api.tenancy.models import Grade, Level, Role
from cloud_api.tenancy.tokens import Principal

NO_SUCH_LICENCE = N_("No such licence among your licences.")
READ_ONLY = N_("Your role here is read-only: ask a manager or admin of your organisation.")

# The book's refusals people meet, as (kind, form field or None, message). The codes stay the
# API's error codes; anything not listed keeps the book's own (English) message.
_REFUSALS: dict[str, tuple[str, str | None, str]] = {
    "not_found": ("not_found", "device_id", N_("Choose one of your company's devices.")),
    "licence.device_key_unknown": (
        "conflict",
        "device_id",
        N_(
            "This device has not registered its key yet. Pair it, or enter a licence key on it, "
            "then move the licence again."
        ),
    ),
    "licence.already_there": ("conflict", "device_id", N_("The licence is already on this device.")),
    "licence.move_rate_limited": (
        "conflict",
        None,
        N_("This licence was moved too often in the last hour. Try again later."),
    ),
    "licence.revoked": ("conflict", None, N_("This licence was revoked: it can no longer be moved or released.")),
    "licence.not_bound": (
        "conflict",
        None,
        N_("This licence is not on a device yet. To use it, enter its key on the device that should hold it."),
    ),
    "licence.returning": (
        "conflict",
        None,
        N_("This licence is on its way back to the partner: it can no longer be moved."),
    ),
    "licence.unavailable": (
        "unavailable",
        None,
        N_("The cloud cannot sign licences right now. Try again later, or tell the service's administrator."),
    ),
}


def _refused(exc: LicenceRefused) -> Refused:
    known = _REFUSALS.get(exc.code)
    if known is None:
        return Refused(exc.code, exc.message, kind="not_found" if exc.code == "not_found" else "conflict")
    kind, field, message = known
    return Refused(exc.code, message, field=field, kind=kind)


def _visible(session: Session, p: Principal, licence_id: str) -> Licence:
    licence = session.scalar(select(Licence).where(Licence.id == licence_id, licence_scope(p)))
    if licence is None:
        raise Refused("not_found", NO_SUCH_LICENCE, kind="not_found")
    return licence


def _require(p: Principal, levels: tuple[str, ...], message: str) -> None:
    if Role.level_of(p.role) not in levels:
        raise Refused("forbidden", message, kind="forbidden")
    if not Grade.at_least(Role.grade_of(p.role), Grade.MANAGER):
        raise Refused("forbidden", READ_ONLY, kind="forbidden")


def _held_licence(session: Session, actor: Actor, licence_id: str) -> Licence:
    """A licence of the actor's company, for its managers and admins."""
    p = actor.principal
    licence = _visible(session, p, licence_id)
    _require(p, (Level.COMPANY,), N_("Only the company that holds the licence may do this."))
    return licence


def move_licence(
    session: Session, actor: Actor, licence_id: str, device_id: str, *, now: datetime, policy: LicencePolicy
) -> Licence:
    """Two phases: the device holding the licence is told to release it; the new device gets
    it on the old one's receipt, or once the old lease has run out. The seller's managers may
    move a client's licence too (the technician replacing a till)."""
    p = actor.principal
    licence = _visible(session, p, licence_id)
    _require(
        p,
        (Level.COMPANY, Level.PARTNER),
        N_("Only the company that holds the licence, or the partner that sold it, may move it."),
    )
    before = (licence.state, licence.releasing_to_device_id)
    try:
        moved = book.move(session, licence.id, device_id, by_user=p.user_id, now=now, policy=policy)
    except LicenceRefused as exc:
        raise _refused(exc) from None
    if (moved.state, moved.releasing_to_device_id) == before:
        return moved  # asked again for the same device: nothing changed, nothing to audit
    detail = f"to device {device_id}"
    holder = moved.company_id
    assert holder is not None  # a bound or moving licence always has its company
    audit.record(session, actor, "licence.moved", target=moved.id, detail=detail, org=("company", holder), now=now)
    if actor.org != ("company", holder):
        audit.record(session, actor, "licence.moved", target=moved.id, detail=detail, now=now)
    return moved


def release_licence(
    session: Session, actor: Actor, licence_id: str, *, now: datetime, policy: LicencePolicy
) -> Licence:
    """Back to the partner's stock: a free licence at once, one on a device once the device
    has let go (the same release order as a move)."""
    p = actor.principal
    licence = _held_licence(session, actor, licence_id)
    assert p.company_id is not None
    before = (licence.state, licence.company_id, licence.releasing_to_device_id)
    device = licence.device_id if licence.state in (LicenceState.BOUND, LicenceState.RELEASING) else None
    try:
        released = book.release_to_partner(session, licence.id, p.company_id, by_user=p.user_id, now=now, policy=policy)
    except LicenceRefused as exc:
        raise _refused(exc) from None
    if (released.state, released.company_id, released.releasing_to_device_id) == before:
        return released  # already on its way back
    detail = "free: back in the partner's stock" if device is None else f"device {device} told to release it"
    audit.record(session, actor, "licence.released_to_partner", target=released.id, detail=detail, now=now)
    audit.record(
        session,
        actor,
        "licence.returned_by_company",
        target=released.id,
        detail=f"company {p.company_id}: {detail}",
        org=("partner", released.partner_id),
        now=now,
    )
    return released


def reveal_company_key(session: Session, actor: Actor, licence_id: str, *, now: datetime) -> str:
    """The key of a licence the company holds, for its managers and admins; every look is audited."""
    licence = _held_licence(session, actor, licence_id)
    if licence.state == LicenceState.REVOKED:
        raise Refused("licence.revoked", N_("This licence was revoked: its key is of no use any more."))
    audit.record(session, actor, "licence.key_shown", target=licence.id, now=now)
    return kl.format_licence_key(licence.licence_key)
