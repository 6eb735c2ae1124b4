"""The outbox as producers and the drain see it, without a cloud."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from agent.cloud.outbox import Outbox
from agent.store import Store
from broker import contract as kc
from broker.launcher import Mosquitto
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.mqtt_peer import MqttPeer

BOOT = kc.uuid7()


def event(n: int) -> kc.Event:
    return kc.Event(kind="test.note", details={"n": n})


@pytest.fixture
def outbox(tmp_path: Path):
    store = Store.open(tmp_path / "agent.db")
    yield Outbox(store, "pos-0001", BOOT, lambda: True)
    store.close()


def test_enqueue_commits_with_the_callers_transaction(outbox: Outbox) -> None:
    with pytest.raises(RuntimeError, match="sale failed"), outbox.store.transaction() as conn:
        outbox.enqueue(conn, event(1))
        raise RuntimeError("sale failed")
    assert outbox.stats().depth == 0
    assert outbox.last_seq() == 0, "a rolled-back message does not consume a sequence number"
    with outbox.store.transaction() as conn:
        first = outbox.enqueue(conn, event(1))
        second = outbox.enqueue(conn, event(2))
    assert (first.seq, second.seq) == (1, 2)
    assert outbox.stats().depth == 2


def test_enqueue_outside_a_transaction_is_refused(outbox: Outbox) -> None:
    with pytest.raises(RuntimeError, match=r"inside Store.transaction"):
        outbox.enqueue(outbox.store.read(), event(1))


def test_sequence_survives_reopen_and_settle(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "agent.db")
    box = Outbox(store, "pos-0001", BOOT, lambda: True)
    envelopes = [box.enqueue_one(event(n)) for n in range(3)]
    box.settle([(e.seq, e.message_id) for e in envelopes])
    assert box.stats().depth == 0
    store.close()
    store = Store.open(tmp_path / "agent.db")
    box = Outbox(store, "pos-0001", kc.uuid7(), lambda: True)
    assert box.enqueue_one(event(9)).seq == 4, "the counter is persisted, never reused"
    store.close()


def test_rows_page_in_order_and_payload_is_the_wire_message(outbox: Outbox) -> None:
    sent = [outbox.enqueue_one(event(n)) for n in range(10)]
    page = outbox.after(3, 4)
    assert [row.seq for row in page] == [4, 5, 6, 7]
    parsed = kc.parse_message(page[0].topic, page[0].payload)
    assert isinstance(parsed, kc.Parsed)
    assert parsed.envelope.id == sent[3].message_id and parsed.envelope.seq == 4
    assert parsed.topic.device_id == "pos-0001"


def test_settle_needs_matching_id_and_rejections_are_kept(outbox: Outbox) -> None:
    a, b, c = (outbox.enqueue_one(event(n)) for n in range(3))
    outbox.settle([(a.seq, uuid.uuid4())])  # stale id: nothing deleted
    assert outbox.stats().depth == 3
    outbox.settle([(a.seq, a.message_id)], rejected=[(b.seq, "sale.conflict")])
    stats = outbox.stats()
    assert (stats.depth, stats.rejected) == (1, 1)
    reason = outbox.store.read().execute("SELECT reason FROM outbox_rejected WHERE seq = ?", (b.seq,)).fetchone()[0]
    assert reason == "sale.conflict"
    assert [row.seq for row in outbox.after(0, 10)] == [c.seq]


def test_oversized_message_is_refused_before_anything_is_written(outbox: Outbox) -> None:
    huge = kc.Event(kind="test.huge", details={"blob": "x" * (kc.MAX_PAYLOAD_BYTES + 10)})
    with pytest.raises(kc.PayloadTooLargeError):
        outbox.enqueue_one(huge)
    assert outbox.stats().depth == 0 and outbox.last_seq() == 0


def test_killed_agent_turns_offline_through_the_will(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_agent_config(tmp_path / "agent", host=mosquitto.host, port=mosquitto.port)
    agent = AgentProcess(config).start()
    with MqttPeer(mosquitto, "watcher") as watcher:
        watcher.subscribe(kc.status_topic("pos-0001"))
        online = watcher.next_parsed(topic_suffix="/status")
        assert online.body == kc.Status(state=kc.Presence.ONLINE)
        agent.signal(signal.SIGKILL)
        offline = watcher.next_parsed(timeout_s=20, topic_suffix="/status")
        assert offline.body == kc.Status(state=kc.Presence.OFFLINE)
        assert offline.envelope.boot_id == online.envelope.boot_id
    # retained: a newcomer sees offline too
    with MqttPeer(mosquitto, "late") as late:
        late.subscribe(kc.status_topic("pos-0001"))
        _topic, payload, retained = late.next_message()
        assert retained and kc.parse_message(kc.status_topic("pos-0001"), payload).body == kc.Status(
            state=kc.Presence.OFFLINE
        )  # type: ignore[union-attr]


def test_clean_stop_publishes_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_agent_config(tmp_path / "agent", host=mosquitto.host, port=mosquitto.port)
    agent = AgentProcess(config).start()
    with MqttPeer(mosquitto, "watcher") as watcher:
        watcher.subscribe(kc.status_topic("pos-0001"))
        assert watcher.next_parsed(topic_suffix="/status").body == kc.Status(state=kc.Presence.ONLINE)
        assert agent.stop() == 0
        assert watcher.next_parsed(topic_suffix="/status").body == kc.Status(state=kc.Presence.OFFLINE)
