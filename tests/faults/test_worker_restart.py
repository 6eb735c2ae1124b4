"""The cloud's ingest worker killed (SIGKILL) and restarted while the till keeps selling.

The ingest runs as real `kassa-cloud worker` processes. A worker killed between its database
commit and its PUBACK leaves the messages in its broker session: they come back as
duplicates (no second sale) when it returns; one killed before the commit leaves them there
too, or the agent resends them after its ack timeout. Several workers share the ingest
subscription ($share/ingest/...): with one of them dead for good the other must end up with
everything (the dead one's share comes through the agent's resends).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import Mosquitto
from tests.faults.harness import SaleStream
from tests.posapi.support import DEVICE, wait_for
from tests.support.cloud import Cloud
from tests.support.terminal import Terminal, make_terminal


def worker_log(cloud: Cloud, worker_id: str) -> str:
    path = cloud.workdir / f"worker-{worker_id}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def start_workers(cloud: Cloud, *worker_ids: str) -> None:
    """Start worker processes (together: each takes a while to import) and wait until the
    broker confirmed their subscriptions."""
    before = {worker_id: worker_log(cloud, worker_id).count("ingest subscribed") for worker_id in worker_ids}
    processes = {worker_id: cloud.start_worker_process(worker_id) for worker_id in worker_ids}
    for worker_id, process in processes.items():
        wait_for(
            lambda process=process, worker_id=worker_id: (
                process.poll() is not None
                or worker_log(cloud, worker_id).count("ingest subscribed") > before[worker_id]
            ),
            30,
            f"worker {worker_id} subscribed",
        )
        assert process.poll() is None, f"worker {worker_id} exited:\n{worker_log(cloud, worker_id)[-3000:]}"


@pytest.fixture
def selling(tmp_path: Path, mosquitto: Mosquitto, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    mqtt = getattr(request, "param", {})
    for terminal in make_terminal(tmp_path, mosquitto, with_worker=False, **mqtt):
        terminal.ready_to_sell()
        yield terminal


def test_worker_killed_mid_stream_and_restarted(selling: Terminal) -> None:
    cloud = selling.cloud
    start_workers(cloud, "p1")
    stream = SaleStream(selling).start(every_s=0.02)
    for _round in range(2):
        applied = cloud.sales(DEVICE)
        stream.wait_sold(stream.sold() + 6)
        wait_for(lambda applied=applied: cloud.sales(DEVICE) > applied, 20, "the worker applying sales")
        cloud.kill_worker_process("p1")  # SIGKILL, mid-stream
        stream.wait_sold(stream.sold() + 6, what="sales committed while no worker runs")
        start_workers(cloud, "p1")  # same id: its session (and what it had not PUBACKed) is back
    stream.wait_sold(stream.sold() + 5)
    stream.stop()
    stream.settle()
    assert not stream.refused
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()


# Mosquitto (2.0) goes on handing the dead worker its share of the subscription, queued in its
# session: those messages reach the cloud only through the agent's resends, each again with
# one chance in two to land on the dead worker. A short ack timeout keeps that quick here.
@pytest.mark.parametrize("selling", [{"ack_timeout_s": 1.0}], indirect=True)
def test_two_workers_one_killed_for_good(selling: Terminal) -> None:
    cloud = selling.cloud
    start_workers(cloud, "p1", "p2")
    stream = SaleStream(selling).start(every_s=0.02)
    stream.wait_sold(6)
    wait_for(lambda: cloud.sales(DEVICE) > 0, 20, "the workers applying sales")
    cloud.kill_worker_process("p1")  # never comes back
    stream.wait_sold(stream.sold() + 8, what="sales committed with one worker left")
    stream.stop()
    stream.settle()
    assert not stream.refused
    stream.expect_cloud_exact()
    stream.expect_no_reused_seqs()
