"""Cashier rules: create, change, delete, PINs, allowed devices, details.

Every change runs in one transaction that first takes the company's roster lock
(`roster.lock_company`), changes the tables, and gives every affected device (those that
listed the cashier before or list it now) whose roster changed a new roster version
(`roster.publish_rosters`); the push publisher sends them after the commit. Each function commits; on any error it
rolls back and raises an ApiError (409 with a precise code for taken codes).

Operator codes (cloud_api/cashiers/codes.py): a code belongs to the first cashier that uses
it, for ever. That cashier may use it in its own `operator_code` and in any number of its
details sets; a details set that names no code carries the cashier's own (NULL in the table,
so it follows a change of the cashier's code). Changing or removing a code burns nothing:
the old code stays the cashier's.

PINs: these functions take the PIN's hash, never the PIN. Hash it with
`broker.contract.roster.hash_pin` before calling (about 130 ms: never inside the
transaction, where it would hold the company's lock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.contract.roster import CashierRole, PinHashError, verify_pin
from cloud_api.api.errors import ApiError
from cloud_api.cashiers import codes
from cloud_api.cashiers.models import SESSION_LABEL_LENGTH, Cashier, CashierDetailsSet, CashierDevice
from cloud_api.cashiers.roster import cashier_devices, lock_company, publish_rosters
from cloud_api.db import rows_matched
from cloud_api.tenancy.models import Device, PointOfSale

ALL_DEVICES: Literal["all"] = "all"
DeviceChoice = Sequence[str] | Literal["all"]
MAX_DETAILS = 50  # RosterCashier's limit
MAX_SESSION_LABEL = SESSION_LABEL_LENGTH  # kc.SessionLabel
ROLE_ORDER = list(CashierRole)


@dataclass(frozen=True)
class NewCashier:
    name: str
    operator_code: str
    code: str | None = None  # None: the next free "C-0001"-style code
    roles: Sequence[str] = (CashierRole.CASHIER.value,)
    enabled: bool = True
    devices: DeviceChoice = ()  # device ids of the company, or "all" (also devices added later)
    pin_hash: str | None = None


@dataclass(frozen=True)
class CashierChanges:
    """Fields left None stay as they are."""

    name: str | None = None
    operator_code: str | None = None
    roles: Sequence[str] | None = None
    enabled: bool | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- reading
def get_cashier(session: Session, company_id: int, cashier_id: int, *, fresh: bool = False) -> Cashier:
    """A non-deleted cashier of the company, else 404 `cashier.not_found`."""
    query = select(Cashier).where(
        Cashier.id == cashier_id, Cashier.company_id == company_id, Cashier.deleted_at.is_(None)
    )
    cashier = session.scalar(query.execution_options(populate_existing=fresh))
    if cashier is None:
        raise ApiError(404, "cashier.not_found", f"cashier {cashier_id} not found")
    return cashier


def list_cashiers(session: Session, company_id: int) -> list[Cashier]:
    return list(
        session.scalars(
            select(Cashier).where(Cashier.company_id == company_id, Cashier.deleted_at.is_(None)).order_by(Cashier.code)
        )
    )


def chosen_devices(session: Session, cashier: Cashier) -> list[str] | Literal["all"]:
    if cashier.all_devices:
        return ALL_DEVICES
    return list(
        session.scalars(
            select(CashierDevice.device_id)
            .where(CashierDevice.cashier_id == cashier.id)
            .order_by(CashierDevice.device_id)
        )
    )


def details_of(session: Session, cashier: Cashier) -> list[tuple[CashierDetailsSet, str]]:
    """The cashier's details sets with their point of sale's code, by code."""
    rows = session.execute(
        select(CashierDetailsSet, PointOfSale.code)
        .join(PointOfSale, PointOfSale.id == CashierDetailsSet.point_of_sale_id)
        .where(CashierDetailsSet.cashier_id == cashier.id)
        .order_by(PointOfSale.code)
    )
    return [(details, code) for details, code in rows]


# --------------------------------------------------------------------------- checks
def normalise_roles(roles: Sequence[str]) -> list[str]:
    try:
        chosen = {CashierRole(role) for role in roles}
    except ValueError:
        raise ApiError(422, "cashier.roles", f"roles are some of: {', '.join(r.value for r in ROLE_ORDER)}") from None
    if not chosen:
        raise ApiError(422, "cashier.roles", "a cashier needs at least one role")
    return [role.value for role in ROLE_ORDER if role in chosen]


def _plain_text(value: object, max_length: int) -> str | None:
    """`value` trimmed if it is text of at most `max_length` characters without control
    characters that a database can store; "" when blank, None when not acceptable."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > max_length or any(ord(ch) < 32 or ord(ch) == 127 for ch in value) or not codes.encodable(value):
        return None
    return value


