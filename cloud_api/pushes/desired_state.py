"""The desired document per device and domain, and its version.

Call `set_doc` (one device) or `set_docs` (many devices, one statement) inside the
transaction that changes the data behind a document; the publisher sends the new version
after that transaction commits. The new version is computed by the database
(`version = version + 1` in INSERT ... ON CONFLICT DO UPDATE): on PostgreSQL the row lock
makes a concurrent writer wait and then add one to the committed value, on SQLite the
database write lock serialises writers, so two changes never get the same version.
Every call raises the version, even when the document is unchanged (a caller that changed
nothing should not call).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.fields import MAX_SEQ
from cloud_api.db import table_of, upsert_insert
from cloud_api.pushes.jsondoc import json_problem
from cloud_api.pushes.models import DesiredState

_table = table_of(DesiredState)
# The largest envelope fields a document will travel with: sized once, so a document that
# fits now still fits at any later version.
_LONGEST_DEVICE_ID = "d" * 64
_LARGEST_VERSION = MAX_SEQ  # what StateDoc.version allows


class InvalidDocError(ValueError):
    """A document that cannot be stored or sent (wrong domain, not JSON, too large, NUL)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def state_domain(domain: kc.StateDomain | str) -> kc.StateDomain:
    try:
        return kc.StateDomain(domain)
    except ValueError:
        raise InvalidDocError(
            f"unknown state domain {str(domain)[:32]!r} (one of: {', '.join(d.value for d in kc.StateDomain)})"
        ) from None


def check_doc(domain: kc.StateDomain | str, doc: Mapping[str, Any]) -> kc.StateDomain:
    """The domain, if `doc` can be sent in it; else InvalidDocError saying why."""
    domain = state_domain(domain)
    problem = json_problem(doc)
    if problem is not None:
        raise InvalidDocError(f"the document cannot be stored: {problem}")
    try:
        body = kc.StateDoc(domain=domain, version=_LARGEST_VERSION, doc=dict(doc), issued_at=utcnow())
        kc.encode(kc.down_message(body, device_id=_LONGEST_DEVICE_ID))
    except ValidationError as exc:
        raise InvalidDocError(f"not a valid {domain.value} document: {exc.errors()[0]['msg']}") from None
    except kc.PayloadTooLargeError:
        raise InvalidDocError(
            f"the document is larger than a state message may be ({kc.MAX_STATE_DOC_BYTES} bytes with its envelope)"
        ) from None
    return domain


def set_doc(
    session: Session,
    device_id: str,
    domain: kc.StateDomain | str,
    doc: Mapping[str, Any],
    *,
    by_user: int | None = None,
) -> int:
    """Make `doc` the desired `domain` document of the device; returns its new version."""
    return set_docs(session, domain, {device_id: doc}, by_user=by_user)[device_id]


def set_docs(
    session: Session, domain: kc.StateDomain | str, docs: Mapping[str, Mapping[str, Any]], *, by_user: int | None = None
) -> dict[str, int]:
    """Set the `domain` document of many devices in one statement; returns each new version.

    The devices must exist (`devices` rows). Rows are written in device id order, so two
    bulk changes running at once on PostgreSQL lock rows in the same order (no deadlock).
    """
    if not docs:
        return {}
    domain = state_domain(domain)
    checked: set[int] = set()
    for doc in docs.values():
        if id(doc) not in checked:  # a document shared by many devices is checked once
            check_doc(domain, doc)
            checked.add(id(doc))
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "device_id": device_id,
            "domain": domain.value,
            "version": 1,
            "doc": dict(docs[device_id]),
            "updated_at": now,
            "updated_by": by_user,
            "published_version": 0,
            "published_at": None,
            "publish_pending": True,
        }
        for device_id in sorted(docs)
    ]
    statement = upsert_insert(session, _table)
    statement = statement.on_conflict_do_update(
        index_elements=[_table.c.device_id, _table.c.domain],
        set_={
            "version": _table.c.version + 1,
            "doc": statement.excluded.doc,
            "updated_at": statement.excluded.updated_at,
            "updated_by": statement.excluded.updated_by,
            "publish_pending": True,
        },
    )
    if len(rows) == 1:
        version = session.execute(statement.returning(_table.c.version), rows[0]).scalar_one()
        return {rows[0]["device_id"]: version}
    session.execute(statement, rows)
    # Our own writes, locked by this transaction until it ends: these are the versions.
    versions: dict[str, int] = {}
    device_ids = [row["device_id"] for row in rows]
    for start in range(0, len(device_ids), 1000):
        chunk = device_ids[start : start + 1000]
        found = session.execute(
            select(_table.c.device_id, _table.c.version).where(
                _table.c.domain == domain.value, _table.c.device_id.in_(chunk)
            )
        )
        versions.update((device_id, version) for device_id, version in found)
    return versions


def desired_docs(session: Session, device_id: str) -> dict[str, DesiredState]:
    """The device's desired documents by domain (only domains that have one)."""
    rows = session.scalars(select(DesiredState).where(DesiredState.device_id == device_id))
    return {row.domain: row for row in rows}
