"""Every committed message reaches the cloud exactly once, whatever happens in between.

Real Mosquitto, real ingest workers, real agent (in-process or as a process).
"""

from __future__ import annotations

import itertools
import logging
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cloud.outbox import Outbox
from agent.store import Store
from broker import contract as kc
from broker.launcher import Mosquitto
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.inprocess import InProcessAgent
from tests.support.sales import make_sale

DEVICE = "pos-0001"
pytestmark = pytest.mark.slow


@pytest.fixture
def cloud(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Cloud]:
    running = Cloud(tmp_path / "cloud", mosquitto)
    try:
        yield running
    finally:
        running.stop()


def agent_config(tmp_path: Path, broker: Mosquitto, **mqtt: object) -> Path:
    # a short ack timeout: messages published while no worker listened are resent soon
    mqtt.setdefault("ack_timeout_s", 3.0)
    return write_agent_config(tmp_path / "agent", device_id=DEVICE, host=broker.host, port=broker.port, **mqtt)


def enqueue_sales(agent: InProcessAgent, first: int, count: int, per_transaction: int = 1) -> None:
    outbox = agent.cloud.outbox
    for start in range(first, first + count, per_transaction):
        with outbox.store.transaction() as conn:
            for receipt in range(start, min(start + per_transaction, first + count)):
                outbox.enqueue(conn, make_sale(receipt))


def assert_exactly_once(cloud: Cloud, sales: int) -> None:
    # the device also sends state reports (on each connect), so seqs run past the sales
    seqs = cloud.seqs(DEVICE)
    assert seqs == list(range(1, len(seqs) + 1)), "each seq applied once, none missing"
    assert cloud.sales(DEVICE) == sales
    assert cloud.high_water(DEVICE) == len(seqs)
    assert cloud.open_gaps(DEVICE) == 0


@pytest.mark.parametrize("batch_max_messages", [50, 1], ids=["batched", "one-per-publish"])
def test_1000_enqueued_while_broker_down_all_arrive_once(
    tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud, batch_max_messages: int
) -> None:
    mosquitto.stop()
    agent = InProcessAgent(agent_config(tmp_path, mosquitto, batch_max_messages=batch_max_messages)).start()
    try:
        enqueue_sales(agent, 1, 1000)
        assert agent.cloud.outbox.stats().depth == 1000
        assert not agent.cloud.mqtt.connected
        mosquitto.start()
        cloud.start_worker("w1")
        cloud.wait_sales(DEVICE, 1000, 60)
        agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 30, "outbox empty")
        assert_exactly_once(cloud, 1000)
        if batch_max_messages > 1:  # the backlog went out in up/batch publishes of up to 50
            assert 1000 / batch_max_messages <= agent.cloud.batches < 1000
        else:
            assert agent.cloud.batches == 0
    finally:
        agent.stop()


def test_a_drained_backlog_ends_with_one_summary_line(
    tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    mosquitto.stop()
    with caplog.at_level(logging.INFO, logger="agent.cloud.link"):
        agent = InProcessAgent(agent_config(tmp_path, mosquitto)).start()
        try:
            enqueue_sales(agent, 1, 300, per_transaction=50)
            mosquitto.start()
            cloud.start_worker("w1")
            cloud.wait_sales(DEVICE, 300, 60)
            agent.wait_until(
                lambda: any(r.getMessage().startswith("outbox drained:") for r in caplog.records), 30, "the summary"
            )
            enqueue_sales(agent, 301, 1)  # one sale afterwards: sent at once, no summary
            cloud.wait_sales(DEVICE, 301, 30)
            agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 30, "outbox empty")
        finally:
            agent.stop()
    summaries = [r for r in caplog.records if r.getMessage().startswith("outbox drained:")]
    assert len(summaries) == 1
    assert summaries[0].messages >= 300  # the sales, and the state reports sent on connect
    assert (
        summaries[0].getMessage() == f"outbox drained: {summaries[0].messages} messages in {summaries[0].seconds:.1f} s"
    )


