"""Periodic work: one registry of named jobs on APScheduler's asyncio scheduler.

Jobs run on the agent's event loop, so they may touch agent state directly. A
job that raises is logged and runs again at its next time; it never stops the
scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

JobFunc = Callable[[], Any] | Callable[[], Awaitable[Any]]


class Scheduler:
    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def every(
        self, name: str, seconds: float, func: JobFunc, *, jitter_s: float | None = None, run_now: bool = False
    ) -> None:
        """Run ``func`` every ``seconds``; ``name`` is the job's id in status and logs (unique)."""
        if self._scheduler.get_job(name) is not None:
            raise ValueError(f"a job named {name!r} is already scheduled")
        trigger = IntervalTrigger(seconds=seconds, jitter=jitter_s, timezone=UTC)
        self._scheduler.add_job(
            func,
            trigger,
            id=name,
            name=name,
            coalesce=True,  # after a stall, run once, not once per missed slot
            max_instances=1,
            misfire_grace_time=max(1, int(seconds)),
            **({"next_run_time": datetime.now(UTC)} if run_now else {}),
        )

    def cancel(self, name: str) -> None:
        if self._scheduler.running and self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def jobs(self) -> list[dict[str, Any]]:
        return [
            {"name": job.id, "next_run": job.next_run_time.isoformat() if job.next_run_time else None}
            for job in self._scheduler.get_jobs()
        ]

    @staticmethod
    def _on_job_event(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            log.error("scheduled job failed", extra={"job": event.job_id, "error": repr(event.exception)})
        else:
            log.warning("scheduled job missed its time", extra={"job": event.job_id})
