"""Messages the contract refuses (issue #16): their seqs count as delivered, on SQLite and
PostgreSQL. A device drops a message rejected in down/ack and never sends it again, so a
rejected seq must not hold a sequence gap open or freeze the device's high-water mark; the
topic's device (vouched for by the broker's ACL) is charged, never the device an envelope
names; a redelivered rejection changes nothing; the device API shows what was refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest import apply_batch
from cloud_api.ingest.fastparse import parse, parse_batch
from cloud_api.ingest.models import IngestedMessage
from cloud_api.reports.models import SaleRecord
from tests.cloud.api_support import Api, add_device
from tests.cloud.test_ingest_apply import (
    DEVICE,
    apply,
    count,
    event,
    gaps,
    sale,
    stream,
    up,
)

OTHER = "till-8"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def from_newer_terminal(envelope: kc.Envelope) -> kc.Rejection:
    """The message as a terminal upgraded before the cloud sends it: a body key this cloud
    does not know yet, so the contract refuses it as `schema`."""
    payload = kc.encode(envelope).replace(b'"body":{', b'"body":{"loyalty_card":"7700-1234",', 1)
    parsed = parse(kc.publication(envelope).topic, payload)
    assert isinstance(parsed, kc.Rejection) and parsed.reason is kc.RejectReason.SCHEMA, parsed
    return parsed


def on_topic_of(device_id: str, envelope: kc.Envelope) -> kc.Rejection:
    """`envelope` published on `device_id`'s up topic: `wrong_device` if it names another."""
    parsed = parse(kc.up_topic(device_id, envelope.type), kc.encode(envelope))
    assert isinstance(parsed, kc.Rejection) and parsed.reason is kc.RejectReason.WRONG_DEVICE, parsed
    return parsed


def ledger(engine: Engine) -> list[tuple]:
    with Session(engine) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(
                    IngestedMessage.message_id,
                    IngestedMessage.device_id,
                    IngestedMessage.seq,
                    IngestedMessage.type,
                    IngestedMessage.created_at,
                    IngestedMessage.outcome,
                    IngestedMessage.reject_reason,
                    IngestedMessage.received_at,
                ).order_by(IngestedMessage.device_id, IngestedMessage.seq)
            )
        ]


def position(engine: Engine, device_id: str = DEVICE) -> tuple[int, int]:
    row = stream(engine, device_id)
    return row.high_water, row.max_seq


# --------------------------------------------------------------------------- the stream
def test_a_schema_rejected_message_followed_by_valid_ones_leaves_no_open_gap(engine: Engine) -> None:
    first, newer, third, fourth = (up(sale(n), n) for n in range(1, 5))
    apply(engine, [first])
    refused = apply(engine, [from_newer_terminal(newer)])
    assert refused.devices[DEVICE].rejected[newer.id].reason == "schema"
    assert refused.devices[DEVICE].high_water == 2  # the ack says it: seq 2 is settled
    assert (refused.applied, refused.rejected) == (0, 1)

    plan = apply(engine, [third, fourth])
    assert list(plan.devices[DEVICE].acked) == [third.id, fourth.id]
    assert plan.devices[DEVICE].high_water == 4
    assert gaps(engine) == [] and position(engine) == (4, 4)
    assert count(engine, SaleRecord) == 3  # the refused sale is not applied
    recorded = {row[0]: row for row in ledger(engine)}[newer.id]
    assert recorded[1:7] == (DEVICE, 2, "up.sale", None, "rejected", "schema")


def test_a_late_rejection_closes_the_gap_its_seq_opened(engine: Engine) -> None:
    messages = [up(sale(n), n) for n in range(1, 5)]
    apply(engine, [messages[0], messages[2], messages[3]])  # seq 2 still on its way
    assert gaps(engine) == [(2, 2, False)] and position(engine) == (1, 4)

    plan = apply(engine, [from_newer_terminal(messages[1])])
    assert plan.devices[DEVICE].high_water == 4
    assert gaps(engine) == [(2, 2, True)] and position(engine) == (4, 4)


def test_a_wrong_device_seq_is_charged_to_the_topic_device_only(engine: Engine) -> None:
    # till-8 has a gap at seq 2. till-7 publishes, on its own topic, envelopes naming till-8
    # (a store copied from till-8, say): they settle till-7's seqs and never till-8's.
    apply(
        engine, [up(sale(1, cashier_id="C-8"), 1, device_id=OTHER), up(sale(3, cashier_id="C-8"), 3, device_id=OTHER)]
    )
    apply(engine, [up(sale(1), 1)])
    foreign = up(sale(2), 2, device_id=OTHER)
    plan = apply(engine, [on_topic_of(DEVICE, foreign), up(sale(3), 3)])

    assert plan.devices[DEVICE].rejected[foreign.id].reason == "wrong_device"
    assert OTHER not in plan.devices
    assert gaps(engine) == [] and position(engine) == (3, 3)
    assert gaps(engine, OTHER) == [(2, 2, False)] and position(engine, OTHER) == (1, 3)
    recorded = {row[0]: row for row in ledger(engine)}[foreign.id]
    assert recorded[1:3] == (DEVICE, 2)


def test_a_rejection_without_a_usable_seq_is_recorded_but_settles_no_seq(engine: Engine) -> None:
    # Version 2 may give `seq` another meaning: the cloud does not guess, the gap stays open
    # (and the device API shows the rejection next to it).
    second = up(sale(2), 2)
    other_version = parse(kc.publication(second).topic, kc.encode(second).replace(b'"v":1', b'"v":2', 1))
    assert isinstance(other_version, kc.Rejection) and other_version.seq is None
    plan = apply(engine, [up(sale(1), 1), other_version, up(sale(3), 3)])
    assert plan.devices[DEVICE].rejected[second.id].reason == "unsupported_version"
    assert gaps(engine) == [(2, 2, False)] and position(engine) == (1, 3)
    recorded = {row[0]: row for row in ledger(engine)}[second.id]
    assert recorded[1:7] == (DEVICE, None, "up.sale", None, "rejected", "unsupported_version")


