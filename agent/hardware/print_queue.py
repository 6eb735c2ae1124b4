"""Durable print queue: a job stays in the store until its printer confirms it.

Jobs are submitted inside the caller's transaction (a sale and its receipt job
commit together). A worker per printer sends them in order; paper out, cover
open or an offline printer leave the job queued, and it prints when the status
is ready again. A job marked printed is never sent again; ``reprint`` (a person
asked) makes a new job marked as a copy.

A job that may have come out but is not known to have is copied by the agent
itself at most once: the printer did not confirm it (right after the job it
reported that it cannot print, or did not answer), or a crash left it
'printing' (marked just before its first byte went out). The original turns
'failed' and one automatic copy takes its place in the queue, ahead of receipts
queued after it. A copy in that situation is never copied again: it turns
'needs_attention' and waits for a person: ``reprint`` (``kassactl print
reprint``, the POS reprint) or ``dismiss`` (it came out after all). On a link
slower than the printer's confirmation wait every copy was as unconfirmed as its
original, and copies of copies came out for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.loop_failures import LoopFailures
from agent.refusal import Refused
from agent.store import Store
from broker.logs import RepeatedLog
from drivers import DocumentError, Printer, PrinterUnavailableError, Receipt, ReceiptBuilder, TransportError

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0  # a send in progress at stop (printers have write timeouts below this)
NEEDS_ATTENTION = "needs_attention"  # unknown whether it came out, already a copy: a person decides
COPY_HEADER = "*** COPY ***"
AMBIGUOUS_SHOWN = 5  # candidates an ambiguous job id prefix lists


def english_copy_mark() -> Receipt:
    return ReceiptBuilder().text(COPY_HEADER, bold=True, align="center").feed(1).build()


class PrintQueueError(Refused):
    """A print job cannot be queued or found (unknown printer or job, nothing to reprint)."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


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
    copy_of: str | None  # the original job (a copy never points at another copy)
    automatic: bool  # a copy the agent made by itself, not one a person asked for

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_row(cls, row: Any) -> PrintJob:
        job_id, printer, kind, ref, state, attempts, last_error, created_at, printed_at, copy_of, automatic = row
        return cls(
            job_id, printer, kind, ref, state, attempts, last_error, created_at, printed_at, copy_of, bool(automatic)
        )


