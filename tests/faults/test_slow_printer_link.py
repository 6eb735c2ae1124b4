"""A slow link between the agent and its printer (issue #17): a serial printer at 9600 baud, a
printer behind a slow network bridge or serial adapter.

After a job the agent asks the printer for its status, and the answer queues behind the job's
bytes. On a slow link it came after the 0.5 s status timeout, was taken for silence, and the job
was printed again as a copy, just as slowly, for ever: through 1 kB/s, 3 sales made 15 receipts
in 20 s (12 of them copies) and counting. Now the wait covers the bytes still on their way at
the link's speed; the agent copies a receipt by itself at most once; a copy that cannot be
confirmed either (or that a crash cut short) waits for a person.

The links are real: a TCP proxy that forwards at 1 kB/s and stalls on command
(tests/faults/proxy.py), a pseudo-terminal drained at 960 B/s = 9600 baud 8N1
(tests/faults/serial_line.py). Verdicts come from what the virtual printer printed and what
the agent's store recorded; waits are generous and no verdict depends on how fast the machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from broker.launcher import Mosquitto
from drivers import ConfigError, open_printer
from drivers.sim.printer import VirtualPrinter
from tests.faults.harness import (
    COPY_MARK,
    SaleStream,
    print_jobs,
    print_queue_idle,
    printed_receipts,
    store_path,
    stored_sales,
)
from tests.faults.proxy import TcpProxy
from tests.faults.serial_line import SerialLine
from tests.posapi.support import api_url, wait_for
from tests.support.agent_process import REPO_ROOT
from tests.support.terminal import Terminal, make_terminal

TCP_BYTES_PER_S = 1000  # the slow network link
SERIAL_BYTES_PER_S = 960  # 9600 baud, 8N1: 10 bits a byte
STATUS_TIMEOUT_S = 0.5  # the printer's default
SALES = 5
STALL_AFTER = 64  # bytes of a job that pass before the link stalls: past the 9-byte status query
QUEUE_IDLE_S = 120  # a few receipts at 1 kB/s take seconds; a loaded machine gets far more


def _terminal_behind(tmp_path: Path, mosquitto: Mosquitto, link: Any) -> Iterator[Terminal]:
    for terminal in make_terminal(tmp_path, mosquitto, printer_link=link):
        terminal.ready_to_sell()
        yield terminal


@pytest.fixture
def tcp_link(
    tmp_path: Path, mosquitto: Mosquitto, request: pytest.FixtureRequest
) -> Iterator[tuple[Terminal, TcpProxy]]:
    """The printer behind a 1 kB/s TCP link; `request.param` adds printer URL options."""
    query = getattr(request, "param", "")
    proxies: list[TcpProxy] = []

    def link(printer: VirtualPrinter) -> str:
        proxies.append(TcpProxy(printer.host, printer.port or 0, mqtt=False, bytes_per_s=TCP_BYTES_PER_S).start())
        return f"tcp://{proxies[0].host}:{proxies[0].port}{query}"

    try:
        for terminal in _terminal_behind(tmp_path, mosquitto, link):
            yield terminal, proxies[0]
    finally:
        for proxy in proxies:
            proxy.close()


@pytest.fixture
def serial_link(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Terminal]:
    """The printer on a 9600-baud serial line (flow control none: a pty has no modem lines)."""
    lines: list[SerialLine] = []

    def link(printer: VirtualPrinter) -> str:
        lines.append(SerialLine(printer.host, printer.port or 0, bytes_per_s=SERIAL_BYTES_PER_S).start())
        return f"serial://{lines[0].path}?baudrate=9600&flow=none"

    try:
        yield from _terminal_behind(tmp_path, mosquitto, link)
    finally:
        for line in lines:
            line.stop()


# ------------------------------------------------------------------------------ what happened
def jobs(terminal: Terminal) -> list[dict[str, Any]]:
    return print_jobs(store_path(terminal))


def job_of_sale(terminal: Terminal, sale_id: str) -> dict[str, Any]:
    return next(job for job in jobs(terminal) if job["ref"] == sale_id and job["copy_of"] is None)


def copies_of(terminal: Terminal, job_id: str) -> list[dict[str, Any]]:
    return [job for job in jobs(terminal) if job["copy_of"] == job_id]


def state(terminal: Terminal, job_id: str) -> str:
    return next(job["state"] for job in jobs(terminal) if job["job_id"] == job_id)


def sell(stream: SaleStream, count: int = 1) -> list[str]:
    """Sales committed now (receipts queued behind whatever the link still carries)."""
    for _ in range(count):
        assert stream.sell() == "committed", f"a sale was not committed: {dict(stream.refused)}"
    return list(stream.committed.values())[-count:]


def printed_per_receipt(terminal: Terminal) -> tuple[Counter[int], Counter[int]]:
    """(originals, marked copies) the virtual printer printed, per receipt number."""
    printed = printed_receipts(terminal.printer)
    assert all(number is not None for number, _ in printed), f"a receipt without its number: {printed}"
    return Counter(n for n, copy in printed if not copy), Counter(n for n, copy in printed if copy)


def expect_each_receipt_once_without_copies(terminal: Terminal, bytes_per_s: float) -> None:
    wait_for(lambda: print_queue_idle(terminal), QUEUE_IDLE_S, "every receipt to cross the slow link")
    numbers = sorted(stored_sales(store_path(terminal)).values())
    originals, copies = printed_per_receipt(terminal)
    assert not copies, f"marked copies printed through a link that only was slow: {dict(copies)}"
    assert sorted(originals.elements()) == numbers, f"printed {dict(originals)}, sold receipts {numbers}"
    made = [job for job in jobs(terminal) if job["copy_of"] or job["state"] != "printed"]
    assert not made, f"print jobs other than printed originals: {made}"
    # the link was slow enough to matter: each receipt needed longer than the status timeout to cross
    shortest = min(len(receipt.raw) for receipt in terminal.printer.receipts)
    assert shortest / bytes_per_s > STATUS_TIMEOUT_S, f"receipts of {shortest} bytes cross too fast to show anything"


# ------------------------------------------------------------------------------ the rule
def test_the_wait_after_a_job_covers_its_bytes_at_the_links_speed() -> None:
    assert open_printer("serial:///dev/ttyS9?baudrate=9600").link_bytes_per_s == 960  # 8N1: 10 bits a byte
    assert open_printer("serial:///dev/ttyS9?baudrate=19200&parity=E").link_bytes_per_s == pytest.approx(19200 / 11)
    assert open_printer("tcp://127.0.0.1:9").link_bytes_per_s == 960  # not known: the slowest common link
    printer = open_printer("tcp://127.0.0.1:9?link_bytes_per_s=100&status_timeout=0.5")  # opening is lazy
    started = time.monotonic()
    wait = printer.confirmation_wait(1000, started)
    assert 0.5 + 20 - (time.monotonic() - started) <= wait <= 0.5 + 20  # twice 1000 bytes at 100 B/s, from the write
    assert printer.confirmation_wait(1000, started - 3600) == 0.5  # bytes long gone: the plain status timeout
    with pytest.raises(ConfigError, match="link_bytes_per_s must be > 0"):
        open_printer("tcp://127.0.0.1:9?link_bytes_per_s=0")


# ------------------------------------------------------------------------------ slow, not stalled
def test_each_receipt_prints_once_through_a_1_kb_per_s_link(tcp_link: tuple[Terminal, TcpProxy]) -> None:
    terminal, _proxy = tcp_link
    sell(SaleStream(terminal), SALES)
    expect_each_receipt_once_without_copies(terminal, TCP_BYTES_PER_S)


def test_each_receipt_prints_once_through_a_9600_baud_serial_line(serial_link: Terminal) -> None:
    sell(SaleStream(serial_link), SALES)
    expect_each_receipt_once_without_copies(serial_link, SERIAL_BYTES_PER_S)


# ------------------------------------------------------------------------------ stalled
@contextmanager
def needs_attention_events(terminal: Terminal) -> Iterator[Any]:
    """The POS API's event stream, narrowed to print jobs that wait for a person."""
    with connect(api_url(terminal.socket).replace("http://", "ws://") + "/v1/events") as ws:
        ws.send(json.dumps({"token": terminal.pos_token, "kinds": ["print.needs_attention"]}))
        assert json.loads(ws.recv(10))["kind"] == "hello"
        yield ws


