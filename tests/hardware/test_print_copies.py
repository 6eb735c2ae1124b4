"""The print queue copies a job by itself at most once; a copy whose outcome is unknown waits for
a person, who reprints or dismisses it. (The slow and stalled links, and the SIGKILL during a
copy, that make these states for real are in tests/faults/test_slow_printer_link.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import wiring
from agent.hardware.print_queue import PrintQueueError
from agent.schema import MIGRATIONS
from agent.store import Store
from drivers.sim.printer import VirtualPrinter
from tests.faults.serial_line import SerialLine
from tests.hardware.test_agent_hardware import hardware_config, job_state
from tests.support.inprocess import InProcessAgent


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[VirtualPrinter]:
    sim = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    yield sim
    sim.stop()


def test_a_store_from_before_keeps_its_waiting_jobs_in_their_order(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    before = [m for m in MIGRATIONS if m.version < 8]
    with Store.open(path, before) as store, store.transaction() as conn:
        for number, created_at in ((1, 100.0), (2, 50.0)):
            conn.execute(
                "INSERT INTO print_jobs(job_id, printer, kind, data, state, created_at)"
                " VALUES (?, 'front', 'sale', ?, 'queued', ?)",
                (f"job-{number}", b"receipt", created_at),
            )
    with Store.open(path) as store:
        rows = (
            store.read()
            .execute("SELECT job_id, queue_order, automatic FROM print_jobs ORDER BY queue_order")
            .fetchall()
        )
        assert [tuple(row) for row in rows] == [("job-2", 50.0, 0), ("job-1", 100.0, 0)]
        with store.transaction() as conn:
            conn.execute("UPDATE print_jobs SET state = 'needs_attention' WHERE job_id = 'job-1'")


def test_a_copy_cut_short_by_a_crash_waits_for_a_person_who_reprints_or_dismisses(
    tmp_path: Path, printer: VirtualPrinter
) -> None:
    config = hardware_config(tmp_path / "agent", printer)
    first = InProcessAgent(config).start()
    queue = first.agent.component(wiring.HARDWARE).queue
    original = first.call(lambda: first.agent.component(wiring.HARDWARE).test_print())
    first.wait_until(lambda: job_state(first, original) == "printed", 10, "the original printed")
    copy = first.call(lambda: queue.reprint(original))
    first.wait_until(lambda: job_state(first, copy) == "printed", 10, "the reprint printed")
    first.stop()
    with Store.open(tmp_path / "agent" / "state" / "agent.db") as store, store.transaction() as conn:
        conn.execute(
            "UPDATE print_jobs SET state = 'printing' WHERE job_id = ?", (copy,)
        )  # what a power cut mid-copy leaves

    second = InProcessAgent(config).start()
    try:
        queue = second.agent.component(wiring.HARDWARE).queue
        assert job_state(second, copy) == "needs_attention"  # settled at start, before the agent runs
        assert [j.job_id for j in queue.recent() if j.copy_of is not None] == [copy], "a copy of the copy"
        assert queue.waiting("front") == 0
        assert second.agent.component(wiring.HARDWARE).status()["printers"]["front"]["needs_attention"] == 1

        with pytest.raises(PrintQueueError, match="does not wait for a person"):
            queue.dismiss(original)
        with pytest.raises(PrintQueueError, match="no print job nope-nope"):
            queue.dismiss("nope-nope")
        dismissed = second.call(lambda: queue.dismiss(copy[:12]))  # the start of the id, as kassactl lists it
        assert dismissed.state == "failed" and "dismissed by a person" in (dismissed.last_error or "")
        assert second.agent.component(wiring.HARDWARE).status()["printers"]["front"]["needs_attention"] == 0
        assert len(printer.receipts) == 2
    finally:
        second.stop()


def test_a_serial_job_longer_than_the_write_timeout_is_written_whole_once(printer: VirtualPrinter) -> None:
    """The write timeout catches a stalled line, not a long job: it covers each piece of about a
    second of line time. Over the whole job, 120 kB through a line that drains 40 kB/s (the pty
    buffers 20 kB) timed out after 2 s, and the queue sent the whole job again, for ever.
    (A pty wakes its writer only once its buffer is drained: up to 0.5 s here, 2 s allowed.)"""
    from drivers import open_printer

    with SerialLine(printer.host, printer.port or 0, bytes_per_s=40_000) as line:
        serial_printer = open_printer(f"serial://{line.path}?baudrate=9600&flow=none&write_timeout=2")
        try:
            lines = b"".join(b"line %05d of a long receipt\n" % n for n in range(4200))
            data = b"\x1b@" + lines + b"the end\n\x1dV\x00"
            assert len(data) > 20_000 + 2 * 40_000
            result = serial_printer.send_raw(data, "long-job")
        finally:
            serial_printer.close()
    assert result.status_after is not None and result.status_after.can_print, result.status_after
    (receipt,) = printer.wait_for_receipts(1, 30)
    assert "line 04199 of a long receipt\nthe end" in receipt.text


def test_a_job_cut_off_mid_write_is_not_sent_again_unmarked(tmp_path: Path, printer: VirtualPrinter) -> None:
    """The printer stops taking bytes in the middle of a job (paper out with flow control holding
    the line): the write times out with part of the job already sent. Part of it may be on paper,
    so the job is not sent again whole and unmarked: one marked copy prints once the line moves."""
    import asyncio

    from agent.hardware.print_queue import PrintQueue
    from drivers import open_printer

    lines = b"".join(b"line %05d of a long receipt\n" % n for n in range(3000))
    data = b"\x1b@" + lines + b"the end\n\x1dV\x00"  # far more than the pty buffers
    with (
        SerialLine(printer.host, printer.port or 0, bytes_per_s=40_000) as line,
        Store.open(tmp_path / "agent.db") as store,
    ):
        serial_printer = open_printer(
            f"serial://{line.path}?baudrate=115200&flow=none&write_timeout=1&status_timeout=0.5"
        )

        originals: list[str] = []

        def resume_for_the_copy(kind: str, event: dict[str, object]) -> None:
            # The worker announces the copy before it writes it: the line moves again from that
            # moment, so the copy never meets the paused line, however slow this machine is.
            if kind == "print.waiting" and event.get("job_id") not in originals:
                line.resume()

        async def run() -> tuple[str, list[str]]:
            queue = PrintQueue(store, {"front": serial_printer}, poll_s=0.1, on_event=resume_for_the_copy)
            with store.transaction() as conn:
                job = queue.submit(conn, "front", data, kind="sale", ref="sale-1")
            originals.append(job)
            line.pause_after(2000)  # the status query goes through, then the job stops part-way
            queue.start()
            try:
                # "failed" = interrupted, not queued again as it was. The queue's worker records job
                # states in the store and signals nothing a test could await, so these loops poll.
                while queue.get(job).state != "failed":  # noqa: ASYNC110 - PrintQueue has no completion event
                    await asyncio.sleep(0.05)
                copies = [j.job_id for j in queue.recent() if j.copy_of == job]
                while copies and queue.get(copies[0]).state != "printed":  # noqa: ASYNC110 - as above
                    await asyncio.sleep(0.05)
                return job, copies
            finally:
                await queue.stop()
                serial_printer.close()

        job, copies = asyncio.run(asyncio.wait_for(run(), 60))
        failed = PrintQueue(store, {}, 1.0).get(job)
    assert failed is not None and "interrupted while printing" in (failed.last_error or ""), failed
    assert len(copies) == 1, "one automatic copy"
    receipts = printer.wait_for_receipts(1, 30)
    printed = "".join(receipt.text for receipt in receipts)
    assert printed.count("the end") == 1 and printed.count("*** COPY ***") == 1, (
        "the whole job once more, marked; never unmarked"
    )