def test_broker_killed_three_times_during_5000_stream(tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud) -> None:
    cloud.start_worker("w1")
    agent = InProcessAgent(agent_config(tmp_path, mosquitto)).start()
    producer = threading.Thread(target=enqueue_sales, args=(agent, 1, 5000, 10))
    try:
        agent.wait_until(lambda: agent.cloud.mqtt.subscribed, 20, "connected")
        producer.start()
        for kill in range(3):
            # let some traffic through, then pull the plug (SIGKILL: nothing saved)
            target = 1000 * (kill + 1)
            cloud.wait_sales(DEVICE, target, 60)
            # Each kill must hit a live connection: the worker can reach the next target from
            # messages it already held while the agent is still waiting to reconnect.
            agent.wait_until(
                lambda kill=kill: agent.cloud.mqtt.connects > kill and agent.cloud.mqtt.subscribed,
                30,
                f"connection {kill + 1}",
            )
            mosquitto.restart(hard=True)
        producer.join(60)
        cloud.wait_sales(DEVICE, 5000, 120)
        agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 60, "outbox empty")
        assert_exactly_once(cloud, 5000)
        assert agent.cloud.mqtt.connects >= 4
    finally:
        producer.join(60)
        agent.stop()


def test_agent_sigkilled_mid_drain_loses_nothing(tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud) -> None:
    config = agent_config(tmp_path, mosquitto)
    store = Store.open(tmp_path / "agent" / "state" / "agent.db")
    outbox = Outbox(store, DEVICE, kc.uuid7(), lambda: True)
    for start in range(1, 3001, 100):
        with store.transaction() as conn:
            for receipt in range(start, start + 100):
                outbox.enqueue(conn, make_sale(receipt))
    store.close()
    cloud.start_worker("w1")
    agent = AgentProcess(config).start()
    try:
        cloud.wait_sales(DEVICE, 300, 60)
        agent.signal(signal.SIGKILL)
        assert agent.process is not None and agent.process.wait(10) == -signal.SIGKILL
        assert cloud.sales(DEVICE) < 3000, "killed mid-drain"
        agent.start()
        cloud.wait_sales(DEVICE, 3000, 90)
        deadline = time.monotonic() + 30
        while agent.client().call("status")["components"]["cloud"]["outbox_depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.client().call("status")["components"]["cloud"]["outbox_depth"] == 0
        assert agent.stop() == 0
        assert_exactly_once(cloud, 3000)
    finally:
        agent.kill()


def test_outbox_keeps_everything_while_the_worker_is_down(tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud) -> None:
    cloud.start_worker_process("p1")
    agent = InProcessAgent(agent_config(tmp_path, mosquitto)).start()
    try:
        agent.wait_until(lambda: agent.cloud.mqtt.subscribed, 20, "connected")
        enqueue_sales(agent, 1, 50)
        cloud.wait_sales(DEVICE, 50, 30)
        agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 20, "first batch acked")
        cloud.kill_worker_process("p1")
        enqueue_sales(agent, 51, 200)
        # with no acks coming back every new message stays in flight
        agent.wait_until(lambda: agent.cloud.status()["in_flight"] == 200, 20, "all 200 published, none acked")
        time.sleep(1.0)  # acks would have arrived by now if anyone were acking
        assert agent.cloud.outbox.stats().depth == 200, "nothing deleted without the cloud's ack"
        cloud.start_worker_process("p1")
        cloud.wait_sales(DEVICE, 250, 60)
        agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 30, "outbox empty after the worker's acks")
        assert_exactly_once(cloud, 250)
    finally:
        agent.stop()


def test_two_workers_share_the_stream_and_apply_each_once(tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud) -> None:
    first, second = cloud.start_worker("w1"), cloud.start_worker("w2")
    agent = InProcessAgent(agent_config(tmp_path, mosquitto)).start()
    try:
        agent.wait_until(lambda: agent.cloud.mqtt.subscribed, 20, "connected")
        enqueue_sales(agent, 1, 2000, per_transaction=20)
        cloud.wait_sales(DEVICE, 2000, 60)
        agent.wait_until(lambda: agent.cloud.outbox.stats().depth == 0, 30, "outbox empty")
        assert_exactly_once(cloud, 2000)
        applied = [first.stats().applied, second.stats().applied]
        assert sum(applied) == cloud.applied(DEVICE) and min(applied) > 0, f"both workers took a share: {applied}"
    finally:
        agent.stop()


