"""up/batch through the ingest worker and a real Mosquitto, on SQLite and PostgreSQL: every
message of a batch is applied once and acked by id, a bad line is refused alone, a bad
batch costs nothing but itself."""

from __future__ import annotations

from broker import contract as kc
from cloud_api.ingest.models import IngestedMessage
from cloud_api.reports.models import SaleRecord
from tests.cloud.ingest_support import wait_for
from tests.cloud.test_ingest_apply import (
    count,
    event,
    gaps,
    sale,
    stream,
    up,
)

DEVICE = "till-1"


def batch_payload(envelopes: list[kc.Envelope]) -> bytes:
    return kc.encode_batch([kc.encode(e) for e in envelopes])


def test_batched_messages_applied_once_each_and_acked_by_id(engine, workers, devices) -> None:
    worker = workers("batches")
    device = devices(DEVICE)
    first = [up(sale(n), n, device_id=DEVICE) if n % 5 else up(event(), n, device_id=DEVICE) for n in range(1, 41)]
    second = [up(sale(n), n, device_id=DEVICE) for n in range(41, 61)]
    device.send_raw(kc.batch_topic(DEVICE), batch_payload(first))
    device.send_raw(kc.batch_topic(DEVICE), batch_payload(second))
    ids = [e.id for e in first + second]
    wait_for(lambda: device.settled(ids), what="acks for every batched message")
    assert set(device.acked.values()) == {1} and not device.rejected
    assert count(engine, IngestedMessage) == 60 and count(engine, SaleRecord) == 52
    assert worker.stats().applied == 60 and device.high_waters[-1] == 60

    # Resent in another shape (singly and re-batched): duplicates, acked again, nothing added.
    for envelope in first[:10]:
        device.send(envelope)
    device.send_raw(kc.batch_topic(DEVICE), batch_payload(first[10:] + second))
    wait_for(lambda: device.settled(ids, times=2), what="acks for the resent messages")
    assert count(engine, IngestedMessage) == 60 and count(engine, SaleRecord) == 52
    assert worker.stats().duplicates == 60


def test_a_bad_line_is_refused_alone(engine, workers, devices) -> None:
    worker = workers("strict-batches")
    device = devices(DEVICE)
    good = [up(sale(n), n, device_id=DEVICE) for n in (1, 2, 4)]
    broken = up(sale(3), 3, device_id=DEVICE)
    foreign = up(sale(5), 5, device_id="till-2")  # another device's message inside till-1's batch
    unknown = up(sale(6), 6, device_id=DEVICE)  # sent with a type no one knows
    lines = [
        kc.encode(good[0]),
        kc.encode(good[1]),
        kc.encode(broken).replace(b'"total":', b'"total":-', 1),
        kc.encode(foreign),
        b"garbage, not JSON",
        kc.encode(good[2]),
        kc.encode(unknown).replace(b'"type":"up.sale"', b'"type":"up.nonsense"'),
    ]
    device.send_raw(kc.batch_topic(DEVICE), b"\n".join(lines))
    wait_for(
        lambda: (
            device.settled([e.id for e in good] + [broken.id, foreign.id, unknown.id]) and worker.stats().invalid >= 1
        ),
        what="the good lines acked and the bad ones refused",
    )
    # Every refusal with a readable id goes back to the sender, so its outbox sets the row aside.
    assert device.rejected == {broken.id: "schema", foreign.id: "wrong_device", unknown.id: "unknown_type"}
    assert count(engine, SaleRecord) == 3
    stats = worker.stats()
    assert (stats.applied, stats.rejected, stats.invalid) == (3, 3, 1)
    # The refused seqs (3, 5, 6) count as delivered, all of them till-1's: no gap stays open,
    # and the device till-2 named by the foreign line has no stream at all.
    assert gaps(engine, DEVICE) == [] and stream(engine, DEVICE).high_water == 6
    assert stream(engine, "till-2") is None


def test_an_unreadable_batch_is_dropped_and_the_worker_goes_on(engine, workers, devices) -> None:
    worker = workers("survivor")
    device = devices(DEVICE)
    device.send_raw(kc.batch_topic(DEVICE), b"")  # empty: nothing to name, counted and dropped
    device.send_raw(kc.batch_topic(DEVICE), b"\n".join([b"{}"] * (kc.MAX_BATCH_MESSAGES + 1)))
    after = up(sale(1), 1, device_id=DEVICE)
    device.send(after)
    wait_for(lambda: device.settled([after.id]) and worker.stats().invalid == 2, what="the worker to go on")
    assert count(engine, SaleRecord) == 1
