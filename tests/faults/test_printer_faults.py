"""Printer out of paper, then offline (silent, then refusing connections), then back, while the
till keeps selling.

Printing comes after the commit: a sale never waits for the printer and never fails for it.
Every committed sale's receipt prints once the printer is back, each exactly once; the only
extra receipts allowed are the ones the documented rule makes (a job the printer did not
confirm is printed again marked ``*** COPY ***``, see docs/architecture.md), and each of those
must be a print job the agent recorded as a copy. The cloud ends with exactly the committed sales.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.hardware.print_queue import PrintQueue
from agent.store import Store
from broker.launcher import Mosquitto
from drivers.interfaces import PrintResult
from drivers.status import DeviceStatus, PrinterStatus
from tests.faults.harness import (
    SaleStream,
    copy_reasons,
    expect_copies_bounded,
    expect_store_sound,
    print_queue_idle,
    printed_receipts,
    store_path,
)
from tests.posapi.support import wait_for
from tests.support.terminal import Terminal, make_terminal

PHASE_SALES = 6  # sales committed while the printer is in each bad state


@pytest.fixture
def selling(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Terminal]:
    for terminal in make_terminal(tmp_path, mosquitto):
        terminal.ready_to_sell()
        yield terminal


def printer_status(terminal: Terminal) -> str:
    return terminal.process.client().call("status")["components"]["hardware"]["printers"]["front"]["status"]


def queued(terminal: Terminal) -> int:
    return terminal.process.client().call("status")["components"]["hardware"]["printers"]["front"]["queued"]


def test_paper_out_then_offline_then_back_during_sales(selling: Terminal) -> None:
    printer = selling.printer
    stream = SaleStream(selling).start(every_s=0.05)
    stream.wait_sold(5)
    wait_for(lambda: printer.receipts, 10, "the first receipt")

    outages: list[tuple[str, int, int]] = []  # (fault, sales committed during it, receipts printed during it)

    def outage(name: str, start: Callable[[], None], seen_status: set[str]) -> None:
        start()
        # The agent notices (status poll or a failed job), then sales go on without the printer.
        wait_for(lambda: printer_status(selling) in seen_status, 10, f"the agent to see the printer {name}")
        sold, printed = stream.sold(), len(printer.receipts)
        stream.wait_sold(sold + PHASE_SALES, 20, f"{PHASE_SALES} sales while the printer is {name}")
        wait_for(lambda: queued(selling) >= PHASE_SALES, 10, f"receipts queued while the printer is {name}")
        outages.append((name, stream.sold() - sold, len(printer.receipts) - printed))
        printer.set_paper("ok")
        printer.go_online()
        wait_for(lambda: queued(selling) == 0, 20, f"the receipts queued while {name} to print")

    outage("out of paper", lambda: printer.set_paper("out"), {"paper_out"})
    outage("offline (silent)", lambda: printer.go_offline("silent"), {"offline", "unknown"})
    outage("offline (refusing)", lambda: printer.go_offline("refuse"), {"offline"})

    stream.stop()
    stream.settle()
    assert not stream.refused, f"sales refused because of the printer: {dict(stream.refused)}"
    for name, sold, printed in outages:
        assert sold >= PHASE_SALES and printed == 0, f"while {name}: {sold} sales committed, {printed} receipts printed"

    stream.expect_cloud_exact()
    sales = expect_store_sound(stream)
    wait_for(lambda: print_queue_idle(selling), 20, "the print queue to empty")
    time.sleep(0.3)  # a receipt the printer is still cutting
    printed = printed_receipts(printer)
    assert all(number is not None for number, _ in printed), f"receipts without a receipt number: {printed}"
    originals = Counter(number for number, copy in printed if not copy)
    copies = Counter(number for number, copy in printed if copy)
    expected = set(sales.values())
    assert set(originals) | set(copies) == expected, (
        f"receipts never printed: {sorted(expected - set(originals) - set(copies))}; "
        f"printed but never sold: {sorted((set(originals) | set(copies)) - expected)}"
    )
    twice = {number: count for number, count in originals.items() if count > 1}
    assert not twice, f"receipts printed more than once (not as a marked copy): {twice}"
    # A copy only where the documented rule makes one: a job the printer did not confirm.
    reasons = copy_reasons(store_path(selling))
    # (a copy the printer did not confirm either may not have come out: at most one printed per copy job)
    assert sum(copies.values()) <= len(reasons), f"{sum(copies.values())} copies printed, copy jobs made for: {reasons}"
    assert all(reason.startswith("not confirmed") for reason in reasons), reasons
    expect_copies_bounded(store_path(selling))


class _PaperRanOut:
    """A printer that takes the job, then answers the status query after it with paper out
    (the virtual printer then dropped the job: seen as 1 lost receipt in ~500 sales with the
    paper flipping out and back every few ms)."""

    def render(self, document: object) -> bytes:
        return b"*** COPY ***\n"

    def send_raw(self, data: bytes, job_id: str, *, before_write: Callable[[], None]) -> PrintResult:
        before_write()
        out = PrinterStatus(DeviceStatus.PAPER_OUT, frozenset({DeviceStatus.PAPER_OUT}))
        return PrintResult(job_id, len(data), PrinterStatus(DeviceStatus.READY), out, 0.01)


def test_a_job_the_printer_does_not_confirm_is_printed_again_as_a_copy(tmp_path: Path) -> None:
    """Regression: a job sent while the paper ran out used to be marked printed: its receipt
    was lost. Now it is 'failed' (not confirmed) and a marked copy waits for the printer."""
    with Store.open(tmp_path / "agent.db") as store:
        printer = _PaperRanOut()
        queue = PrintQueue(store, {"front": printer}, poll_s=1.0)  # type: ignore[dict-item]
        with store.transaction() as conn:
            job = queue.submit(conn, "front", b"receipt #1", kind="sale", ref="sale-1")
        assert asyncio.run(queue._print_one(printer, "front", queue.get(job))) is False  # type: ignore[arg-type]
        assert queue.get(job).state == "failed" and "not confirmed" in (queue.get(job).last_error or "")  # type: ignore[union-attr]
        copies = [j for j in queue.recent() if j.copy_of == job]
        assert len(copies) == 1 and copies[0].state == "queued" and copies[0].ref == "sale-1"
