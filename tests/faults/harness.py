"""The fault matrix's yardstick: a stream of real sales through the POS API, and the check that
the cloud ends with exactly the sales the agent confirmed — none lost, none doubled.

A sale is *committed* once the agent answered 201/200 with a sale id. A request whose answer
never came (the agent was killed, the connection dropped) is *uncertain*: it may or may not
have been committed. `settle()` resends each uncertain request with its own request id once the
agent is back; the agent's idempotency turns that into the original sale or a first one, never a
second. A definite refusal (an error code) is booked with its code and never counted as sold.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from agent.ctl_client import ControlError
from cloud_api.reports.models import SaleRecord
from drivers.sim.printer import VirtualPrinter
from tests.posapi.support import DEVICE, Pos, sale_body, wait_for
from tests.support.terminal import Terminal


@dataclass
class SaleStream:
    terminal: Terminal
    cashier: str = "anna"
    committed: dict[str, str] = field(default_factory=dict)  # request id -> sale id
    uncertain: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> body
    refused: Counter[str] = field(default_factory=Counter)  # error code -> count
    _pos: Pos | None = None
    retry_s: float = 0.2  # pause before the background till tries again after an uncertain sale
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ selling
    def pos(self) -> Pos:
        """A client for the agent as it runs now (a restarted agent listens on a new port)."""
        if self._pos is None:
            self._pos = self.terminal.pos()
            self._pos.http.timeout = httpx.Timeout(10.0)
            if self._pos.session is None:
                self._pos.login(self.cashier)
        return self._pos

    def reconnect(self) -> None:
        """Forget the client: the next sale asks the (restarted) agent for its address again."""
        self._pos = None

    def sell(self, *, cash: bool = False, request_id: str | None = None) -> str:
        """One sale; returns "committed", "refused:<code>" or "uncertain"."""
        body = sale_body(
            cash=1500 if cash else None, card=None if cash else 1249, request_id=request_id or str(uuid.uuid4())
        )
        return self._send(body)

    def _send(self, body: dict[str, Any]) -> str:
        request_id = body["request_id"]
        try:
            reply = self.pos().request("POST", "/v1/sales", body)
        except (httpx.TransportError, TimeoutError, OSError):
            self.uncertain[request_id] = body
            self.reconnect()
            return "uncertain"
        if reply.status_code in (200, 201):
            self.committed[request_id] = reply.json()["sale_id"]
            self.uncertain.pop(request_id, None)
            return "committed"
        error = reply.json().get("error") or {}
        assert error.get("code") and error.get("message"), (
            f"a refusal without a reason: {reply.status_code} {reply.text}"
        )
        if reply.status_code == 401 and error["code"].startswith("session."):
            self.reconnect()  # the session ended (idle timeout); log in again and retry this one
            self.uncertain[request_id] = body
            return "uncertain"
        self.refused[error["code"]] += 1
        self.uncertain.pop(request_id, None)
        return f"refused:{error['code']}"

    def settle(self, timeout_s: float = 30) -> None:
        """Resend every uncertain request (same request id) until each is committed or refused."""
        deadline = time.monotonic() + timeout_s
        while self.uncertain:
            assert time.monotonic() < deadline, f"{len(self.uncertain)} sales still uncertain after {timeout_s} s"
            for body in list(self.uncertain.values()):
                if self._send(body) == "uncertain":
                    time.sleep(0.2)

    # ------------------------------------------------------------------ in the background
    def start(self, every_s: float = 0.05) -> SaleStream:
        """Sell continuously in a thread (a busy till) until `stop()`."""

        def run() -> None:
            while not self._stop.is_set():
                outcome = self.sell(cash=len(self.committed) % 5 == 0)
                self._stop.wait(every_s if outcome != "uncertain" else self.retry_s)

        self._stop.clear()
        self._thread = threading.Thread(target=run, name="sale-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the sale stream did not stop"

    # ------------------------------------------------------------------ the verdict
    def cloud_sale_ids(self) -> list[str]:
        with self.terminal.cloud.engine.connect() as conn:
            rows = conn.execute(select(SaleRecord.sale_id).where(SaleRecord.device_id == DEVICE))
            return [str(sale_id) for sale_id in rows.scalars()]

    def outbox_depth(self) -> int:
        return self.terminal.process.client().call("status")["components"]["cloud"]["outbox_depth"]

    def expect_cloud_exact(self, timeout_s: float = 60) -> None:
        """The cloud holds exactly the committed sales, each once, and the agent's outbox drained."""
        assert not self.uncertain, "settle() first: uncertain sales are neither counted nor excluded"
        expected = set(self.committed.values())
        assert len(expected) == len(self.committed), "two request ids came back with one sale id"
        wait_for(
            lambda: set(self.cloud_sale_ids()) >= expected, timeout_s, f"{len(expected)} committed sales in the cloud"
        )
        wait_for(lambda: self.outbox_depth() == 0, timeout_s, "the agent's outbox to drain")
        in_cloud = self.cloud_sale_ids()
        doubled = [sale for sale, count in Counter(in_cloud).items() if count > 1]
        assert not doubled, f"sales stored twice: {doubled}"
        assert set(in_cloud) == expected, f"cloud has {len(set(in_cloud) - expected)} sales the agent never confirmed"

    # ------------------------------------------------------------------ for fault tests (watching)
    def sold(self) -> int:
        """How many sales are committed so far."""
        return len(self.committed)

    def wait_sold(self, count: int, timeout_s: float = 30, what: str = "") -> None:
        """Wait until at least `count` sales are committed in all (the stream must be running)."""
        wait_for(lambda: self.sold() >= count, timeout_s, what or f"{count} committed sales (have {self.sold()})")

    def link(self) -> dict[str, Any]:
        """The agent's own view of its cloud link (`kassactl status`, component "cloud")."""
        return self.terminal.process.client().call("status")["components"]["cloud"]

    def connected(self) -> bool:
        return bool(self.link()["connected"])

    def wait_link(self, connected: bool, timeout_s: float = 30) -> None:
        """Wait until the agent itself reports its broker connection up (or down)."""
        wait_for(
            lambda: self.connected() == connected,
            timeout_s,
            f"agent link {'up' if connected else 'down'}",
            every_s=0.02,
        )

    def cloud_count(self) -> int:
        return len(self.cloud_sale_ids())

    def agent_log_count(self, text: str) -> int:
        """Lines of the agent's log that contain `text` (e.g. "disconnected from broker")."""
        return sum(text in line for line in self.terminal.process.log().splitlines())

    def expect_no_reused_seqs(self) -> None:
        """Each message the device sent reached the cloud under a sequence number of its own.
        (A reused seq once left a new sale behind the drain's cursor: never sent while the
        connection stayed up.)"""
        seqs = self.terminal.cloud.seqs(DEVICE)
        reused = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
        assert not reused, f"the device reused sequence numbers {reused[:10]}"


