"""The soak run's parts: the agent's /proc figures, the till (sales, refunds, X reports) and
the fault rotation. `bench/soak.py` puts them together."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from cloud_api.reports.models import RefundRecord
from tests.faults.harness import SaleStream
from tests.posapi.support import DEVICE, wait_for
from tests.support.terminal import Terminal


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 1)


# ---------------------------------------------------------------------- the agent's process
def proc_figures(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon / RssFile (kB), threads and open file descriptors of one process."""
    figures: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                figures[key] = int(value.split()[0])
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


def fd_kinds(pid: int) -> dict[str, int]:
    """Open fds by what they are: the store (db / wal / shm), sockets, the log, other."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith((".db", ".db-wal", ".db-shm")):
            kinds["store " + target.rsplit(".", 1)[1]] += 1
        elif target.startswith("socket:"):
            kinds["socket"] += 1
        elif target.endswith(".log"):
            kinds["log"] += 1
        else:
            kinds["other"] += 1
    return dict(sorted(kinds.items()))


SMAPS_KEYS = ("Rss", "Anonymous", "Private_Dirty", "Private_Clean", "Shared_Clean", "Pss_File")


def smaps_rollup(pid: int) -> dict[str, int]:
    """Totals (kB) of /proc/<pid>/smaps_rollup: where the resident memory is."""
    totals: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB" and parts[0].rstrip(":") in SMAPS_KEYS:
                totals[parts[0].rstrip(":")] = int(parts[1])
    return totals


class Sampler:
    """Samples the agent's /proc figures and its outbox depth every `every_s` in a thread."""

    def __init__(self, terminal: Terminal, start: float, every_s: float) -> None:
        self.terminal, self.start_t, self.every_s = terminal, start, every_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": elapsed(self.start_t), **proc_figures(self.terminal.process.process.pid)}
        try:
            cloud = self.terminal.process.client().call("status")["components"]["cloud"]
            row.update(outbox=cloud["outbox_depth"], connected=cloud["connected"])
        except Exception as exc:
            row.update(outbox=None, connected=None, error=str(exc)[:100])
        self.samples.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sample()
            except OSError:  # the agent is gone: the main loop notices and ends the soak
                return

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def last(self) -> dict[str, Any]:
        return self.samples[-1]

    def rss_between(self, since: float, until: float) -> list[int]:
        return [s["VmRSS"] for s in self.samples if since <= s["t"] <= until]


