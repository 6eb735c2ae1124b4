"""The agent's data directory fills up while the till sells, then space is freed again.

The state directory is a small tmpfs of its own (mounted before the agent starts, unmounted at
the end, also on failure); a ballast file fills it to the last byte mid-stream. Required:

- sales are refused with a clear error: HTTP 503, code `store.disk_full`, a message that says
  nothing was saved and what to do; the control socket's status reports the full disk;
- nothing is corrupted: `PRAGMA integrity_check` passes, every committed sale is in the store
  with its receipt job, none half-written, receipt numbers gap-free;
- the agent keeps running (no crash, no restart), and once the ballast is deleted sales go on
  by themselves and the cloud ends with exactly the committed sales.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ctl_format import status as status_text
from broker.launcher import Mosquitto
from tests.faults.harness import SaleStream, expect_store_sound, store_path
from tests.faults.mounts import fill, mount_tmpfs, unmount
from tests.posapi.support import sale_body, wait_for
from tests.support.terminal import Terminal, make_terminal

DISK = "16m"


@pytest.fixture
def selling(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Terminal]:
    mounted: list[Path] = []

    def small_disk(agent_dir: Path) -> None:
        mounted.append(mount_tmpfs(agent_dir / "state", DISK))

    try:
        for terminal in make_terminal(tmp_path, mosquitto, before_start=small_disk):
            terminal.ready_to_sell()
            yield terminal
    finally:
        for path in mounted:  # after make_terminal killed the agent
            unmount(path)


def store_status(terminal: Terminal) -> dict:
    return terminal.process.client().call("status")["store"]


def sales_without_receipt_job(path: Path) -> list[str]:
    """Half sales: a sale row without the print job of its receipt (they commit together)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT sale_id FROM sales s WHERE NOT EXISTS"
            " (SELECT 1 FROM print_jobs j WHERE j.job_id = s.print_job_id AND j.ref = s.sale_id)"
        )
        return [str(row[0]) for row in rows]
    finally:
        conn.close()


def test_disk_full_refuses_sales_clearly_and_recovers(selling: Terminal) -> None:
    state, cloud = selling.state_dir, selling.cloud
    stream = SaleStream(selling).start(every_s=0.05)
    stream.wait_sold(10)
    # The cloud's acks wait a moment, so that they arrive while the disk is full: the agent
    # cannot delete the acked rows from its outbox then, and must still do it later by itself.
    cloud.workers["w1"].stop()
    stream.wait_sold(stream.sold() + 5, what="sales the cloud has not acked yet")

    ballast = fill(state)
    wait_for(lambda: stream.refused["store.disk_full"] >= 3, 20, "sales refused for the full disk")
    cloud.start_worker("w1")
    wait_for(
        lambda: set(stream.cloud_sale_ids()) >= set(stream.committed.values()),
        20,
        "the cloud to get the sales before the disk filled",
    )
    stream.stop()
    before = stream.sold()

    # One refusal looked at closely: what the POS and the cashier see.
    reply = stream.pos().request("POST", "/v1/sales", sale_body())
    assert reply.status_code == 503, (reply.status_code, reply.text)
    error = reply.json()["error"]
    assert error["code"] == "store.disk_full", error
    assert all(words in error["message"] for words in ("disk is full", "not saved", "free space")), error
    status = selling.process.client().call("status")
    assert status["store"]["disk_full"] is True and "disk is full" in (status["store"]["problem"] or ""), status[
        "store"
    ]
    assert "DISK FULL" in status_text(status), status_text(status)  # kassactl status
    assert selling.process.process.poll() is None, "the agent died of the full disk"
    assert set(stream.refused) == {"store.disk_full"}, dict(stream.refused)

    # Nothing half-written while the disk is full.
    expect_store_sound(stream, "(disk full)")
    assert not sales_without_receipt_job(store_path(selling))

    # Space comes back: the same agent sells again, and empties its outbox, by itself.
    ballast.unlink()
    stream.start(every_s=0.05)
    stream.wait_sold(before + 10, 30, "sales after the disk has room again")
    stream.stop()
    stream.settle()
    assert selling.process.process.poll() is None, "the agent restarted"
    wait_for(lambda: not store_status(selling)["disk_full"], 10, "the status to stop reporting a full disk")
    # The log says so once, not once a second while it lasts, and says when it is over.
    log = selling.process.log()
    assert log.count("outbox drain paused") <= 1 and log.count("print queue paused") <= 1 and "Traceback" not in log, (
        log[-4000:]
    )
    assert "outbox drain works again" in log or "outbox drain paused" not in log, log[-4000:]
    stream.expect_cloud_exact(timeout_s=30)
    expect_store_sound(stream, "(after the disk full)")
    assert not sales_without_receipt_job(store_path(selling))
