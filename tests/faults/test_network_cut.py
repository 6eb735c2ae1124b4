"""The network between the terminal and the broker breaks while the till keeps selling.

The agent talks to Mosquitto through `TcpProxy` (tests/faults/proxy.py), which cuts the
connection cleanly (EOF or reset), leaves it half-open (silent both ways: only the MQTT
keepalive can tell), or lets the agent's sales through while losing everything the broker
sends back (a batch in flight when the cut comes). Sales go on committing locally meanwhile;
after healing the cloud must hold each one exactly once, and the agent must have noticed and
reconnected by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import Mosquitto
from tests.faults.harness import SaleStream
from tests.faults.proxy import TcpProxy
from tests.posapi.support import wait_for
from tests.support.terminal import Terminal, make_terminal

KEEPALIVE_S = 5  # the agent's [mqtt] keepalive_s (its minimum): a silent link shows in ~2 x this
RECONNECT_MAX_S = 1.0
ACK_TIMEOUT_S = 1.0  # short: while acks are lost the agent resends, and the cloud must not double


@pytest.fixture
def network(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Terminal, TcpProxy]]:
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        for terminal in make_terminal(
            tmp_path,
            mosquitto,
            port=proxy.port,
            keepalive_s=KEEPALIVE_S,
            reconnect_max_s=RECONNECT_MAX_S,
            ack_timeout_s=ACK_TIMEOUT_S,
        ):
            terminal.ready_to_sell()
            yield terminal, proxy


def sells_offline(stream: SaleStream, proxy: TcpProxy, count: int) -> int:
    """With the link cut: the agent notices, retries by itself (the proxy refuses it), and the
    till commits `count` more sales meanwhile. Returns how many it sold offline."""
    refused = proxy.stats.refused
    stream.wait_link(False, 10)
    at = stream.sold()
    stream.wait_sold(at + count, what=f"{count} sales committed offline")
    wait_for(lambda: proxy.stats.refused > refused, 10, "the agent trying to reconnect")
    assert not stream.connected()
    return stream.sold() - at


def test_clean_cuts_sales_go_on_offline_and_arrive_once(network: tuple[Terminal, TcpProxy]) -> None:
    terminal, proxy = network
    stream = SaleStream(terminal).start(every_s=0.02)
    offline = 0
    for reset in (False, True):  # the agent reads EOF, then a connection reset
        stream.wait_sold(stream.sold() + 6)
        assert proxy.cut(reset=reset) >= 1, "the agent had no connection to cut"
        offline += sells_offline(stream, proxy, 6)
        proxy.heal()
        stream.wait_link(True, 15)
    stream.wait_sold(stream.sold() + 5)
    stream.stop()
    stream.settle()
    assert not stream.refused and offline >= 12
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()


def test_half_open_link_is_noticed_by_the_keepalive(network: tuple[Terminal, TcpProxy]) -> None:
    terminal, proxy = network
    stream = SaleStream(terminal).start(every_s=0.02)
    stream.wait_sold(6)
    disconnects = stream.agent_log_count("disconnected from broker")
    assert proxy.half_open() >= 1
    at_silence = stream.sold()
    # No FIN, no RST: the agent goes on publishing into the void until its keepalive tells.
    stream.wait_link(False, 6 * KEEPALIVE_S)
    silent_sales = stream.sold() - at_silence
    assert proxy.stats.dropped_bytes > 0, "nothing was sent into the silent connection"
    wait_for(
        lambda: stream.agent_log_count("disconnected from broker") > disconnects,
        10,
        "the agent's log saying it lost the broker",
    )
    proxy.heal()
    stream.wait_link(True, 15)  # by itself: nobody restarted or poked it
    stream.wait_sold(stream.sold() + 5)
    stream.stop()
    stream.settle()
    assert not stream.refused and silent_sales > 0
    stream.expect_cloud_exact()  # including what went into the silent connection
    stream.expect_no_reused_seqs()


def test_cut_with_a_batch_in_flight_doubles_nothing(network: tuple[Terminal, TcpProxy]) -> None:
    """Sales reach the broker and the cloud applies them, but no PUBACK and no down/ack
    gets back to the agent; then the connection is cut. The agent sends them all again."""
    terminal, proxy = network
    stream = SaleStream(terminal).start(every_s=0.02)
    stream.wait_sold(5)
    proxy.cut()
    backlog = sells_offline(stream, proxy, 20)  # after the outage it goes out as up/batch publishes
    link = stream.link()
    acked, batches = link["acked"], link["batches"]
    proxy.lose_acks()
    stream.wait_link(True, 15)
    stream.stop()  # a snapshot: every sale so far must reach the cloud before the next cut
    stream.settle()
    committed = set(stream.committed.values())
    wait_for(lambda: set(stream.cloud_sale_ids()) >= committed, 30, "the backlog applied in the cloud")
    link = stream.link()
    assert link["batches"] > batches, "the backlog should have gone out in up/batch publishes"
    assert link["acked"] == acked, "an ack got through to the agent"
    assert link["outbox_depth"] >= backlog, "the agent should still hold every sale of the backlog"
    assert proxy.stats.dropped_packets > 0
    proxy.cut()  # the batch is in flight: published, applied by the cloud, unacked
    stream.wait_link(False, 10)
    proxy.heal()
    stream.wait_link(True, 15)
    stream.start(every_s=0.02)
    stream.wait_sold(len(committed) + 5)
    stream.stop()
    stream.settle()
    assert not stream.refused
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()
    assert stream.link()["published"] > link["published"], "the agent should have sent the backlog again"
