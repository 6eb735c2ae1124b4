"""Broker killed and restarted while the till keeps selling.

Three ways a broker goes away: killed and back at once (the agent's session survives in the
broker's persistence file), down for longer than the agent's reconnect cap while the till
keeps selling offline, and back without its persistence (sessions, subscriptions and
retained documents gone). Each time the cloud must end with exactly the sales the till
confirmed, and the agent must get there by itself.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cloud.outbox import Outbox
from agent.store import Store
from broker import contract as kc
from broker.launcher import Mosquitto
from tests.faults.harness import SaleStream
from tests.posapi.support import push_roster_and_lease, wait_for
from tests.support.mqtt_peer import MqttPeer
from tests.support.terminal import Terminal, make_terminal

RECONNECT_MAX_S = 1.0  # the agent's [mqtt] reconnect_max_s here; the long outage outlasts it
# A message published while no ingest worker is subscribed (a broker that lost its sessions)
# comes back through the agent's ack-timeout resend: keep that short here.
ACK_TIMEOUT_S = 1.0


@pytest.fixture
def selling(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Terminal]:
    for terminal in make_terminal(tmp_path, mosquitto, reconnect_max_s=RECONNECT_MAX_S, ack_timeout_s=ACK_TIMEOUT_S):
        terminal.ready_to_sell()
        yield terminal


def test_broker_kill_and_restart_during_sales(selling: Terminal) -> None:
    """A crash: SIGKILL, back at once. (Mosquitto saves its state only on a clean stop or an
    autosave, so what it held in memory is gone.)"""
    stream = SaleStream(selling).start(every_s=0.02)
    stream.wait_sold(6)
    connects = stream.agent_log_count("connected to broker")
    selling.mosquitto.restart(hard=True)
    wait_for(lambda: stream.agent_log_count("connected to broker") > connects, 20, "the agent to reconnect by itself")
    stream.wait_sold(stream.sold() + 6)  # and the till goes on selling
    stream.stop()
    stream.settle()
    assert not stream.refused
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()


def test_broker_down_longer_than_reconnect_cap_sales_go_on_offline(selling: Terminal) -> None:
    """Stopped (it saves the sessions), down for several of the agent's reconnect caps while
    the till sells offline, then back with its persistence: the agent's session with it."""
    stream = SaleStream(selling).start(every_s=0.02)
    stream.wait_sold(6)
    kept_sessions = stream.agent_log_count("session_present=True")
    selling.mosquitto.stop()
    stream.wait_link(False, 10)
    at_stop = stream.sold()
    down_until = time.monotonic() + 3 * RECONNECT_MAX_S  # the agent retries with capped backoff meanwhile
    stream.wait_sold(at_stop + 6, what="sales committed while the broker is down")
    time.sleep(max(0.0, down_until - time.monotonic()))
    assert not stream.connected(), "the agent says it is connected to a broker that is not running"
    offline = stream.sold() - at_stop
    assert stream.link()["outbox_depth"] >= offline, "sales made offline must wait in the outbox"
    selling.mosquitto.start()
    stream.wait_link(True, 20)
    wait_for(
        lambda: stream.agent_log_count("session_present=True") > kept_sessions,
        10,
        "a reconnect to the agent's restored session",
    )
    stream.wait_sold(stream.sold() + 6)
    stream.stop()
    stream.settle()
    assert not stream.refused and offline >= 6
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()


def test_broker_restart_that_lost_its_persistence(selling: Terminal) -> None:
    """Sessions, the agent's subscription and the retained roster/lease are all gone: the
    agent must subscribe again on its own (acks reach it only through that subscription)."""
    stream = SaleStream(selling).start(every_s=0.02)
    stream.wait_sold(6)
    sessionless = stream.agent_log_count("session_present=False")
    broker = selling.mosquitto
    broker.stop()  # saves sessions and retained documents ...
    assert any(broker.persistence_dir.iterdir()), "the broker saved nothing to lose"
    shutil.rmtree(broker.persistence_dir)  # ... which are lost: a fresh broker on the same port
    stream.wait_link(False, 10)
    stream.wait_sold(stream.sold() + 5, what="sales committed while the broker is down")
    broker.start()
    assert not any(broker.persistence_dir.iterdir()), "the new broker should start empty"
    stream.wait_link(True, 20)
    wait_for(
        lambda: stream.agent_log_count("session_present=False") > sessionless, 10, "a reconnect that found no session"
    )
    stream.wait_sold(stream.sold() + 6)  # retained roster and lease gone: the till still sells
    stream.stop()
    stream.settle()
    assert not stream.refused
    stream.expect_cloud_exact()  # the outbox drains only if down/ack reaches the agent again
    stream.expect_no_reused_seqs()
    # A push after the loss arrives too: the agent's down/# subscription is back.
    with MqttPeer(broker, "test-cloud-pushes-after-loss") as peer:
        push_roster_and_lease(peer, selling.state_dir, version=2)
        wait_for(lambda: selling.roster_version() >= 2, 20, "the roster pushed after the broker lost its sessions")


def test_outbox_never_reuses_a_seq_settled_out_of_order(tmp_path: Path) -> None:
    """Regression (found by the restart tests): after a reconnect the cloud may ack a newer
    message before an older one. The next message took max(seq in outbox) + 1, a seq already
    used, which lay behind the drain's cursor: the sale stayed in the outbox, unsent, for as
    long as the connection lasted."""
    store = Store.open(tmp_path / "agent.db")
    try:
        outbox = Outbox(store, "pos-0001", kc.uuid7(), lambda: True)
        rows = [outbox.enqueue_one(kc.Event(kind="test.note", details={"n": n})) for n in range(3)]
        outbox.settle([(rows[2].seq, rows[2].message_id)])  # the newest acked first
        assert outbox.enqueue_one(kc.Event(kind="test.note", details={"n": 3})).seq == rows[2].seq + 1
        assert outbox.last_seq() == rows[2].seq + 1
    finally:
        store.close()