# ====================================================================== the agent going away, its store,
# its printed receipts (the SIGKILL, disk-full, printer and clock faults)


class AgentAway(OSError):
    """The agent is not there to take a sale (killed, restarting): the sale stays uncertain."""


@dataclass
class RestartingSaleStream(SaleStream):
    """A SaleStream for faults that take the agent process away: while there is no control
    socket or POS API yet (or the cashier cannot log in to an agent still starting), the sale
    is *uncertain*, like one whose answer never came, and `settle()` resends it."""

    last_away: str = ""
    retry_s: float = 0.05  # how soon an uncertain sale is tried again (the agent may be back any moment)

    def sell(self, *, cash: bool = False, request_id: str | None = None) -> str:
        """Like a real POS, first resend the sale whose answer never came (same request id) before
        ringing up a new one, so that an agent that is down does not pile up uncertain sales."""
        if request_id is None and self.uncertain:
            return self._send(next(iter(self.uncertain.values())))
        return super().sell(cash=cash, request_id=request_id)

    def pos(self) -> Pos:
        try:
            return super().pos()
        except (ControlError, TimeoutError, AssertionError) as exc:
            self._pos = None
            self.last_away = f"{type(exc).__name__}: {exc}"
            raise AgentAway(self.last_away) from exc


RECEIPT_NO = re.compile(r"^\s*Receipt\s+#(\d+)\s*$")
COPY_MARK = "*** COPY ***"


def store_path(terminal: Terminal) -> Path:
    return terminal.state_dir / "agent.db"


