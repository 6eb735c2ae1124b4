"""Durable print queue: a job stays in the store until its printer confirms it.

Jobs are submitted inside the caller's transaction (a sale and its receipt job
commit together). A worker per printer sends them in order; paper out, cover
open or an offline printer leave the job queued, and it prints when the status
is ready again. A job marked printed is never sent again; ``reprint`` makes a
new job marked as a copy. So does a job the printer did not confirm (it reported that it
cannot print right after the job), and one a crash left 'printing'.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.loop_failures import LoopFailures
from agent.store import Store
from drivers import DocumentError, Printer, PrinterUnavailableError, ReceiptBuilder, TransportError

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0  # a send in progress at stop (printers have write timeouts below this)


class PrintQueueError(Exception):
    pass


@dataclass(frozen=True)
class PrintJob:
    job_id: str
    printer: str
    kind: str
    ref: str | None
    state: str
    attempts: int
    last_error: str | None
    created_at: float
    printed_at: float | None
    copy_of: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class PrintQueue:
    def __init__(
        self,
        store: Store,
        printers: dict[str, Printer],
        poll_s: float,
        on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
    ) -> None:
        self.store = store
        self.printers = printers
        self.poll_s = poll_s
        self.on_event = on_event
        self._wake: dict[str, asyncio.Event] = {name: asyncio.Event() for name in printers}
        self._tasks: list[asyncio.Task[None]] = []
        self._submitted: set[str] = set()  # printers with a job in a transaction not yet seen committed
        self._stopping = False
        self.last_error: dict[str, str | None] = dict.fromkeys(printers)

    # ---------------------------------------------------------------- submitting
    def submit(self, conn: sqlite3.Connection, printer: str, data: bytes, *, kind: str, ref: str | None = None, copy_of: str | None = None) -> str:
        """Queue rendered bytes inside the caller's transaction; returns the job id."""
        if printer not in self.printers:
            raise PrintQueueError(f"no printer named '{printer}' (configured: {', '.join(self.printers) or 'none'})")
        job_id = uuid.uuid4().hex
        self._submitted.add(printer)
        conn.execute(
            "INSERT INTO print_jobs(job_id, printer, kind, ref, data, state, created_at, copy_of) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
            (job_id, printer, kind, ref, data, time.time(), copy_of),
        )
        return job_id

    def submit_document(self, printer: str, document: Any, *, kind: str, ref: str | None = None) -> str:
        """Render and queue in a transaction of its own (test prints, reports)."""
        data = self._printer(printer).render(document)
        with self.store.transaction() as conn:
            return self.submit(conn, printer, data, kind=kind, ref=ref)

    def reprint(self, job_id: str) -> str:
        job = self.get(job_id)
        if job is None:
            raise PrintQueueError(f"no print job {job_id}")
        original = self.store.read().execute("SELECT data FROM print_jobs WHERE job_id = ?", (job_id,)).fetchone()[0]
        header = self._printer(job.printer).render(ReceiptBuilder().text("*** COPY ***", bold=True, align="center").feed(1).build())
        with self.store.transaction() as conn:
            return self.submit(conn, job.printer, header + original, kind=job.kind, ref=job.ref, copy_of=job_id)

    def recover_interrupted(self) -> int:
        """At start: a job left 'printing' died with the agent; queue it again as a marked copy.

        One transaction for both (``reprint`` joins it): killed in between, the job would stay
        'failed' without its copy and the receipt would never print."""
        copies = []
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT job_id FROM print_jobs WHERE state = 'printing'").fetchall()
            for (job_id,) in rows:
                conn.execute("UPDATE print_jobs SET state = 'failed', last_error = 'interrupted by an agent restart' WHERE job_id = ?", (job_id,))
                copies.append((job_id, self.reprint(job_id)))
        for job_id, new_id in copies:
            log.warning("print job interrupted by a restart; printing it again as a copy", extra={"job": job_id, "new_job": new_id})
        return len(rows)

    # ------------------------------------------------------------------ workers
    def start(self) -> None:
        self._stopping = False
        self.store.add_commit_listener(self._wake_submitted_threadsafe)
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._worker(name), name=f"print-{name}") for name in self.printers]

    def wake(self, printer: str) -> None:
        """Retry this printer's waiting jobs now (its status just became ready)."""
        self._wake[printer].set()

    async def stop(self) -> None:
        """Let a job being sent finish, so a clean stop never leaves one 'printing' (only a
        crash does, and that job is printed again as a marked copy); then stop the workers."""
        self._stopping = True
        for wake in self._wake.values():
            wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _wake_submitted_threadsafe(self) -> None:
        # Only printers that got a job: a waiting printer (paper out) is not polled on
        # every unrelated commit, just on its poll interval or a new job.
        loop = getattr(self, "_loop", None)
        if not self._submitted or loop is None or loop.is_closed():
            return
        printers, self._submitted = self._submitted, set()
        for name in printers:
            loop.call_soon_threadsafe(self._wake[name].set)

    async def _worker(self, name: str) -> None:
        printer = self.printers[name]
        wake = self._wake[name]
        failures = LoopFailures(log, "print queue")
        while not self._stopping:
            wake.clear()  # before looking: a job committed after this line sets it again
            try:
                job = self._next_job(name)
                printed = job is not None and await self._print_one(printer, name, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a full disk or a bug: keep the queue alive, try again later
                failures.failed(exc, printer=name)
                await asyncio.sleep(self.poll_s)
                continue
            failures.succeeded(printer=name)
            if job is None:
                await _wait(wake, None)
            elif not printed:
                await _wait(wake, self.poll_s)  # retried on the next poll, a new job, or status ready

    async def _print_one(self, printer: Printer, name: str, job: PrintJob) -> bool:
        data = self.store.read().execute("SELECT data FROM print_jobs WHERE job_id = ?", (job.job_id,)).fetchone()[0]
        with self.store.transaction() as conn:
            conn.execute("UPDATE print_jobs SET state = 'printing', attempts = attempts + 1 WHERE job_id = ?", (job.job_id,))
        try:
            result = await asyncio.to_thread(printer.send_raw, data, job.job_id)
        except (PrinterUnavailableError, TransportError, OSError) as exc:
            reason = getattr(getattr(exc, "reason", None), "value", None) or type(exc).__name__
            self._requeue(job, f"{reason}: {exc}")
            if self.last_error[name] != reason:
                log.warning("printer cannot print; job stays queued", extra={"printer": name, "job": job.job_id, "reason": reason})
                self.on_event("print.waiting", {"printer": name, "job_id": job.job_id, "reason": reason})
            self.last_error[name] = reason
            return False
        except DocumentError as exc:
            with self.store.transaction() as conn:
                conn.execute("UPDATE print_jobs SET state = 'failed', last_error = ? WHERE job_id = ?", (str(exc)[:500], job.job_id))
            log.error("print job cannot be printed on this printer", extra={"printer": name, "job": job.job_id, "problem": str(exc)})
            return True
        after = getattr(result, "status_after", None)
        if after is not None and not after.can_print:
            # Sent, but right after it the printer could not print (paper ran out, cover opened, it
            # went silent): whether the receipt came out is not known. Like a job a crash cut short,
            # it is printed again marked as a copy once the printer is ready; never silently lost.
            reason = after.status.value
            with self.store.transaction() as conn:
                conn.execute("UPDATE print_jobs SET state = 'failed', last_error = ? WHERE job_id = ?",
                             (f"not confirmed: the printer reported {reason} right after the job", job.job_id))
                new_id = self.reprint(job.job_id)
            log.warning("printer did not confirm a job; it prints again as a copy when ready",
                        extra={"printer": name, "job": job.job_id, "new_job": new_id, "reason": reason})
            self.last_error[name] = reason
            self.on_event("print.waiting", {"printer": name, "job_id": new_id, "reason": reason})
            return False
        with self.store.transaction() as conn:
            conn.execute("UPDATE print_jobs SET state = 'printed', printed_at = ?, last_error = NULL WHERE job_id = ?", (time.time(), job.job_id))
        if self.last_error[name] is not None:
            log.info("printer is back; queued jobs printing", extra={"printer": name})
        self.last_error[name] = None
        self.on_event("print.done", {"printer": name, "job_id": job.job_id, "job_kind": job.kind, "ref": job.ref})
        return True

    def _requeue(self, job: PrintJob, error: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE print_jobs SET state = 'queued', last_error = ? WHERE job_id = ?", (error[:500], job.job_id))

    # ------------------------------------------------------------------ queries
    def _next_job(self, printer: str) -> PrintJob | None:
        row = self.store.read().execute(
            f"SELECT {_COLUMNS} FROM print_jobs WHERE printer = ? AND state IN ('queued', 'printing') ORDER BY created_at LIMIT 1", (printer,)
        ).fetchone()
        return None if row is None else PrintJob(*row)

    def get(self, job_id: str) -> PrintJob | None:
        row = self.store.read().execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else PrintJob(*row)

    def waiting(self, printer: str) -> int:
        return self.store.read().execute("SELECT count(*) FROM print_jobs WHERE printer = ? AND state IN ('queued', 'printing')", (printer,)).fetchone()[0]

    def recent(self, limit: int = 20) -> list[PrintJob]:
        rows = self.store.read().execute(f"SELECT {_COLUMNS} FROM print_jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [PrintJob(*row) for row in rows]

    def _printer(self, name: str) -> Printer:
        try:
            return self.printers[name]
        except KeyError:
            raise PrintQueueError(f"no printer named '{name}' (configured: {', '.join(self.printers) or 'none'})") from None


_COLUMNS = "job_id, printer, kind, ref, state, attempts, last_error, created_at, printed_at, copy_of"


async def _wait(event: asyncio.Event, timeout_s: float | None) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        pass