def median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------- the till
@dataclass
class Till:
    """A busy till on one SaleStream: sales (cash or card), now and then a refund of an
    earlier sale and an X report, all through the POS API in one thread.

    Refunds are booked like the stream books sales: committed (request id -> refund id),
    uncertain (no answer: resent with the same request id by `settle`) or refused by code."""

    stream: SaleStream
    rate: float = 3.0  # sales per second, on average
    cash_share: float = 0.4
    refund_every: int = 40  # about one refund per this many sales
    x_report_every_s: float = 60.0
    seed: int = 1
    refunds: dict[str, str] = field(default_factory=dict)
    refunds_uncertain: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds_refused: Counter[str] = field(default_factory=Counter)
    x_reports: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    slow: list[tuple[float, float]] = field(default_factory=list)  # (run time s, ms) of sales slower than 1 s
    start_t: float = field(default_factory=time.monotonic)
    _refunded: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Till:
        self._thread = threading.Thread(target=self._run, name="soak-till", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "the till did not stop"

    def _run(self) -> None:
        rng = random.Random(self.seed)
        next_x = time.monotonic() + self.x_report_every_s
        while not self._stop.is_set():
            began = time.monotonic()
            outcome = self.stream.sell(cash=rng.random() < self.cash_share)
            if outcome == "committed":
                took_ms = (time.monotonic() - began) * 1000
                self.latencies_ms.append(took_ms)
                if took_ms > 1000 and len(self.slow) < 1000:
                    self.slow.append((round(began - self.start_t, 1), round(took_ms)))
            if rng.random() < 1 / self.refund_every:
                self.refund(rng)
            if time.monotonic() >= next_x:
                self.x_report(print_it=self.x_reports.total() % 2 == 1)
                next_x = time.monotonic() + self.x_report_every_s
            pause = rng.uniform(0.5, 1.5) / self.rate if outcome != "uncertain" else 0.2
            self._stop.wait(max(0.0, pause - (time.monotonic() - began)))

    def refund(self, rng: random.Random) -> str:
        candidates = [sale for sale in list(self.stream.committed.values())[-500:] if sale not in self._refunded]
        if not candidates:
            return "none"
        sale_id = rng.choice(candidates)
        self._refunded.add(sale_id)
        body: dict[str, Any] = {
            "request_id": f"r-{uuid.uuid4()}",
            "sale_id": sale_id,
            "reason": "soak: customer return",
        }
        if rng.random() < 0.5:
            body.update(scope="whole")
        else:
            body.update(scope="lines", lines=[{"line_index": 0, "qty_milli": 1000}])
        return self._send_refund(body)

    def _send_refund(self, body: dict[str, Any]) -> str:
        request_id = body["request_id"]
        try:
            reply = self.stream.pos().request("POST", "/v1/refunds", body)
        except (httpx.TransportError, TimeoutError, OSError):
            self.refunds_uncertain[request_id] = body
            self.stream.reconnect()
            return "uncertain"
        if reply.status_code in (200, 201):
            self.refunds[request_id] = reply.json()["refund_id"]
            self.refunds_uncertain.pop(request_id, None)
            return "committed"
        code = (reply.json().get("error") or {}).get("code", f"http.{reply.status_code}")
        if reply.status_code == 401 and code.startswith("session."):
            self.stream.reconnect()
            self.refunds_uncertain[request_id] = body
            return "uncertain"
        self.refunds_refused[code] += 1
        self.refunds_uncertain.pop(request_id, None)
        return f"refused:{code}"

    def x_report(self, *, print_it: bool) -> None:
        try:
            reply = self.stream.pos().request("POST", "/v1/reports/x", {"print": print_it})
        except (httpx.TransportError, TimeoutError, OSError):
            self.stream.reconnect()
            self.x_reports["no_answer"] += 1
            return
        if reply.status_code == 200:
            self.x_reports["printed" if print_it else "shown"] += 1
        else:
            self.x_reports[(reply.json().get("error") or {}).get("code", f"http.{reply.status_code}")] += 1

    def settle(self, timeout_s: float = 60) -> None:
        self.stream.settle(timeout_s)
        deadline = time.monotonic() + timeout_s
        while self.refunds_uncertain:
            assert time.monotonic() < deadline, (
                f"{len(self.refunds_uncertain)} refunds still uncertain after {timeout_s} s"
            )
            for body in list(self.refunds_uncertain.values()):
                if self._send_refund(body) == "uncertain":
                    time.sleep(0.2)

    def cloud_refund_ids(self) -> list[str]:
        with self.stream.terminal.cloud.engine.connect() as conn:
            rows = conn.execute(select(RefundRecord.refund_id).where(RefundRecord.device_id == DEVICE))
            return [str(refund_id) for refund_id in rows.scalars()]

    def expect_cloud_refunds_exact(self, timeout_s: float = 60) -> None:
        expected = set(self.refunds.values())
        wait_for(
            lambda: set(self.cloud_refund_ids()) >= expected,
            timeout_s,
            f"{len(expected)} committed refunds in the cloud",
        )
        in_cloud = self.cloud_refund_ids()
        assert len(in_cloud) == len(set(in_cloud)), "refunds stored twice"
        assert set(in_cloud) == expected, f"cloud has {len(set(in_cloud) - expected)} refunds the agent never confirmed"

    def latency(self) -> dict[str, float | None]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None}
        return {
            "p50_ms": round(values[len(values) // 2], 1),
            "p99_ms": round(values[int(len(values) * 0.99)], 1),
            "max_ms": round(values[-1], 1),
        }


# ---------------------------------------------------------------------- the faults
class Faults:
    """Every `every_s` (± a quarter), the next fault of the rotation; each one ends with the
    fault undone and the time the agent took to be well again (`recovered_s`)."""

    ROTATION = ("broker_restart", "worker_kill", "paper_out", "printer_offline")

    def __init__(
        self,
        terminal: Terminal,
        start: float,
        every_s: float,
        *,
        first_s: float = 45.0,
        hold_s: float = 20.0,
        worker_id: str = "p1",
        seed: int = 2,
    ) -> None:
        self.terminal, self.start_t, self.every_s = terminal, start, every_s
        self.first_s, self.hold_s, self.worker_id = first_s, hold_s, worker_id
        self.rng = random.Random(seed)
        self.log: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.not_recovered: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)

    @property
    def last(self) -> str:
        return f"{self.log[-1]['fault']} @{self.log[-1]['t']:.0f}s" if self.log else "-"

    def start(self) -> Faults:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the fault in hand is undone."""
        self._stop.set()
        self._thread.join(120)

    def _run(self) -> None:
        wait = self.first_s
        index = 0
        while not self._stop.wait(wait):
            name = self.ROTATION[index % len(self.ROTATION)]
            began = time.monotonic()
            entry: dict[str, Any] = {"t": elapsed(self.start_t), "fault": name}
            try:
                entry.update(getattr(self, name)(index // len(self.ROTATION)))
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                self.not_recovered.append(f"{name} @{entry['t']}s: {entry['error']}")
            entry["took_s"] = round(time.monotonic() - began, 1)
            self.log.append(entry)
            self.counts[name] += 1
            index += 1
            wait = max(5.0, self.every_s * self.rng.uniform(0.75, 1.25) - entry["took_s"])

    def _status(self) -> dict[str, Any]:
        return self.terminal.process.client().call("status")["components"]

    def _recovered(self, predicate: Any, what: str, timeout_s: float = 60) -> float:
        began = time.monotonic()
        wait_for(lambda: _quiet(lambda: predicate(self._status())), timeout_s, what, every_s=0.1)
        return round(time.monotonic() - began, 2)

    # each fault: inject, hold, undo; returns what to log
    def broker_restart(self, _round: int) -> dict[str, Any]:
        self.terminal.mosquitto.kill()
        time.sleep(2.0)
        self.terminal.mosquitto.restart(hard=True)
        return {"recovered_s": self._recovered(lambda c: c["cloud"]["connected"], "the agent back on the broker")}

    def worker_kill(self, _round: int) -> dict[str, Any]:
        cloud = self.terminal.cloud
        cloud.kill_worker_process(self.worker_id)
        time.sleep(5.0)
        cloud.start_worker_process(self.worker_id)
        depth = self._status()["cloud"]["outbox_depth"]
        recovered = self._recovered(
            lambda c: c["cloud"]["outbox_depth"] <= 10, "the outbox to drain after the worker restart", 180
        )
        return {"outbox_when_back": depth, "recovered_s": recovered}

    def paper_out(self, _round: int) -> dict[str, Any]:
        printer = self.terminal.printer
        printer.set_paper("out")
        try:
            self._stop.wait(self.hold_s)
            queued = self._status()["hardware"]["printers"]["front"]["queued"]
        finally:
            printer.set_paper("ok")
        return {"queued_at_end": queued, "recovered_s": self._recovered(_printer_idle, "the print queue to drain", 120)}

    def printer_offline(self, round_no: int) -> dict[str, Any]:
        mode = ("silent", "refuse")[round_no % 2]
        printer = self.terminal.printer
        printer.go_offline(mode)
        try:
            self._stop.wait(self.hold_s)
            queued = self._status()["hardware"]["printers"]["front"]["queued"]
        finally:
            printer.go_online()
        return {
            "mode": mode,
            "queued_at_end": queued,
            "recovered_s": self._recovered(_printer_idle, "the print queue to drain", 120),
        }


def _printer_idle(components: dict[str, Any]) -> bool:
    """Ready, and the queue down to what a busy till has in hand at any moment."""
    front = components["hardware"]["printers"]["front"]
    return front["status"] == "ready" and front["queued"] <= 2


def _quiet(check: Any) -> Any:
    try:
        return check()
    except Exception:
        return False


def lighten_printer(terminal: Terminal) -> None:
    """The virtual printer keeps every receipt (and its picture) for tests to look at: over a
    soak that is gigabytes in *this* process. Keep the last few and write no previews."""
    core = terminal.printer.core
    core.preview_dir = None
    core.receipts = deque(core.receipts, maxlen=20)  # type: ignore[assignment]