def check_name(name: str) -> str:
    checked = _plain_text(name, 200)
    if not checked:
        raise ApiError(422, "cashier.name", "a name is 1 to 200 characters without control characters")
    return checked


def check_session_label(label: str | None) -> str | None:
    """The label trimmed; None when absent or blank (a details set without a label)."""
    if label is None:
        return None
    checked = _plain_text(label, MAX_SESSION_LABEL)
    if checked is None:
        raise ApiError(
            422,
            "cashier.session_label_format",
            f"a session label is up to {MAX_SESSION_LABEL} characters without control characters, "
            'e.g. "SU direct" or "Counter 3"',
        )
    return checked or None


def check_pin_hash(pin_hash: str) -> str:
    try:
        verify_pin("0000", pin_hash)  # only the shape and parameters matter here
    except PinHashError as exc:
        raise ApiError(422, "cashier.pin_hash", f"not a usable PIN hash: {exc}") from None
    return pin_hash


def _company_device_set(session: Session, company_id: int, devices: Sequence[str]) -> set[str]:
    wanted = set(devices)
    found = (
        set(
            session.scalars(
                select(Device.device_id).where(Device.company_id == company_id, Device.device_id.in_(wanted))
            )
        )
        if wanted
        else set()
    )
    missing = sorted(wanted - found)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ApiError(422, "cashier.unknown_device", f"not devices of this company: {shown}")
    return found


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _writing(session: Session, company_id: int, cashier_code: str | None = None) -> Iterator[None]:
    """One locked transaction; a refused unique key becomes the precise 409 (operator codes
    are refused earlier, by `codes.take_operator_code`)."""
    try:
        lock_company(session, company_id)
        yield
        session.commit()
    except IntegrityError:
        session.rollback()
        raise codes.explain_conflict(session, company_id, cashier_code) from None
    except BaseException:
        session.rollback()
        raise


def _publish(session: Session, cashier: Cashier, before: set[str], by_user: int | None) -> None:
    session.flush()
    affected = before | cashier_devices(session, cashier)
    if affected:
        publish_rosters(session, cashier.company_id, affected, by_user=by_user)


def _next_code(session: Session, company_id: int) -> str:
    number = (
        session.execute(select(func.count()).select_from(Cashier).where(Cashier.company_id == company_id)).scalar_one()
        + 1
    )
    while (
        session.scalar(select(Cashier.id).where(Cashier.company_id == company_id, Cashier.code == f"C-{number:04d}"))
        is not None
    ):
        number += 1
    return f"C-{number:04d}"


def create_cashier(session: Session, company_id: int, new: NewCashier, *, by_user: int | None = None) -> Cashier:
    name, roles = check_name(new.name), normalise_roles(new.roles)
    operator_code = codes.check_operator_code(new.operator_code)
    code = codes.check_code(new.code) if new.code is not None else None
    pin_hash = check_pin_hash(new.pin_hash) if new.pin_hash is not None else None
    now = utcnow()
    with _writing(session, company_id, code):
        chosen = set() if new.devices == ALL_DEVICES else _company_device_set(session, company_id, new.devices)
        cashier = Cashier(
            company_id=company_id,
            code=code or _next_code(session, company_id),
            name=name,
            operator_code=operator_code,
            pin_hash=pin_hash,
            pin_set_at=now if pin_hash else None,
            roles=roles,
            enabled=new.enabled,
            all_devices=new.devices == ALL_DEVICES,
            deleted_at=None,
            created_at=now,
            updated_at=now,
        )
        session.add(cashier)
        session.flush()  # the cashier code's unique key, and the id the rows below need
        codes.take_operator_code(session, company_id, operator_code, cashier.id)
        session.add_all(CashierDevice(cashier_id=cashier.id, device_id=device_id) for device_id in sorted(chosen))
        _publish(session, cashier, set(), by_user)
    return cashier


def update_cashier(
    session: Session, company_id: int, cashier_id: int, changes: CashierChanges, *, by_user: int | None = None
) -> Cashier:
    name = check_name(changes.name) if changes.name is not None else None
    roles = normalise_roles(changes.roles) if changes.roles is not None else None
    operator_code = codes.check_operator_code(changes.operator_code) if changes.operator_code is not None else None
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        before = cashier_devices(session, cashier)
        if operator_code is not None and operator_code != cashier.operator_code:
            # a new code, or one the cashier had before; the old one stays the cashier's
            codes.take_operator_code(session, company_id, operator_code, cashier.id)
            cashier.operator_code = operator_code
        if name is not None:
            cashier.name = name
        if roles is not None:
            cashier.roles = roles
        if changes.enabled is not None:
            cashier.enabled = changes.enabled
        cashier.updated_at = utcnow()
        _publish(session, cashier, before, by_user)
    return cashier


