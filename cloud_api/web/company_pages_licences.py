"""The company's licences: which device holds which, moving one to another of its devices,
releasing one back to the partner's stock, its trail, and its key on an audited request.

The rules live in cloud_api/licences/company_desk.py (shared with the JSON API); these pages
only show and ask.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import ColumnElement, or_, select
from starlette.responses import Response

from cloud_api.api.licence_schemas import MoveIn
from cloud_api.api.licences import policy_of
from cloud_api.licences import book, company_desk
from cloud_api.licences.models import Licence, LicenceAction, LicenceEvent, LicenceState
from cloud_api.refusals import N_, Refused
from cloud_api.tenancy.models import Device, User
from cloud_api.web.context import CompanyDep, FormDep, Member, PageRefused, now
from cloud_api.web.forms import refusal_errors, translate, validate
from cloud_api.web.listing import page_of
from cloud_api.web.pages import page, redirect

router = APIRouter(include_in_schema=False)
NOT_FOUND = N_("This page does not exist, or it belongs to another organisation.")

# The states as the company thinks of them: RELEASING splits by where the licence goes.
STATE_LABELS = {
    "free": N_("Free"),
    "bound": N_("On a device"),
    "moving": N_("Moving to another device"),
    "returning": N_("Returning to the partner"),
    "revoked": N_("Revoked"),
}
# The stylesheet's badge of each state (the word is always shown with it).
BADGES = {"free": "assigned", "bound": "bound", "moving": "releasing", "returning": "releasing", "revoked": "revoked"}
STATE_HELP = {
    "free": N_("Assigned to the company, not on a device: enter its key on a device to use it."),
    "bound": N_("A device holds it and sells with it."),
    "moving": N_("The old device is told to let go; the new one gets it then."),
    "returning": N_("Its device is told to let go; then it goes back to the partner's stock."),
    "revoked": N_("Withdrawn for good: no device can use it."),
}
STATE_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "free": Licence.state == LicenceState.ASSIGNED,
    "bound": Licence.state == LicenceState.BOUND,
    "moving": (Licence.state == LicenceState.RELEASING) & Licence.releasing_to_device_id.is_not(None),
    "returning": (Licence.state == LicenceState.RELEASING) & Licence.releasing_to_device_id.is_(None),
    "revoked": Licence.state == LicenceState.REVOKED,
}
ACTION_LABELS = {
    LicenceAction.ASSIGNED: N_("Given to the company by the partner"),
    LicenceAction.BOUND: N_("Taken by a device"),
    LicenceAction.MOVE_REQUESTED: N_("Move asked: the old device is told to let go"),
    LicenceAction.MOVE_RETARGETED: N_("Move redirected to another device"),
    LicenceAction.RELEASED: N_("Let go by the old device"),
    LicenceAction.RELEASED_BY_TIMEOUT: N_("Let go when the old device's lease ran out"),
    LicenceAction.RETURN_REQUESTED: N_("Release to the partner asked: the device is told to let go"),
    LicenceAction.RETURNED: N_("Released to the partner"),
    LicenceAction.REVOKED: N_("Revoked"),
    LicenceAction.EXPIRED: N_("Expired"),
}


def company_state(licence: Licence) -> str:
    if licence.state == LicenceState.ASSIGNED:
        return "free"
    if licence.state == LicenceState.RELEASING:
        return "moving" if licence.releasing_to_device_id is not None else "returning"
    return licence.state


def _company_id(m: Member) -> int:
    company_id = m.principal.company_id
    assert company_id is not None
    return company_id


def _own(m: Member, licence_id: str) -> Licence:
    licence = m.db.scalar(
        select(Licence).where(Licence.id == licence_id[:40], Licence.company_id == _company_id(m)),
    )
    if licence is None:
        raise PageRefused(404, NOT_FOUND)
    return licence


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ------------------------------------------------------------------------------ the list
@router.get("/company/licences")
def licences_page(m: CompanyDep, state: str = "", q: str = "") -> Response:
    held = select(Licence).where(Licence.company_id == _company_id(m))
    query = held
    if state in STATE_CONDITIONS:
        query = query.where(STATE_CONDITIONS[state])
    q = q.strip()[:100]
    if q:
        query = query.where(
            or_(Licence.id.ilike(_like(q), escape="\\"), Licence.device_id.ilike(_like(q), escape="\\"))
        )
    listing = page_of(
        m.db,
        m.request,
        query,
        sorts={"id": Licence.id, "state": Licence.state, "valid_until": Licence.valid_until},
        default_sort="id",
        lang=m.lang,
        keep=("q", "state"),
    )
    return page(
        m,
        "company/licences.html",
        m.lang.gettext("Licences"),
        listing=listing,
        any_held=m.db.scalar(held.with_only_columns(Licence.id).limit(1)) is not None,
        state=state if state in STATE_CONDITIONS else "",
        q=q,
        state_labels=STATE_LABELS,
        badges=BADGES,
        company_state=company_state,
        lease_expiry=book.lease_expiry,
    )


# ------------------------------------------------------------------------------ one licence
def _who(m: Member, event: LicenceEvent, names: dict[int, str]) -> str:
    kind, _sep, ident = event.actor.partition(":")
    if kind == "device":
        return m.lang.gettext("device {device}").format(device=ident)
    if kind == "user" and ident.isdigit():
        return names.get(int(ident)) or m.lang.gettext("the partner")
    return m.lang.gettext("the cloud")


def _trail(m: Member, licence: Licence) -> list[dict[str, Any]]:
    """What happened while the company held the licence, newest first, in words."""
    events = book.licence_events(m.db, licence.id, company_id=_company_id(m))
    user_ids = {int(e.actor[5:]) for e in events if e.actor.startswith("user:") and e.actor[5:].isdigit()}
    # Only the company's own people are named; the partner's stay "the partner".
    names = dict(
        m.db.execute(select(User.id, User.name).where(User.id.in_(user_ids), User.company_id == _company_id(m))).all()
    )
    return [
        {
            "at": event.at,
            "what": m.lang.gettext(ACTION_LABELS.get(event.action, event.action)),
            "who": _who(m, event, names),
            "from_device": event.from_device_id,
            "to_device": event.to_device_id,
            "epoch": event.epoch,
        }
        for event in reversed(events)
    ]


def _licence_page(
    m: Member, licence: Licence, *, key: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    state = company_state(licence)
    return page(
        m,
        "company/licence.html",
        m.lang.gettext("Licence {id}").format(id=licence.id),
        status=status,
        licence=licence,
        state=state,
        state_labels=STATE_LABELS,
        badges=BADGES,
        state_help=STATE_HELP,
        lease_expires=book.lease_expiry(licence),
        trail=_trail(m, licence),
        key=key,
        error=error,
        may_move=state in ("bound", "moving"),
        may_release=state in ("free", "bound", "moving"),
    )


@router.get("/company/licences/{licence_id}")
def licence_page(m: CompanyDep, licence_id: str) -> Response:
    return _licence_page(m, _own(m, licence_id))


@router.post("/company/licences/{licence_id}/key")
def show_key(m: CompanyDep, form: FormDep, licence_id: str) -> Response:
    """The key on this answer page only (never in a GET page), with an audit row each time."""
    m.require_write()
    licence = _own(m, licence_id)
    try:
        key = company_desk.reveal_company_key(m.db, m.actor, licence.id, now=now())
    except Refused as refused:
        m.db.rollback()
        return _licence_page(m, licence, error=translate(refused, m.lang), status=refused.status)
    m.db.commit()
    return _licence_page(m, licence, key=key)


# ------------------------------------------------------------------------------ move
def _move_page(
    m: Member, licence: Licence, *, status: int = 200, errors: dict[str, str] | None = None, chosen: str = ""
) -> Response:
    devices = m.db.scalars(
        select(Device.device_id)
        .where(
            Device.company_id == _company_id(m),
            Device.public_key.is_not(None),
            Device.device_id != (licence.device_id or ""),
        )
        .order_by(Device.device_id)
    )
    choices = [(device_id, device_id) for device_id in devices]
    errors = errors or {}
    if errors and (not choices or company_state(licence) not in ("bound", "moving")):
        errors = {"__all__": " ".join(errors.values())}  # no form to show them next to
    return page(
        m,
        "company/licence_move.html",
        m.lang.gettext("Move licence {id}").format(id=licence.id),
        status=status,
        licence=licence,
        state=company_state(licence),
        state_labels=STATE_LABELS,
        choices=choices,
        errors=errors,
        chosen=chosen,
    )


@router.get("/company/licences/{licence_id}/move")
def move_page(m: CompanyDep, licence_id: str) -> Response:
    m.require_write()
    return _move_page(m, _own(m, licence_id))


@router.post("/company/licences/{licence_id}/move")
def move(m: CompanyDep, form: FormDep, licence_id: str) -> Response:
    m.require_write()
    _ = m.lang.gettext
    licence = _own(m, licence_id)
    chosen = form.get("device_id", "")[:64]
    data, _invalid = validate(MoveIn, {"device_id": chosen}, m.lang)
    if data is None:
        problem = _("Choose a device.") if not chosen else _("Choose one of your company's devices.")
        return _move_page(m, licence, status=422, errors={"device_id": problem}, chosen=chosen)
    try:
        company_desk.move_licence(m.db, m.actor, licence.id, data.device_id, now=now(), policy=policy_of(m.request))
    except Refused as refused:
        m.db.rollback()
        return _move_page(m, licence, status=refused.status, errors=refusal_errors(refused, m.lang), chosen=chosen)
    m.db.commit()
    notice = _(
        "Device {old} is told to let go of the licence. {new} gets it when {old} confirms, "
        "or at the latest when its lease runs out."
    ).format(old=licence.releasing_from_device_id, new=data.device_id)
    return redirect(f"/company/licences/{licence.id}", m, notice=notice)


# ------------------------------------------------------------------------------ release
@router.get("/company/licences/{licence_id}/release")
def release_page(m: CompanyDep, licence_id: str) -> Response:
    m.require_write()
    licence = _own(m, licence_id)
    state = company_state(licence)
    return page(
        m,
        "company/licence_release.html",
        m.lang.gettext("Release licence {id}").format(id=licence.id),
        licence=licence,
        state=state,
        state_labels=STATE_LABELS,
        device=licence.device_id if state in ("bound", "moving") else None,
    )


@router.post("/company/licences/{licence_id}/release")
def release(m: CompanyDep, form: FormDep, licence_id: str) -> Response:
    m.require_write()
    _ = m.lang.gettext
    licence = _own(m, licence_id)
    try:
        released = company_desk.release_licence(m.db, m.actor, licence.id, now=now(), policy=policy_of(m.request))
    except Refused as refused:
        m.db.rollback()
        return _licence_page(m, licence, error=translate(refused, m.lang), status=refused.status)
    m.db.commit()
    if released.company_id is None:
        notice = _("Licence {id} is back in the partner's stock.").format(id=released.id)
        return redirect("/company/licences", m, notice=notice)
    notice = _(
        "Device {device} is told to let go of licence {id}. It stops selling with it then, "
        "and the licence goes back to the partner's stock."
    ).format(device=released.releasing_from_device_id, id=released.id)
    return redirect(f"/company/licences/{released.id}", m, notice=notice)