def test_a_message_type_newer_than_the_cloud_settles_its_seq(engine: Engine) -> None:
    # In an up/batch, a line of an unknown up type is answered (unknown_type) and its seq counts.
    newer = up(event(), 2)
    lines = [
        kc.encode(up(sale(1), 1)),
        kc.encode(newer).replace(b'"type":"up.event"', b'"type":"up.coupon"', 1),
        kc.encode(up(sale(3), 3)),
    ]
    items = parse_batch(kc.batch_topic(DEVICE), b"\n".join(lines))
    assert isinstance(items, list)
    plan = apply(engine, items)
    assert plan.devices[DEVICE].rejected[newer.id].reason == "unknown_type"
    assert gaps(engine) == [] and position(engine) == (3, 3)
    recorded = {row[0]: row for row in ledger(engine)}[newer.id]
    assert recorded[1:4] == (DEVICE, 2, None)  # a batch line's topic names no type


# --------------------------------------------------------------------------- exactly once
def test_a_resent_rejected_message_changes_nothing(engine: Engine) -> None:
    refused = from_newer_terminal(up(sale(1), 1))
    first = apply(engine, [refused, up(sale(2), 2)])
    before = (ledger(engine), gaps(engine), position(engine), stream(engine).last_seen_at)

    again = apply(engine, [refused, refused])  # redelivered, twice within one batch
    assert (again.applied, again.rejected, again.duplicates) == (0, 0, 2)
    assert again.devices[DEVICE].rejected == first.devices[DEVICE].rejected
    assert again.devices[DEVICE].high_water == 2
    assert (ledger(engine), gaps(engine), position(engine), stream(engine).last_seen_at) == before


def test_a_valid_copy_wins_over_a_malformed_copy_of_the_same_id(engine: Engine) -> None:
    message = up(sale(1), 1)
    plan = apply(engine, [from_newer_terminal(message), message])
    assert list(plan.devices[DEVICE].acked) == [message.id] and not plan.devices[DEVICE].rejected
    assert (plan.applied, plan.duplicates) == (1, 1)

    later = apply(engine, [from_newer_terminal(message)])  # answered as the first time: applied
    assert list(later.devices[DEVICE].acked) == [message.id] and later.duplicates == 1
    assert [row[5] for row in ledger(engine)] == ["applied"]


def test_a_malformed_message_with_another_devices_id_is_refused_and_not_recorded(engine: Engine) -> None:
    original = up(sale(1), 1, device_id=OTHER)
    apply(engine, [original])
    copy = from_newer_terminal(up(sale(1), 1, message_id=original.id))
    plan = apply(engine, [copy])
    assert plan.devices[DEVICE].rejected[original.id].reason == "schema"
    assert plan.rejected == 1 and plan.duplicates == 0
    assert [row[1] for row in ledger(engine)] == [OTHER] and stream(engine) is None


# --------------------------------------------------------------------------- device API
def ingest(api: Api, items: list, at: datetime) -> None:
    items = [parse(kc.publication(i).topic, kc.encode(i)) if isinstance(i, kc.Envelope) else i for i in items]
    with Session(api.engine) as session, session.begin():
        apply_batch(session, items, received_at=at)


def test_the_device_api_shows_what_was_rejected(api: Api) -> None:
    cid, admin = api.company("Rejections Co")
    add_device(api, "rej-till", cid)
    other_cid, other_admin = api.company("Rejections Other Co")
    newer = up(sale(2), 2, device_id="rej-till")
    foreign = up(sale(4), 4, device_id="rej-other")
    ingest(api, [up(sale(1), 1, device_id="rej-till"), from_newer_terminal(newer)], T0)
    ingest(api, [up(sale(3), 3, device_id="rej-till"), on_topic_of("rej-till", foreign)], T0 + timedelta(hours=1))

    device = api.call("GET", f"/companies/{cid}/devices/rej-till", admin, 200).json()
    assert (device["high_water"], device["max_seq"], device["open_gaps"]) == (4, 4, 0)
    assert device["rejected"] == 2
    last = device["last_rejection"]
    assert (last["message_id"], last["seq"], last["type"], last["reason"], last["received_at"]) == (
        str(foreign.id),
        4,
        "up.sale",
        "wrong_device",
        "2026-03-01T10:00:00Z",
    )
    assert "rej-other" in last["detail"]
    listed = api.call("GET", f"/companies/{cid}/devices", admin, 200).json()
    assert [d for d in listed if d["device_id"] == "rej-till"] == [device]
    assert api.call("GET", f"/companies/{cid}/devices/rej-till/gaps", admin, 200).json() == []

    rejections = api.call("GET", f"/companies/{cid}/devices/rej-till/rejections", admin, 200).json()
    assert [(r["seq"], r["reason"]) for r in rejections] == [(4, "wrong_device"), (2, "schema")]
    assert rejections[0] == last and "loyalty_card" in rejections[1]["detail"]
    page = api.call("GET", f"/companies/{cid}/devices/rej-till/rejections?limit=1&offset=1", admin, 200).json()
    assert page == rejections[1:]
    # another company sees neither the device nor its rejections
    api.call("GET", f"/companies/{other_cid}/devices/rej-till/rejections", other_admin, 404)
    api.call("GET", f"/companies/{cid}/devices/rej-till/rejections", other_admin, 404)