def delete_cashier(session: Session, company_id: int, cashier_id: int, *, by_user: int | None = None) -> None:
    """Mark deleted: it leaves every roster; its cashier and operator codes stay taken for ever."""
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        before = cashier_devices(session, cashier)
        cashier.deleted_at = cashier.updated_at = utcnow()
        _publish(session, cashier, before, by_user)


def set_pin_hash(
    session: Session, company_id: int, cashier_id: int, pin_hash: str | None, *, by_user: int | None = None
) -> Cashier:
    """Set (or with None clear) the cashier's PIN, given as its hash (`hash_pin(pin)`)."""
    if pin_hash is not None:
        check_pin_hash(pin_hash)
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        before = cashier_devices(session, cashier)
        cashier.pin_hash = pin_hash
        cashier.pin_set_at = cashier.updated_at = utcnow()
        _publish(session, cashier, before, by_user)
    return cashier


def set_devices(
    session: Session, company_id: int, cashier_id: int, devices: DeviceChoice, *, by_user: int | None = None
) -> Cashier:
    """Allow the cashier on exactly `devices` (device ids of the company) or on "all"."""
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        before = cashier_devices(session, cashier)
        chosen = set() if devices == ALL_DEVICES else _company_device_set(session, company_id, devices)
        session.execute(delete(CashierDevice).where(CashierDevice.cashier_id == cashier.id))
        session.add_all(CashierDevice(cashier_id=cashier.id, device_id=device_id) for device_id in sorted(chosen))
        cashier.all_devices = devices == ALL_DEVICES
        cashier.updated_at = utcnow()
        _publish(session, cashier, before, by_user)
    return cashier


def put_details(
    session: Session,
    company_id: int,
    cashier_id: int,
    point_of_sale_id: int,
    terminal_id: str,
    operator_code: str | None = None,
    *,
    session_label: str | None = None,
    by_user: int | None = None,
) -> Cashier:
    """Set (or replace) the cashier's details for a point of sale (one set per point of sale).

    `operator_code` None: the set carries the cashier's own operator code; else a new code or
    one that is already the cashier's. A replaced set's code stays the cashier's."""
    codes.check_code(terminal_id, "terminal id", "cashier.terminal_id_format")
    if operator_code is not None:
        codes.check_operator_code(operator_code)
    label = check_session_label(session_label)
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        pos = session.scalar(
            select(PointOfSale).where(PointOfSale.id == point_of_sale_id, PointOfSale.company_id == company_id)
        )
        if pos is None:
            raise ApiError(404, "not_found", f"point of sale {point_of_sale_id} not found")
        existing = session.get(CashierDetailsSet, (cashier.id, pos.id), populate_existing=True)
        if existing is None:
            count = session.execute(
                select(func.count()).select_from(CashierDetailsSet).where(CashierDetailsSet.cashier_id == cashier.id)
            ).scalar_one()
            if count >= MAX_DETAILS:
                raise ApiError(409, "cashier.too_many_details", f"a cashier has at most {MAX_DETAILS} details sets")
        if operator_code is not None:
            codes.take_operator_code(session, company_id, operator_code, cashier.id, pos.id)
        if existing is None:
            session.add(
                CashierDetailsSet(
                    cashier_id=cashier.id,
                    point_of_sale_id=pos.id,
                    terminal_id=terminal_id,
                    operator_code=operator_code,
                    session_label=label,
                )
            )
        else:
            existing.terminal_id, existing.operator_code, existing.session_label = terminal_id, operator_code, label
        cashier.updated_at = utcnow()
        _publish(session, cashier, set(), by_user)
    return cashier


def remove_details(
    session: Session, company_id: int, cashier_id: int, point_of_sale_id: int, *, by_user: int | None = None
) -> None:
    """Remove the details set; its operator code stays the cashier's (usable by it again, by no one else)."""
    with _writing(session, company_id):
        cashier = get_cashier(session, company_id, cashier_id, fresh=True)
        removed = rows_matched(
            session,
            delete(CashierDetailsSet).where(
                CashierDetailsSet.cashier_id == cashier.id, CashierDetailsSet.point_of_sale_id == point_of_sale_id
            ),
        )
        if removed != 1:
            raise ApiError(
                404,
                "cashier.details_not_found",
                f"cashier {cashier_id} has no details for point of sale {point_of_sale_id}",
            )
        cashier.updated_at = utcnow()
        _publish(session, cashier, set(), by_user)
