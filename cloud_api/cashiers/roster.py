"""Rosters: the `cashiers` state document of each device, built from the cashier tables and
published through the desired state (cloud_api/pushes/desired_state.py).

A device's roster holds every non-deleted cashier of its company allowed on it, enabled or
not: a disabled cashier stays listed with `enabled: false`, so the device refuses the login
with a clear reason instead of "unknown cashier". Each cashier carries all its details sets,
each naming its point of sale by code (a cashier may serve several points of sale) and the
operator code to use: the set's own, else the cashier's.

Every function here runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.roster import CashierDetails, RosterCashier, RosterDoc
from cloud_api.api.errors import ApiError
from cloud_api.cashiers.models import Cashier, CashierDetailsSet, CashierDevice, CashierRosterLock
from cloud_api.db import table_of, upsert_insert
from cloud_api.pushes import desired_state
from cloud_api.pushes.models import DesiredState
from cloud_api.tenancy.models import Device, PointOfSale

DOMAIN = kc.StateDomain.CASHIERS
MAX_ROSTER = 2000  # RosterDoc's limit on cashiers per device


def lock_company(session: Session, company_id: int) -> None:
    """Serialise changes to the company's cashiers and rosters until the transaction ends.

    Call it first in the transaction: every read after it sees the other changes committed.
    """
    table = table_of(CashierRosterLock)
    statement = upsert_insert(session, table).values(company_id=company_id, changes=1, changed_at=datetime.now(UTC))
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.company_id],
            set_={"changes": table.c.changes + 1, "changed_at": statement.excluded.changed_at},
        )
    )


def company_devices(session: Session, company_id: int) -> list[str]:
    return list(
        session.scalars(select(Device.device_id).where(Device.company_id == company_id).order_by(Device.device_id))
    )


def cashier_devices(session: Session, cashier: Cashier) -> set[str]:
    """The devices whose roster lists `cashier` now (none once it is deleted)."""
    if cashier.deleted_at is not None:
        return set()
    if cashier.all_devices:
        return set(company_devices(session, cashier.company_id))
    return set(session.scalars(select(CashierDevice.device_id).where(CashierDevice.cashier_id == cashier.id)))


def build_rosters(session: Session, company_id: int, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The roster document (wire form) of each of the company's `device_ids`."""
    device_ids = sorted(set(device_ids))
    if not device_ids:
        return {}
    cashiers = list(
        session.scalars(
            select(Cashier).where(Cashier.company_id == company_id, Cashier.deleted_at.is_(None)).order_by(Cashier.code)
        )
    )
    by_id = {cashier.id: cashier for cashier in cashiers}
    ids = list(by_id)
    chosen: dict[int, set[str]] = defaultdict(set)
    details: dict[int, list[CashierDetails]] = defaultdict(list)
    if ids:
        for cashier_id, device_id in session.execute(
            select(CashierDevice.cashier_id, CashierDevice.device_id).where(CashierDevice.cashier_id.in_(ids))
        ):
            chosen[cashier_id].add(device_id)
        rows = session.execute(
            select(
                CashierDetailsSet.cashier_id,
                PointOfSale.code,
                CashierDetailsSet.terminal_id,
                CashierDetailsSet.operator_code,
                CashierDetailsSet.session_label,
            )
            .join(PointOfSale, PointOfSale.id == CashierDetailsSet.point_of_sale_id)
            .where(CashierDetailsSet.cashier_id.in_(ids))
            .order_by(PointOfSale.code)
        )
        for cashier_id, pos_code, terminal_id, operator_code, session_label in rows:
            details[cashier_id].append(
                CashierDetails(
                    point_of_sale=pos_code,
                    terminal_id=terminal_id,
                    session_label=session_label,
                    operator_code=operator_code or by_id[cashier_id].operator_code,
                )
            )
    entries = {cashier.id: _roster_entry(cashier, details[cashier.id]) for cashier in cashiers}
    docs = {}
    # Devices listing the same cashiers share one document (one object: set_docs checks it
    # once): a company-wide change builds one roster, not one per device.
    built: dict[tuple[int, ...], dict[str, Any]] = {}
    for device_id in device_ids:
        listed_ids = tuple(c.id for c in cashiers if c.all_devices or device_id in chosen[c.id])
        doc = built.get(listed_ids)
        if doc is None:
            if len(listed_ids) > MAX_ROSTER:
                raise ApiError(
                    409,
                    "cashier.roster_full",
                    f"device {device_id} would list {len(listed_ids)} cashiers; a roster holds at most {MAX_ROSTER}",
                )
            try:
                doc = RosterDoc(cashiers=[entries[i] for i in listed_ids]).model_dump(mode="json")
            except ValidationError as exc:  # the database constraints make this unreachable
                raise ApiError(
                    409,
                    "cashier.roster_invalid",
                    f"the roster of device {device_id} is not valid: {exc.errors()[0]['msg']}",
                ) from None
            built[listed_ids] = doc
        docs[device_id] = doc
    return docs


def _roster_entry(cashier: Cashier, details: list[CashierDetails]) -> RosterCashier:
    return RosterCashier(
        cashier_id=cashier.code,
        name=cashier.name,
        operator_code=cashier.operator_code,
        pin_hash=cashier.pin_hash,
        roles=list(cashier.roles),
        enabled=cashier.enabled,
        details=details,
    )


def publish_rosters(
    session: Session, company_id: int, device_ids: Iterable[str] | None = None, *, by_user: int | None = None
) -> dict[str, int]:
    """Give each device (default: every device of the company) whose roster differs from
    its current document a new roster version built from the current cashier tables;
    returns those devices' new versions. Call it in the transaction that changed the data
    (pairing a device, moving it, changing cashiers); the push publisher sends the documents
    after the commit. A device whose roster did not change keeps its version: it has the
    document already, or the publisher is still sending it."""
    session.flush()  # devices or cashiers added in this transaction must be visible below
    lock_company(session, company_id)
    wanted = company_devices(session, company_id)
    if device_ids is not None:  # only the company's own devices ever get its cashiers
        wanted = sorted(set(wanted) & set(device_ids))
    docs = build_rosters(session, company_id, wanted)
    current = _current_docs(session, list(docs))
    docs = {device_id: doc for device_id, doc in docs.items() if current.get(device_id) != doc}
    try:
        return desired_state.set_docs(session, DOMAIN, docs, by_user=by_user)
    except desired_state.InvalidDocError as exc:
        raise ApiError(409, "cashier.roster_too_large", str(exc)) from None


def _current_docs(session: Session, device_ids: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(device_ids), 1000):
        chunk = device_ids[start : start + 1000]
        rows = session.execute(
            select(DesiredState.device_id, DesiredState.doc).where(
                DesiredState.domain == DOMAIN.value, DesiredState.device_id.in_(chunk)
            )
        )
        found.update((device_id, doc) for device_id, doc in rows)
    return found