class PrintQueue:
    def __init__(
        self,
        store: Store,
        printers: dict[str, Printer],
        poll_s: float,
        on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
        copy_mark: Callable[[], Receipt] = english_copy_mark,
    ) -> None:
        self.store = store
        self.printers = printers
        self.poll_s = poll_s
        self.on_event = on_event
        self.copy_mark = copy_mark  # what a copy starts with, in the shop's language at the time of the copy
        self._wake: dict[str, asyncio.Event] = {name: asyncio.Event() for name in printers}
        self._tasks: list[asyncio.Task[None]] = []
        self._submitted: set[str] = set()  # printers with a job in a transaction not yet seen committed
        self._stopping = False
        self.last_error: dict[str, str | None] = dict.fromkeys(printers)
        # The queue retries every poll_s (seconds) while a printer cannot print, for hours maybe.
        self._cannot_print = {name: RepeatedLog(log) for name in printers}

    # ---------------------------------------------------------------- submitting
    def submit(self, conn: sqlite3.Connection, printer: str, data: bytes, *, kind: str, ref: str | None = None) -> str:
        """Queue rendered bytes inside the caller's transaction; returns the job id."""
        return self._insert(conn, printer, data, kind=kind, ref=ref)

    def _insert(
        self,
        conn: sqlite3.Connection,
        printer: str,
        data: bytes,
        *,
        kind: str,
        ref: str | None,
        copy_of: str | None = None,
        automatic: bool = False,
        queue_order: float | None = None,
    ) -> str:
        if printer not in self.printers:
            raise PrintQueueError(f"no printer named '{printer}' (configured: {', '.join(self.printers) or 'none'})")
        job_id = uuid.uuid4().hex
        self._submitted.add(printer)
        now = time.time()
        conn.execute(
            "INSERT INTO print_jobs(job_id, printer, kind, ref, data, state, created_at, copy_of, automatic, "
            "queue_order)"
            " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
            (
                job_id,
                printer,
                kind,
                ref,
                data,
                now,
                copy_of,
                int(automatic),
                now if queue_order is None else queue_order,
            ),
        )
        return job_id

    def submit_document(self, printer: str, document: Any, *, kind: str, ref: str | None = None) -> str:
        """Render and queue in a transaction of its own (test prints, reports)."""
        data = self._printer(printer).render(document)
        with self.store.transaction() as conn:
            return self.submit(conn, printer, data, kind=kind, ref=ref)

    def reprint(self, job_id: str) -> str:
        """A person asked: a new copy of the job's original, queued now. In the same transaction
        every job of that original that waited for a person stops waiting (it is 'failed')."""
        mark = self.copy_mark()  # reads the store: not inside the write transaction
        with self.store.transaction() as conn:
            job = self._find(conn, job_id)
            original = job.copy_of or job.job_id
            new_id = self._copy(conn, job, mark, automatic=False)
            conn.execute(
                "UPDATE print_jobs SET state = 'failed' WHERE state = ? AND (job_id = ? OR copy_of = ?)",
                (NEEDS_ATTENTION, original, original),
            )
        return new_id

    def dismiss(self, job_id: str) -> PrintJob:
        """A person says a job waiting for them needs no reprint (it came out, or nobody wants it)."""
        with self.store.transaction() as conn:
            job = self._find(conn, job_id)
            if job.state != NEEDS_ATTENTION:
                raise PrintQueueError(
                    f"print job {job.job_id} does not wait for a person (it is {job.state}); nothing to dismiss"
                )
            conn.execute(
                "UPDATE print_jobs SET state = 'failed', last_error = substr(coalesce(last_error, '') || '; dismissed "
                "by a person', 1, 500)"
                " WHERE job_id = ?",
                (job.job_id,),
            )
            dismissed = self._get(conn, job.job_id)
            assert dismissed is not None, "found above, in this transaction"
            return dismissed

    def _copy(self, conn: sqlite3.Connection, job: PrintJob, mark: Receipt, *, automatic: bool) -> str:
        """Queue a copy of ``job``'s original, starting with ``mark`` (``copy_mark()``, made before
        the transaction). An automatic copy takes the original's place in the queue; a person's
        reprint queues behind what waits now."""
        original = job.copy_of or job.job_id
        data, order = conn.execute("SELECT data, queue_order FROM print_jobs WHERE job_id = ?", (original,)).fetchone()
        header = self._printer(job.printer).render(mark)
        return self._insert(
            conn,
            job.printer,
            header + data,
            kind=job.kind,
            ref=job.ref,
            copy_of=original,
            automatic=automatic,
            queue_order=order if automatic else None,
        )

    def _settle_unknown_in(self, conn: sqlite3.Connection, job: PrintJob, why: str, mark: Receipt) -> str | None:
        """A job that may or may not have come out. An original: 'failed' and its one automatic
        copy queued (returns the copy's id). A copy: 'needs_attention', nothing queued (None).
        Inside the caller's transaction: a crash never leaves the one without the other."""
        if job.copy_of is None:
            conn.execute(
                "UPDATE print_jobs SET state = 'failed', last_error = ? WHERE job_id = ?", (why[:500], job.job_id)
            )
            return self._copy(conn, job, mark, automatic=True)
        conn.execute(
            "UPDATE print_jobs SET state = ?, last_error = ? WHERE job_id = ?", (NEEDS_ATTENTION, why[:500], job.job_id)
        )
        return None

    def recover_interrupted(self) -> int:
        """At start: a job left 'printing' died with the agent while its bytes may have been on
        their way. An original is printed again as one marked copy; a copy waits for a person.

        One transaction for all of them: killed in between, a job would stay 'failed' without
        its copy and the receipt would never print."""
        why = "interrupted by an agent restart"
        mark = self.copy_mark()
        outcomes = []
        with self.store.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE state = 'printing'").fetchall()
            for job in map(PrintJob.from_row, rows):
                outcomes.append((job, self._settle_unknown_in(conn, job, why, mark)))
        for job, new_id in outcomes:
            self._report_unknown(job, new_id, why, "print job interrupted by a restart; printing it again as a copy")
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
        crash does: see ``recover_interrupted``); then stop the workers."""
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
        started = False

        def starting() -> None:
            # 'printing' only once the printer was found ready, right before the first byte: a crash
            # during the status check (seconds, with a silent printer) leaves the job plainly queued
            nonlocal started
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE print_jobs SET state = 'printing', attempts = attempts + 1 WHERE job_id = ?", (job.job_id,)
                )
            started = True

        try:
            result = await asyncio.to_thread(printer.send_raw, data, job.job_id, before_write=starting)
        except (PrinterUnavailableError, TransportError, OSError) as exc:
            reason = getattr(getattr(exc, "reason", None), "value", None) or type(exc).__name__
            if started and getattr(exc, "interrupted", False):
                # The write broke off part-way (paper ran out with flow control holding the line, a
                # link dropped): part of it may be on paper. Sent again whole it would print twice
                # unmarked, so it is an unknown outcome: one marked copy, or a person decides.
                return self._settle_unknown(name, job, reason, f"interrupted while printing: {reason}: {exc}")
            self._requeue(job, f"{reason}: {exc}", counted=started)
            self._cannot_print[name].occurred(
                logging.WARNING,
                "printer cannot print; job stays queued",
                key=reason,
                printer=name,
                job=job.job_id,
                reason=reason,
            )
            if self.last_error[name] != reason:
                self.on_event("print.waiting", {"printer": name, "job_id": job.job_id, "reason": reason})
            self.last_error[name] = reason
            return False
        except DocumentError as exc:
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE print_jobs SET state = 'failed', last_error = ? WHERE job_id = ?",
                    (str(exc)[:500], job.job_id),
                )
            log.error(
                "print job cannot be printed on this printer",
                extra={"printer": name, "job": job.job_id, "problem": str(exc)},
            )
            return True
        after = getattr(result, "status_after", None)
        if after is not None and not after.can_print:
            # Sent, but right after it the printer could not print (paper ran out, cover opened) or
            # did not answer in time: whether the receipt came out is not known. Like a job a crash
            # cut short, it is printed again marked as a copy once the printer is ready (never
            # silently lost), once: a copy in the same situation waits for a person.
            reason = after.status.value
            detail = f" ({'; '.join(after.details)})" if after.details else ""
            return self._settle_unknown(
                name, job, reason, f"not confirmed: the printer reported {reason} right after the job{detail}"
            )
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE print_jobs SET state = 'printed', printed_at = ?, last_error = NULL WHERE job_id = ?",
                (time.time(), job.job_id),
            )
        if self.last_error[name] is not None:
            self._cannot_print[name].ended(logging.INFO, "printer is back; queued jobs printing", printer=name)
        self.last_error[name] = None
        self.on_event("print.done", {"printer": name, "job_id": job.job_id, "job_kind": job.kind, "ref": job.ref})
        return True

    def _settle_unknown(self, name: str, job: PrintJob, reason: str, why: str) -> bool:
        """Whether the job came out is not known: in a transaction of its own, an original is
        queued again as a marked copy (printed once the printer is ready); a copy waits for a
        person. Then reported. Returns False (not printed)."""
        mark = self.copy_mark()
        with self.store.transaction() as conn:
            new_id = self._settle_unknown_in(conn, job, why, mark)
        self.last_error[name] = reason
        self._report_unknown(
            job,
            new_id,
            why,
            "printer did not confirm a job; it prints again as a copy when ready",
            printer=name,
            reason=reason,
        )
        if new_id is not None:
            self.on_event("print.waiting", {"printer": name, "job_id": new_id, "reason": reason})
        return False

    def _report_unknown(
        self,
        job: PrintJob,
        copy_id: str | None,
        why: str,
        copied: str,
        printer: str | None = None,
        reason: str | None = None,
    ) -> None:
        """After the commit of ``_settle_unknown_in``: a copy that waits for a person is announced;
        an original that prints again as ``copy_id`` is logged with the message ``copied``."""
        if copy_id is None:
            self._needs_attention(job, why)
            return
        extra = {"printer": printer, "job": job.job_id, "new_job": copy_id, "reason": reason}
        log.warning(copied, extra={key: value for key, value in extra.items() if value is not None})

    def _requeue(self, job: PrintJob, error: str, *, counted: bool) -> None:
        """Not sent (printer not ready) or the write failed: it stays an original or a copy in
        its place. ``counted``: the attempt was already counted when it started writing."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE print_jobs SET state = 'queued', last_error = ?, attempts = attempts + ? WHERE job_id = ?",
                (error[:500], 0 if counted else 1, job.job_id),
            )

    def _needs_attention(self, job: PrintJob, why: str) -> None:
        log.warning(
            "a copy of a print job may not have come out either; it waits for a person (reprint or dismiss)",
            extra={"printer": job.printer, "job": job.job_id, "copy_of": job.copy_of, "problem": why},
        )
        self.on_event(
            "print.needs_attention",
            {
                "printer": job.printer,
                "job_id": job.job_id,
                "copy_of": job.copy_of,
                "job_kind": job.kind,
                "ref": job.ref,
                "reason": why,
            },
        )

    # ------------------------------------------------------------------ queries
    def _next_job(self, printer: str) -> PrintJob | None:
        row = (
            self.store.read()
            .execute(
                (
                    f"SELECT {_COLUMNS} FROM print_jobs WHERE printer = ? AND state IN ('queued', 'printing') ORDER BY "
                    f"queue_order, created_at LIMIT 1"
                ),
                (printer,),
            )
            .fetchone()
        )
        return None if row is None else PrintJob.from_row(row)

    def get(self, job_id: str) -> PrintJob | None:
        return self._get(self.store.read(), job_id)

    def stored(self, job_id: str) -> tuple[PrintJob, bytes]:
        """A job (by id or unique prefix) and the bytes it sends to its printer."""
        conn = self.store.read()
        job = self._find(conn, job_id)
        (data,) = conn.execute("SELECT data FROM print_jobs WHERE job_id = ?", (job.job_id,)).fetchone()
        return job, bytes(data)

    def _find(self, conn: sqlite3.Connection, job_id: str) -> PrintJob:
        """A job by its id or by any start of it that only one job has (`kassactl print jobs` shows 12
        characters), so every client can take the short form."""
        job = self._get(conn, job_id)
        if job is not None:
            return job
        # substr, not LIKE: '%' and '_' in what a person typed are characters, not wildcards
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM print_jobs WHERE substr(job_id, 1, ?) = ? ORDER BY created_at DESC LIMIT ?",
            (len(job_id), job_id, AMBIGUOUS_SHOWN + 1),
        ).fetchall()
        if not job_id or not rows:
            raise PrintQueueError(f"no print job {job_id}")
        if len(rows) > 1:
            candidates = [PrintJob.from_row(row) for row in rows]
            shown = ", ".join(f"{c.job_id[:16]} ({c.kind}, {c.state})" for c in candidates[:AMBIGUOUS_SHOWN])
            more = " and more" if len(candidates) > AMBIGUOUS_SHOWN else ""
            raise PrintQueueError(f"print job id {job_id!r} is ambiguous: it starts {shown}{more}; give more of the id")
        return PrintJob.from_row(rows[0])

    @staticmethod
    def _get(conn: sqlite3.Connection, job_id: str) -> PrintJob | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else PrintJob.from_row(row)

    def waiting(self, printer: str) -> int:
        return int(
            self.store.read()
            .execute(
                "SELECT count(*) FROM print_jobs WHERE printer = ? AND state IN ('queued', 'printing')", (printer,)
            )
            .fetchone()[0]
        )

    def needing_attention(self, printer: str) -> int:
        return int(
            self.store.read()
            .execute("SELECT count(*) FROM print_jobs WHERE printer = ? AND state = ?", (printer, NEEDS_ATTENTION))
            .fetchone()[0]
        )

    def counts_by_state(self) -> dict[tuple[str, str], int]:
        """How many jobs each (printer, state) holds now (the agent's /metrics)."""
        rows = self.store.read().execute("SELECT printer, state, count(*) FROM print_jobs GROUP BY printer, state")
        return {(printer, state): int(count) for printer, state, count in rows}

    def recent(self, limit: int = 20) -> list[PrintJob]:
        """The newest jobs, those waiting for a person first however old they are."""
        rows = (
            self.store.read()
            .execute(
                f"SELECT {_COLUMNS} FROM print_jobs ORDER BY state = ? DESC, created_at DESC LIMIT ?",
                (NEEDS_ATTENTION, limit),
            )
            .fetchall()
        )
        return [PrintJob.from_row(row) for row in rows]

    def _printer(self, name: str) -> Printer:
        try:
            return self.printers[name]
        except KeyError:
            raise PrintQueueError(
                f"no printer named '{name}' (configured: {', '.join(self.printers) or 'none'})"
            ) from None


_COLUMNS = "job_id, printer, kind, ref, state, attempts, last_error, created_at, printed_at, copy_of, automatic"


async def _wait(event: asyncio.Event, timeout_s: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