def kassactl(terminal: Terminal, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "agent.ctl", "--socket", str(terminal.socket), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_stalled_link_makes_at_most_one_marked_copy_per_sale(tcp_link: tuple[Terminal, TcpProxy]) -> None:
    terminal, proxy = tcp_link
    stream = SaleStream(terminal)
    (first,) = sell(stream)
    wait_for(lambda: print_queue_idle(terminal), QUEUE_IDLE_S, "the first receipt")

    with needs_attention_events(terminal) as events:
        # The link stalls in the middle of a receipt, for longer than any wait: unconfirmed.
        proxy.pause_after(STALL_AFTER)
        (stalled,) = sell(stream)
        assert proxy.wait_paused(60), "the receipt never crossed the link"
        # Armed now, while the link is stalled: the copy's connection may open before the link is
        # back, and pause_after counts only connections opened after it is armed.
        proxy.pause_after(STALL_AFTER)
        original = job_of_sale(terminal, stalled)
        wait_for(
            lambda: state(terminal, original["job_id"]) == "failed", 60, "the stalled receipt to count as unconfirmed"
        )
        (copy,) = copies_of(terminal, original["job_id"])
        assert copy["automatic"] == 1 and copy["state"] in ("queued", "printing"), copy
        later = sell(stream, 2)  # queued behind, while nothing gets through

        # Back for a moment, then stalled again in the middle of the next job sent: the copy.
        proxy.resume()
        assert proxy.wait_paused(60), "the copy never crossed the link"
        wait_for(
            lambda: state(terminal, copy["job_id"]) == "needs_attention",
            60,
            "the unconfirmed copy to wait for a person",
        )
        # it went ahead of the receipts queued after its original: those were not sent yet
        assert [job_of_sale(terminal, sale)["state"] for sale in later] == ["queued", "queued"], jobs(terminal)
        assert [c["job_id"] for c in copies_of(terminal, original["job_id"])] == [copy["job_id"]], (
            "a second automatic copy"
        )
        assert not copies_of(terminal, copy["job_id"]), "a copy of a copy"
        event = json.loads(events.recv(30))
        assert (event["kind"], event["job_id"], event["ref"]) == ("print.needs_attention", copy["job_id"], stalled), (
            event
        )
    listing = kassactl(terminal, "print", "jobs")
    assert listing.splitlines()[0].startswith(copy["job_id"][:12]) and "needs_attention" in listing, listing
    assert "need a person" in terminal.process.client().call("status")["components"]["hardware"]["summary"]

    # The link heals: what was on its way arrives (the stalled original and its copy), the
    # receipts queued behind print, and nothing more is copied.
    proxy.resume()
    wait_for(lambda: print_queue_idle(terminal), QUEUE_IDLE_S, "the receipts queued behind the stall")
    terminal.printer.wait_for_receipts(5, QUEUE_IDLE_S)
    receipt_no = stored_sales(store_path(terminal))
    originals, copies = printed_per_receipt(terminal)
    assert all(originals[receipt_no[sale]] == 1 for sale in (first, stalled, *later)), dict(originals)
    assert dict(copies) == {receipt_no[stalled]: 1}, f"marked copies per receipt: {dict(copies)}"

    # Only a person prints it again: the cashier's reprint on the POS screen prints one more
    # marked copy, and the job no longer waits.
    reply = stream.pos().request("POST", f"/v1/sales/{stalled}/reprint")
    assert reply.status_code == 200, reply.text
    reprint = reply.json()["job_id"]
    wait_for(lambda: state(terminal, reprint) == "printed", QUEUE_IDLE_S, "the person's reprint")
    assert state(terminal, copy["job_id"]) == "failed"
    assert (
        terminal.process.client().call("status")["components"]["hardware"]["printers"]["front"]["needs_attention"] == 0
    )
    assert sum(COPY_MARK in receipt.text for receipt in terminal.printer.receipts) == 2


@pytest.mark.parametrize("tcp_link", ["?link_bytes_per_s=20"], indirect=True)  # waits ~80 s for a stalled job's answer
def test_a_kill_while_a_copy_prints_leaves_no_copy_of_the_copy(tcp_link: tuple[Terminal, TcpProxy]) -> None:
    terminal, proxy = tcp_link

    def kill_while_printing(job_id: str, what: str) -> None:
        assert proxy.wait_paused(60), f"{what} never crossed the link"
        # the agent waits for that job's answer for a minute and more (link_bytes_per_s=20): time to see it
        wait_for(lambda: state(terminal, job_id) == "printing", 30, f"{what} marked printing")
        terminal.process.kill()

    proxy.pause_after(STALL_AFTER)
    (sale,) = sell(SaleStream(terminal))
    original = job_of_sale(terminal, sale)
    kill_while_printing(original["job_id"], "the receipt")
    proxy.resume()  # what the dead agent had sent still arrives, as the kernel would deliver it
    terminal.printer.wait_for_receipts(1, 60)

    proxy.pause_after(STALL_AFTER)
    terminal.restart()  # the interrupted original is printed again as one automatic copy ...
    (copy,) = wait_for(lambda: copies_of(terminal, original["job_id"]), 30, "the automatic copy")
    kill_while_printing(copy["job_id"], "the copy")  # ... and the agent dies while it prints
    proxy.resume()
    terminal.printer.wait_for_receipts(2, 60)

    terminal.restart()
    wait_for(
        lambda: state(terminal, copy["job_id"]) == "needs_attention", 30, "the interrupted copy to wait for a person"
    )
    assert state(terminal, original["job_id"]) == "failed"
    assert [c["job_id"] for c in copies_of(terminal, original["job_id"])] == [copy["job_id"]], jobs(terminal)
    assert not copies_of(terminal, copy["job_id"]), "a copy of a copy"
    assert print_queue_idle(terminal), jobs(terminal)
    originals, copies = printed_per_receipt(terminal)
    assert (sum(originals.values()), sum(copies.values())) == (1, 1), (dict(originals), dict(copies))
