"""The ingest worker against a real Mosquitto, on SQLite and PostgreSQL.

A raw paho client plays the device: it publishes up messages and collects its down/acks.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.launcher import Mosquitto
from cloud_api.ingest import apply as apply_module
from cloud_api.ingest.models import DevicePresence, DeviceStream, IngestedMessage
from cloud_api.reports.models import SaleRecord
from tests.cloud.ingest_support import BOOT, TIMEOUT_S, wait_for
from tests.cloud.test_ingest_apply import (
    count,
    event,
    gaps,
    sale,
    up,
)

REPO = Path(__file__).resolve().parents[2]


def sales(n: int, first_seq: int = 1, device_id: str = "till-1") -> list[kc.Envelope]:
    return [up(sale(seq), seq, device_id=device_id) for seq in range(first_seq, first_seq + n)]


# --------------------------------------------------------------------------- tests
def test_messages_applied_once_and_acked_again_when_resent(engine, workers, devices) -> None:
    worker = workers("solo")
    device = devices("till-1")
    batch = [up(sale(n), n, device_id="till-1") if n % 3 else up(event(), n, device_id="till-1") for n in range(1, 61)]
    for envelope in batch:
        device.send(envelope)
    ids = [e.id for e in batch]
    wait_for(lambda: device.settled(ids), what="first acks")
    assert set(device.acked) == set(ids) and set(device.acked.values()) == {1}
    assert count(engine, IngestedMessage) == 60 and count(engine, SaleRecord) == 40
    assert worker.stats().applied == 60 and device.high_waters[-1] == 60

    for envelope in batch:  # the device resends everything, e.g. after a reconnect
        device.send(envelope)
    wait_for(lambda: device.settled(ids, times=2), what="acks of the resent messages")
    assert set(device.acked.values()) == {2}
    stats = worker.stats()
    assert (stats.applied, stats.duplicates) == (60, 60)
    assert count(engine, IngestedMessage) == 60 and count(engine, SaleRecord) == 40


def test_two_workers_share_the_load_each_message_applied_once(engine, workers, devices) -> None:
    first, second = workers("a"), workers("b")
    fleet = [devices(f"till-{n}") for n in range(4)]
    sent: dict[str, list[uuid.UUID]] = {}
    for device in fleet:
        batch = sales(500, device_id=device.device_id)
        sent[device.device_id] = [e.id for e in batch]
        for envelope in batch:
            device.send(envelope)
    for device in fleet:
        wait_for(lambda d=device: d.settled(sent[d.device_id]), what=f"acks for {device.device_id}")
    assert count(engine, IngestedMessage) == 2000
    assert count(engine, SaleRecord) == 2000
    applied = first.stats().applied, second.stats().applied
    assert sum(applied) == 2000 and min(applied) > 0, applied
    with Session(engine) as session:
        assert session.scalars(select(DeviceStream.high_water)).all() == [500] * 4


def test_worker_restart_and_broker_restart_lose_nothing(engine, workers, devices, mosquitto) -> None:
    workers("steady").stop()  # its session, with the subscription, outlives it
    device = devices("till-1")
    batch = sales(90)
    for envelope in batch[:30]:  # sent while the worker is down
        device.send(envelope)
    worker = workers("steady")
    wait_for(lambda: device.settled([e.id for e in batch[:30]]), what="acks after the restart")
    assert worker.stats().applied == 30

    mosquitto.restart()  # clean restart: the broker keeps sessions on disk
    wait_for(lambda: worker.stats().connects == 2, what="the worker to reconnect")
    device.close()
    device = devices("till-1")
    for envelope in batch[30:]:
        device.send(envelope)
    wait_for(lambda: device.settled([e.id for e in batch[30:]]), what="acks after reconnecting")
    assert count(engine, IngestedMessage) == 90 and worker.stats().applied == 90


def test_sequence_gap_detected_and_closed_over_mqtt(engine, workers, devices) -> None:
    workers("gaps")
    device = devices("till-1")
    early = {seq: up(sale(seq), seq, device_id="till-1") for seq in (1, 2, 5)}
    for envelope in early.values():
        device.send(envelope)
    wait_for(lambda: device.settled([e.id for e in early.values()]))
    assert gaps(engine, "till-1") == [(3, 4, False)]
    assert device.high_waters[-1] == 2

    late = [up(sale(seq), seq, device_id="till-1") for seq in (3, 4)]
    for envelope in late:
        device.send(envelope)
    wait_for(lambda: device.settled([e.id for e in late]))
    assert gaps(engine, "till-1") == [(3, 4, True)]
    assert device.high_waters[-1] == 5
    with Session(engine) as session:
        assert session.get(DeviceStream, "till-1").high_water == 5


def test_invalid_payloads_rejected_or_counted_and_the_worker_goes_on(engine, workers, devices) -> None:
    worker = workers("strict")
    device = devices("till-1")
    bad = up(sale(1), 1, device_id="till-1")
    device.send_raw(bad.topic, kc.encode(bad).replace(b'"total":2040', b'"total":20.40'))
    device.send_raw(bad.topic, b"\xff\xfe not even text")
    wait_for(lambda: device.settled([bad.id]) and worker.stats().invalid == 1)
    assert device.rejected == {bad.id: "schema"}

    # A type this cloud does not know, on a topic of its own: the topic is refused before the
    # payload is read, so there is no id to answer by: no down/ack (the device sends it again).
    newer = up(event(), 2, device_id="till-1")
    device.send_raw(
        kc.up_topic("till-1", kc.MessageType.EVENT).replace("/up/event", "/up/coupon"),
        kc.encode(newer).replace(b'"type":"up.event"', b'"type":"up.coupon"'),
    )
    good = up(sale(3), 3, device_id="till-1")
    device.send(good)
    wait_for(lambda: device.settled([good.id]) and worker.stats().invalid == 2)
    assert newer.id not in device.acked and newer.id not in device.rejected
    assert count(engine, IngestedMessage) == 2  # the good sale, and the refused one (seq 1)
    stats = worker.stats()
    assert (stats.applied, stats.rejected, stats.invalid) == (1, 1, 2)
    # Seq 1 was delivered (and rejected); seq 2 never was, as far as the cloud can tell.
    assert gaps(engine, "till-1") == [(2, 2, False)]


def test_a_message_that_cannot_be_applied_does_not_block_the_others(
    engine, workers, devices, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply_events = apply_module._APPLIERS[kc.MessageType.EVENT]

    def fragile(session, envelopes, now):  # a bug that only one message triggers
        if any(envelope.body.kind == "test.poison" for envelope in envelopes):
            raise RuntimeError("simulated bug")
        return real_apply_events(session, envelopes, now)

    monkeypatch.setitem(apply_module._APPLIERS, kc.MessageType.EVENT, fragile)
    worker = workers("tough")
    device = devices("till-1")
    batch = sales(5, device_id="till-1")
    poison = up(event("test.poison"), 6, device_id="till-1")
    for envelope in [*batch, poison]:
        device.send(envelope)
    wait_for(lambda: device.settled([e.id for e in batch]) and worker.stats().failed == 1)
    assert poison.id not in device.acked and poison.id not in device.rejected

    later = up(sale(7), 7, device_id="till-1")
    device.send(later)
    wait_for(lambda: device.settled([later.id]), what="the worker to go on")
    assert count(engine, IngestedMessage) == 6  # the poison left nothing behind


def test_presence_follows_status_and_will(engine, workers, devices) -> None:
    worker = workers("presence")
    device = devices("till-9")
    online = kc.status_message(kc.Presence.ONLINE, device_id="till-9", boot_id=BOOT, clock_trusted=True)
    publication = kc.publication(online)
    device.client.publish(publication.topic, publication.payload, qos=1, retain=True)

    def presence() -> str | None:
        with Session(engine) as session:
            row = session.get(DevicePresence, "till-9")
            return row.state if row else None

    wait_for(lambda: presence() == "online")
    device.vanish()
    wait_for(lambda: worker.stats().presence == 2, what="the will to be recorded")
    assert presence() == "offline"


# --------------------------------------------------------------------------- crash test
class WorkerProcess:
    """`kassa-cloud worker` as a subprocess (debug log level), its log read as it comes."""

    def __init__(self, database_url: str, broker: Mosquitto, worker_id: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloud_api.main",
                "worker",
                "--database-url",
                database_url,
                "--mqtt-host",
                broker.host,
                "--mqtt-port",
                str(broker.port),
                "--worker-id",
                worker_id,
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "KASSA_CLOUD_LOG_LEVEL": "debug"},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_line(self, text: str, after: int = 0) -> str:
        """The first log line from index `after` on that contains `text`."""

        def found() -> bool:
            return any(text in line for line in self.lines[after:])

        wait_for(lambda: found() or self.process.poll() is not None, what=repr(text))
        assert found(), "".join(self.lines[-20:])
        return next(line for line in self.lines[after:] if text in line)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@contextmanager
def database_write_locked(database_url: str) -> Iterator[None]:
    """Hold the database so a worker's transaction cannot commit (it blocks and waits)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text("LOCK TABLE ingested_messages IN SHARE MODE"))
        try:
            yield
        finally:
            conn.rollback()
    engine.dispose()