def test_a_cloud_that_ignores_batches_still_gets_every_message(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Resends after the ack timeout go one per publish, so a cloud that cannot read up/batch
    (an older one, or a bug) still receives and acks every row."""
    from tests.support.mqtt_peer import MqttPeer

    mosquitto.stop()
    agent = InProcessAgent(agent_config(tmp_path, mosquitto, ack_timeout_s=1.0)).start()
    peer = None
    try:
        enqueue_sales(agent, 1, 30, per_transaction=30)
        mosquitto.start()
        peer = MqttPeer(mosquitto, "old-cloud", unbatch=False)
        peer.subscribe(f"kassa/v1/dev/{DEVICE}/up/#")
        sales: set = set()
        deadline = time.monotonic() + 30
        # ack whatever comes singly (sales and the state report) until the outbox is empty
        while agent.cloud.outbox.stats().depth and time.monotonic() < deadline:
            try:
                topic, payload, _ = peer.next_message(timeout_s=3)
            except queue.Empty:  # nothing in flight right now; look at the depth again
                continue
            if topic.endswith("/up/batch"):
                continue  # not understood: no ack
            parsed = kc.parse_message(topic, payload)
            assert isinstance(parsed, kc.Parsed), parsed
            peer.send(kc.down_message(kc.Ack(acked_ids=[parsed.envelope.id]), device_id=DEVICE))
            if parsed.type is kc.MessageType.SALE:
                sales.add(parsed.body.receipt_no)
        # The agent sent batches (the peer sees them only if it subscribed before the first one
        # went out: the agent reconnects on its own schedule), and no batch was ever acked.
        assert sales == set(range(1, 31)) and agent.cloud.batches >= 1
        assert agent.cloud.outbox.stats().depth == 0 and agent.cloud.resent >= 30
    finally:
        if peer is not None:
            peer.close()
        agent.stop()


def test_a_message_the_cloud_never_acks_is_resent_less_and_less_often(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A slow cloud is not buried in copies: each resend of the same message waits about twice
    as long as the one before (jittered, capped at 8 ack timeouts); an ack still settles it."""
    from tests.support.mqtt_peer import MqttPeer

    peer = MqttPeer(mosquitto, "slow-cloud")
    peer.subscribe(f"kassa/v1/dev/{DEVICE}/up/#")
    agent = InProcessAgent(agent_config(tmp_path, mosquitto, ack_timeout_s=1.0)).start()
    try:
        enqueue_sales(agent, 1, 1)
        copies: list[float] = []
        seen: set = set()
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            try:
                topic, payload, _ = peer.next_message(timeout_s=0.5)
            except queue.Empty:
                continue
            parsed = kc.parse_message(topic, payload)
            assert isinstance(parsed, kc.Parsed), parsed
            seen.add(parsed.envelope.id)
            if parsed.type is kc.MessageType.SALE:
                copies.append(time.monotonic())
        gaps = [later - earlier for earlier, later in itertools.pairwise(copies)]
        # fixed resends every ack timeout would be about 12 copies; doubling gives 1 + 1 + 2 + 4 (+ jitter)
        assert 3 <= len(copies) <= 5, gaps
        assert gaps[-1] > 2 * gaps[0], gaps
        assert agent.cloud.resent >= len(copies) - 1  # the state report is resent too
        peer.send(kc.down_message(kc.Ack(acked_ids=sorted(seen)), device_id=DEVICE))  # the sale and the state report
        deadline = time.monotonic() + 10
        while agent.cloud.outbox.stats().depth and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.cloud.outbox.stats().depth == 0
    finally:
        peer.close()
        agent.stop()
