"""Apply a batch of received messages in the caller's transaction: exactly-once effect.

    with Session(engine) as session, session.begin():
        plan = apply_batch(session, [kc.parse_message(topic, payload), ...])
    publish(plan.envelopes())          # only after the commit

Every new message id is recorded in `ingested_messages` with INSERT ... ON CONFLICT DO
NOTHING in the same transaction that applies its body, so a redelivered message changes
nothing and is answered exactly as the first time (acked, or rejected with the stored reason).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest import bodies
from cloud_api.ingest.plan import AckPlan, clean_detail
from cloud_api.ingest.sql import ConcurrentChangeError, insert_new
from cloud_api.ingest.streams import current_high_water, track_sequences
from cloud_api.models import IngestedMessage, Outcome

log = logging.getLogger(__name__)

_messages = IngestedMessage.__table__

Applier = Callable[[Session, list[kc.Envelope], datetime], bodies.Refusals]
_APPLIERS: dict[kc.MessageType, Applier] = {
    kc.MessageType.SALE: bodies.apply_sales,
    kc.MessageType.REFUND: bodies.apply_refunds,
    kc.MessageType.EVENT: bodies.apply_events,
    kc.MessageType.REPLY: bodies.apply_replies,
    kc.MessageType.DEVICE_STATE: bodies.apply_reports,
    kc.MessageType.LICENCE: bodies.apply_reports,
}


def apply_batch(
    session: Session,
    messages: Sequence[kc.Parsed | kc.Rejection],
    *,
    received_at: datetime | None = None,
) -> AckPlan:
    """Apply parsed up and status messages; collect acks and rejections per device.

    Does not commit: the caller commits, then publishes `plan.envelopes()`. Raises
    `ConcurrentChangeError` (roll back and retry) when a concurrent worker got in the way.
    """
    now = received_at or datetime.now(timezone.utc)
    plan = AckPlan()
    ups: dict[uuid.UUID, kc.Envelope] = {}
    statuses: list[kc.Envelope] = []
    for item in messages:
        if isinstance(item, kc.Rejection):
            _refuse_invalid(plan, item)
        elif item.type.is_up:
            if item.envelope.id in ups:
                plan.duplicates += 1  # redelivered while the first copy waited in this batch
            ups.setdefault(item.envelope.id, item.envelope)
        elif item.type is kc.MessageType.STATUS:
            statuses.append(item.envelope)
        else:
            plan.ignored += 1
            log.warning("message type not for the ingest; ignored",
                        extra={"type": str(item.type), "topic": item.topic.topic})
    if ups:
        _apply_up_messages(session, plan, list(ups.values()), now)
    if statuses:
        plan.presence = bodies.record_presence(session, statuses, now)
    session.flush()
    return plan


def _apply_up_messages(
    session: Session, plan: AckPlan, envelopes: list[kc.Envelope], now: datetime
) -> None:
    new_ids = insert_new(session, _messages, [_ledger_row(e, now) for e in envelopes],
                         "message_id")
    new = [envelope for envelope in envelopes if envelope.id in new_ids]
    _answer_known(session, plan, [envelope for envelope in envelopes if envelope.id not in new_ids])

    refusals: bodies.Refusals = {}
    for message_type, applier in _APPLIERS.items():
        of_type = [envelope for envelope in new if envelope.type is message_type]
        if of_type:
            refusals.update(applier(session, of_type, now))
    for message_id, (reason, detail) in sorted(refusals.items()):
        session.execute(
            update(_messages).where(_messages.c.message_id == message_id)
            .values(outcome=Outcome.REJECTED, reject_reason=reason,
                    reject_detail=clean_detail(detail))
        )
    for envelope in new:
        if envelope.id in refusals:
            reason, detail = refusals[envelope.id]
            plan.reject(envelope.device_id, envelope.id, reason, detail)
            plan.rejected += 1
            log.warning("message refused by a business rule",
                        extra={"device_id": envelope.device_id, "id": str(envelope.id),
                               "seq": envelope.seq, "reason": reason, "detail": detail})
        else:
            plan.ack(envelope.device_id, envelope.id)
            plan.applied += 1

    positions = track_sequences(session, new, now)
    for device_id, position in positions.items():
        if not position.seq_reused:
            plan.device(device_id).high_water = position.high_water or None
    only_known = sorted({e.device_id for e in envelopes} - set(positions))
    for device_id, high_water in current_high_water(session, only_known).items():
        plan.device(device_id).high_water = high_water or None


def _ledger_row(envelope: kc.Envelope, now: datetime) -> dict:
    return {
        "message_id": envelope.id, "device_id": envelope.device_id, "seq": envelope.seq,
        "type": envelope.type.value, "boot_id": envelope.boot_id,
        "created_at": envelope.created_at, "clock_trusted": envelope.clock_trusted,
        "received_at": now, "outcome": Outcome.APPLIED,
    }


def _answer_known(session: Session, plan: AckPlan, envelopes: list[kc.Envelope]) -> None:
    """Answer redelivered messages exactly as the first time."""
    if not envelopes:
        return
    stored = {
        row.message_id: row
        for row in session.execute(
            select(_messages.c.message_id, _messages.c.device_id, _messages.c.outcome,
                   _messages.c.reject_reason, _messages.c.reject_detail)
            .where(_messages.c.message_id.in_([envelope.id for envelope in envelopes]))
        )
    }
    for envelope in envelopes:
        row = stored.get(envelope.id)
        if row is None:  # the conflicting insert was rolled back after we saw it
            raise ConcurrentChangeError(f"message {envelope.id} vanished while being recorded")
        if row.device_id != envelope.device_id:
            plan.reject(envelope.device_id, envelope.id, "message.id_reused",
                        f"message id {envelope.id} is already recorded for another device")
            plan.rejected += 1
            log.warning("message id already used by another device",
                        extra={"device_id": envelope.device_id, "id": str(envelope.id)})
            continue
        plan.duplicates += 1
        if row.outcome == Outcome.REJECTED:
            plan.reject(envelope.device_id, envelope.id, row.reject_reason, row.reject_detail)
        else:
            plan.ack(envelope.device_id, envelope.id)


def _refuse_invalid(plan: AckPlan, rejection: kc.Rejection) -> None:
    """Report a malformed up message to its device when it can be named; else log it."""
    topic = kc.parse_topic(rejection.topic)
    reportable = (
        rejection.device_id is not None
        and rejection.message_id is not None
        and kc.is_uuid7(rejection.message_id)
        and isinstance(topic, kc.TopicInfo)
        and topic.message_type.is_up
    )
    fields = {"reason": rejection.reason.value, "detail": rejection.detail,
              "topic": rejection.topic[:256], "device_id": rejection.device_id,
              "id": str(rejection.message_id) if rejection.message_id else None}
    if reportable:
        plan.reject(rejection.device_id, rejection.message_id, rejection.reason.value,
                    rejection.detail)
        plan.rejected += 1
        log.warning("invalid message refused", extra=fields)
    else:
        plan.invalid += 1
        log.warning("invalid message dropped (no id to report it by)", extra=fields)