def test_killed_worker_loses_nothing_and_applies_once(database_url, engine, mosquitto, devices) -> None:
    device = devices("till-1")
    batch = sales(600)
    ids = [e.id for e in batch]
    worker = WorkerProcess(database_url, mosquitto, "crashy")
    try:
        worker.wait_line("ingest subscribed")
        for envelope in batch[:100]:
            device.send(envelope)
        wait_for(lambda: device.settled(ids[:100]), what="acks of the first 100")

        with database_write_locked(database_url):
            seen = len(worker.lines)
            for envelope in batch[100:300]:
                device.send(envelope)
            worker.wait_line("applying batch", after=seen)  # received, cannot commit
            worker.kill()  # SIGKILL: no commit, no PUBACK
        for envelope in batch[300:]:  # sent while no worker runs: kept in its session
            device.send(envelope)

        worker = WorkerProcess(database_url, mosquitto, "crashy")
        worker.wait_line("ingest subscribed")
        wait_for(lambda: device.settled(ids), what="acks after the restart")
        assert count(engine, IngestedMessage) == 600
        with Session(engine) as session:
            totals = session.execute(
                select(func.count(func.distinct(SaleRecord.sale_id)), func.sum(SaleRecord.total_minor))
            ).one()
            assert tuple(totals) == (600, 600 * 2040)
            assert session.get(DeviceStream, "till-1").high_water == 600

        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(TIMEOUT_S) == 0
        # The 200 held un-PUBACKed by the killed worker came back, with the 300 sent later.
        assert "applied=500 " in worker.wait_line("ingest worker stopped")
    finally:
        worker.kill()