def _read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the agent's store, read on a read-only connection of our own (the agent may run)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def integrity_check(path: Path) -> list[str]:
    return [str(row[0]) for row in _read(path, "PRAGMA integrity_check")]


def stored_sales(path: Path) -> dict[str, int]:
    """sale id -> receipt number of every sale in the agent's store."""
    return {str(sale_id): int(no) for sale_id, no in _read(path, "SELECT sale_id, receipt_no FROM sales")}


def expect_store_sound(stream: SaleStream, note: str = "") -> dict[str, int]:
    """The agent's store passes the integrity check, holds exactly the committed sales (no half
    sale, none the POS was not told about once settled) and its receipt numbers are 1..n without
    a gap. Returns sale id -> receipt number. `note` goes into every message (e.g. the seed)."""
    path = store_path(stream.terminal)
    problems = integrity_check(path)
    assert problems == ["ok"], f"{note} store integrity check failed: {problems[:5]}"
    sales = stored_sales(path)
    committed = set(stream.committed.values())
    assert set(sales) == committed, (
        f"{note} store and POS disagree: {len(committed - set(sales))} committed sales missing, "
        f"{len(set(sales) - committed)} stored sales never confirmed"
    )
    numbers = sorted(sales.values())
    assert numbers == list(range(1, len(numbers) + 1)), (
        f"{note} receipt numbers are not gap-free 1..{len(numbers)}: {_gaps(numbers)}"
    )
    return sales


def _gaps(numbers: list[int]) -> str:
    seen = set(numbers)
    missing = [n for n in range(1, max(numbers, default=0) + 1) if n not in seen]
    doubled = [n for n, count in Counter(numbers).items() if count > 1]
    return f"missing {missing[:10]}, doubled {doubled[:10]}"


def printed_receipts(printer: VirtualPrinter) -> list[tuple[int | None, bool]]:
    """(receipt number or None, marked as a copy) for every receipt the virtual printer printed."""
    out: list[tuple[int | None, bool]] = []
    for receipt in list(printer.receipts):
        lines = receipt.lines
        number = next((int(m.group(1)) for m in map(RECEIPT_NO.match, lines) if m), None)
        out.append((number, any(COPY_MARK in line for line in lines)))
    return out


def print_queue_idle(terminal: Terminal) -> bool:
    """No print job waiting or being sent on any printer of the agent."""
    printers = terminal.process.client().call("status")["components"]["hardware"]["printers"]
    return all(p["queued"] == 0 for p in printers.values())


def print_jobs(path: Path) -> list[dict[str, Any]]:
    """Every print job in the agent's store, oldest first (without its bytes)."""
    columns = ("job_id", "ref", "state", "copy_of", "automatic", "last_error")
    rows = _read(path, f"SELECT {', '.join(columns)} FROM print_jobs ORDER BY created_at")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def waiting_for_a_person(path: Path) -> dict[str, str | None]:
    """Print jobs the agent will not print again by itself (a copy whose outcome is unknown too):
    job id -> its ref (the sale id of a receipt)."""
    return {
        str(job): ref for job, ref in _read(path, "SELECT job_id, ref FROM print_jobs WHERE state = 'needs_attention'")
    }


def expect_copies_bounded(path: Path, note: str = "") -> None:
    """The agent copied no job more than once by itself and never copied a copy."""
    rows = _read(path, "SELECT job_id, copy_of, automatic FROM print_jobs")
    copy_of = {job: original for job, original, _ in rows if original is not None}
    assert not [job for job, original in copy_of.items() if original in copy_of], f"{note} copies of copies: {copy_of}"
    automatic = Counter(original for _, original, made_by_agent in rows if made_by_agent)
    assert all(count == 1 for count in automatic.values()), (
        f"{note} jobs copied more than once by the agent: {dict(automatic)}"
    )


def copy_reasons(path: Path) -> list[str]:
    """For each copy job the agent made: why, as recorded on the job it copies (the documented
    rule: "interrupted by an agent restart", or "not confirmed: ..." by the printer)."""
    return [
        str(row[0])
        for row in _read(
            path,
            "SELECT original.last_error FROM print_jobs copy"
            " JOIN print_jobs original ON original.job_id = copy.copy_of",
        )
    ]
