"""apply_batch against SQLite and PostgreSQL: exactly-once effect, sequence gaps, business
rules, invalid input. The MQTT worker around it is tested in test_ingest_worker.py."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.examples import _refund, _sale
from cloud_api.ingest import AckPlan, DeviceAck, apply_batch
from cloud_api.ingest.models import (
    CommandReply,
    DeviceEvent,
    DevicePresence,
    DeviceReport,
    DeviceStream,
    IngestedMessage,
    SequenceGap,
)
from cloud_api.reports.models import RefundRecord, SaleRecord
from tests.cloud.ingest_support import BOOT

DEVICE = "till-7"


def sale(receipt_no: int, sale_id: uuid.UUID | None = None, cashier_id: str = "C-0107") -> kc.Sale:
    return _sale().model_copy(
        update={"sale_id": sale_id or uuid.uuid4(), "receipt_no": receipt_no, "cashier_id": cashier_id}
    )


def event(kind: str = "cashier.login") -> kc.Event:
    return kc.Event(kind=kind, cashier_id="C-0107", details={"attempt": 1})


def up(body: kc.Body, seq: int, device_id: str = DEVICE, **extra) -> kc.Envelope:
    return kc.up_message(body, device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True, **extra)


def received(envelope: kc.Envelope) -> kc.Parsed | kc.Rejection:
    """The envelope as a worker gets it: encoded, sent, parsed."""
    publication = kc.publication(envelope)
    return kc.parse_message(publication.topic, publication.payload)


def apply(engine: Engine, envelopes: list[kc.Envelope | kc.Parsed | kc.Rejection]) -> AckPlan:
    items = [received(e) if isinstance(e, kc.Envelope) else e for e in envelopes]
    with Session(engine) as session, session.begin():
        return apply_batch(session, items)


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def stream(engine: Engine, device_id: str = DEVICE) -> DeviceStream:
    with Session(engine) as session:
        return session.get(DeviceStream, device_id)


def gaps(engine: Engine, device_id: str = DEVICE) -> list[tuple[int, int, bool]]:
    with Session(engine) as session:
        rows = session.scalars(
            select(SequenceGap).where(SequenceGap.device_id == device_id).order_by(SequenceGap.first_missing)
        )
        return [(g.first_missing, g.last_missing, g.closed_at is not None) for g in rows]


# --------------------------------------------------------------------------- tests
def test_every_type_applied_once_and_redelivery_changes_nothing(engine: Engine) -> None:
    command_id = uuid.uuid4()
    batch = [
        up(sale(1), 1),
        up(sale(2), 2),
        up(event(), 3),
        up(_refund(), 4),
        up(kc.Reply(ok=True, result={"pong": True}), 5, correlation_id=command_id),
        up(kc.DeviceState(software_version="0.1.0", applied_versions={}, outbox_depth=0), 6),
        up(kc.LeaseReport(kind="lease_report", leases=[], tombstones=[]), 7),
    ]
    plan = apply(engine, batch)
    assert (plan.applied, plan.duplicates, plan.rejected) == (7, 0, 0)
    assert list(plan.devices[DEVICE].acked) == [e.id for e in batch]
    assert plan.devices[DEVICE].high_water == 7
    tables = (IngestedMessage, SaleRecord, DeviceEvent, RefundRecord, CommandReply, DeviceReport)
    before = {model.__tablename__: count(engine, model) for model in tables}
    assert before == {
        "ingested_messages": 7,
        "sales": 2,
        "device_events": 1,
        "refunds": 1,
        "command_replies": 1,
        "device_reports": 2,
    }

    again = apply(engine, batch + batch[:2])  # redelivered, twice for some
    assert (again.applied, again.duplicates) == (0, 9)
    assert list(again.devices[DEVICE].acked) == [e.id for e in batch]
    assert {model.__tablename__: count(engine, model) for model in tables} == before
    with Session(engine) as session:
        stored = session.get(SaleRecord, batch[0].body.sale_id)
        assert (stored.total_minor, stored.currency, stored.receipt_number) == (2040, "EUR", 1)
        assert session.get(CommandReply, command_id).reply == {"ok": True, "result": {"pong": True}}


def test_sequence_gap_opened_then_closed(engine: Engine) -> None:
    plan = apply(engine, [up(sale(n), n) for n in (1, 2, 5)])
    assert plan.devices[DEVICE].high_water == 2
    assert gaps(engine) == [(3, 4, False)]
    assert (stream(engine).high_water, stream(engine).max_seq) == (2, 5)

    plan = apply(engine, [up(sale(3), 3)])
    assert plan.devices[DEVICE].high_water == 3
    assert gaps(engine) == [(3, 4, False)]

    plan = apply(engine, [up(sale(4), 4), up(sale(8), 8)])
    assert plan.devices[DEVICE].high_water == 5
    assert gaps(engine) == [(3, 4, True), (6, 7, False)]
    assert (stream(engine).high_water, stream(engine).max_seq) == (5, 8)
    assert stream(engine).last_boot_id == BOOT


def test_reused_sequence_number_withholds_high_water(engine: Engine) -> None:
    apply(engine, [up(sale(n), n) for n in (1, 2, 3)])
    plan = apply(engine, [up(sale(10), 2)])  # a restored device counting again from old seqs
    assert plan.applied == 1
    assert plan.devices[DEVICE].high_water is None
    assert stream(engine).high_water == 3


def test_sale_conflicts_are_rejected_recorded_and_answered_again(engine: Engine) -> None:
    original = up(sale(1), 1)
    apply(engine, [original])
    same_sale_new_id = up(original.body, 2)
    conflicting = up(sale(3, sale_id=original.body.sale_id, cashier_id="C-9999"), 3)
    receipt_reused = up(sale(1), 4)
    plan = apply(engine, [same_sale_new_id, conflicting, receipt_reused])

    assert list(plan.devices[DEVICE].acked) == [same_sale_new_id.id]
    rejected = plan.devices[DEVICE].rejected
    assert rejected[conflicting.id].reason == "sale.conflict"
    assert rejected[receipt_reused.id].reason == "sale.receipt_no_reused"
    assert (plan.applied, plan.rejected) == (1, 2)
    assert count(engine, SaleRecord) == 1
    assert plan.devices[DEVICE].high_water == 4  # refused messages are settled too

    again = apply(engine, [conflicting])
    assert again.duplicates == 1
    assert again.devices[DEVICE].rejected[conflicting.id].reason == "sale.conflict"
    with Session(engine) as session:
        assert session.get(IngestedMessage, conflicting.id).outcome == "rejected"


def test_invalid_payloads_rejected_when_named_and_counted_otherwise(engine: Engine) -> None:
    good = up(sale(1), 1)
    bad = up(sale(2), 2)
    broken = kc.encode(bad).replace(b'"total":2040', b'"total":20.40')  # money as a float
    named = kc.parse_message(kc.up_topic(DEVICE, kc.MessageType.SALE), broken)
    garbage = kc.parse_message(kc.up_topic(DEVICE, kc.MessageType.SALE), b"\xff\x00garbage")
    assert isinstance(named, kc.Rejection) and named.message_id == bad.id
    assert isinstance(garbage, kc.Rejection) and garbage.message_id is None

    plan = apply(engine, [named, garbage, good])
    assert plan.devices[DEVICE].rejected[bad.id].reason == "schema"
    assert list(plan.devices[DEVICE].acked) == [good.id]
    assert (plan.applied, plan.rejected, plan.invalid) == (1, 1, 1)
    # the named one is recorded as rejected (test_ingest_rejected.py); the garbage is not
    assert count(engine, IngestedMessage) == 2


def test_nul_in_free_form_json_is_refused_on_every_database(engine: Engine) -> None:
    # PostgreSQL cannot store U+0000 in JSON; a refusal beats failing on every resend.
    poisoned = up(kc.Event(kind="drawer.opened", details={"note": "a\x00b"}), 1)
    plan = apply(engine, [poisoned, up(event(), 2)])
    assert plan.devices[DEVICE].rejected[poisoned.id].reason == "message.unstorable"
    assert (plan.applied, plan.rejected) == (1, 1)
    assert count(engine, DeviceEvent) == 1


def test_reports_keep_the_newest_and_replies_the_first(engine: Engine) -> None:
    def state(depth: int) -> kc.DeviceState:
        return kc.DeviceState(software_version="0.1.0", applied_versions={}, outbox_depth=depth)

    command_id = uuid.uuid4()
    apply(engine, [up(state(10), 10), up(kc.Reply(ok=True, result={"n": 1}), 11, correlation_id=command_id)])
    plan = apply(
        engine,
        [
            up(state(9), 9),  # older, arrived late
            up(kc.Reply(ok=True, result={"n": 2}), 12, correlation_id=command_id),
        ],
    )
    assert plan.applied == 2
    with Session(engine) as session:
        assert session.get(DeviceReport, (DEVICE, "state")).report["outbox_depth"] == 10
        assert session.get(CommandReply, command_id).reply["result"] == {"n": 1}


def test_status_messages_record_presence(engine: Engine) -> None:
    online = kc.status_message(kc.Presence.ONLINE, device_id=DEVICE, boot_id=BOOT, clock_trusted=True)
    offline = kc.status_message(kc.Presence.OFFLINE, device_id=DEVICE, boot_id=BOOT, clock_trusted=True)
    plan = apply(engine, [online])
    assert plan.presence == 1 and not plan.devices  # statuses are never acked
    with Session(engine) as session:
        assert session.get(DevicePresence, DEVICE).state == "online"
    apply(engine, [offline])
    with Session(engine) as session:
        row = session.get(DevicePresence, DEVICE)
        assert (row.state, row.boot_id, row.status_message_id) == ("offline", BOOT, offline.id)


def test_acks_are_split_at_the_contract_limit() -> None:
    entry = DeviceAck(high_water=7)
    ids = [kc.uuid7() for _ in range(2500)]
    entry.acked.update(dict.fromkeys(ids))
    envelopes = entry.envelopes(DEVICE)
    assert [len(e.body.acked_ids) for e in envelopes] == [1000, 1000, 500]
    assert [i for e in envelopes for i in e.body.acked_ids] == ids
    assert all(e.body.high_water == 7 and e.topic == kc.ack_topic(DEVICE) for e in envelopes)
