"""The ingest's applier for up/licence: keep the latest report of each kind (as before), and
run the licence book for every new message, in the ingest's transaction.

A message the book refuses (unknown key, forged receipt, ...) is rejected to the device with
the refusal's code as the reason; the book checks everything before changing anything, so a
refused message leaves no trace but the rejection.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest import bodies
from cloud_api.ingest.up import Up
from cloud_api.licences.binding import accept_release, apply_lease_report, bind
from cloud_api.licences.policy import LicencePolicy, current_policy
from cloud_api.licences.records import LicenceRefused

log = logging.getLogger(__name__)
_report_adapter: TypeAdapter[Any] = TypeAdapter(kc.LicenceReport)


def apply_licence_messages(
    session: Session, ups: list[Up], now: datetime, policy: LicencePolicy | None = None
) -> bodies.Refusals:
    refusals = bodies.apply_reports(session, ups, now)
    policy = policy or current_policy()
    # In the order the device sent them: a bind before the report that follows it.
    for up in sorted(ups, key=lambda up: (up.device_id, up.seq)):
        if up.id in refusals:
            continue
        body = up.body if up.body is not None else _report_adapter.validate_python(up.wire_form())
        try:
            apply_licence_message(session, up.device_id, body, now, policy)
        except LicenceRefused as exc:
            refusals[up.id] = (exc.code, exc.message)
    return refusals


def apply_licence_message(
    session: Session,
    device_id: str,
    body: kc.BindRequest | kc.ReleaseReceipt | kc.LeaseReport,
    now: datetime,
    policy: LicencePolicy,
) -> None:
    """One up/licence body from `device_id`; raises LicenceRefused to refuse it."""
    if isinstance(body, kc.BindRequest):
        outcome = bind(session, device_id, body.licence_key, body.device_public_key, now, policy)
        log.info(
            "licence bind request",
            extra={
                "device_id": device_id,
                "licence_id": outcome.licence_id,
                "state": outcome.state,
                "epoch": outcome.epoch,
            },
        )
    elif isinstance(body, kc.ReleaseReceipt):
        accept_release(session, device_id, body.licence_id, body.epoch, body.receipt, now, policy)
    elif isinstance(body, kc.LeaseReport):
        apply_lease_report(session, device_id, body, now, policy)
