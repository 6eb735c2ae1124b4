"""Publishing a document again when a device plainly did not get it.

The broker holds every published document as a retained message, but a broker that crashes
before saving to disk (production saves every 60 s) forgets the last ones while the database
says "published". A device reports its applied versions on every connect and again after
each document it applies (`up/state`, kept in `device_reports`). So a device whose *latest*
report was made after the publish, is old enough that the retained copy would have arrived
and been reported by now, and still shows an older version, did not get it: the document is
marked for publishing again. One report triggers at most one republish (the publish moves
`published_at` past it), and a device that did get the document has a newer report by then.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from cloud_api.db import table_of
from cloud_api.ingest.models import DeviceReport
from cloud_api.pushes.models import DesiredState

_state = table_of(DesiredState)
_reports = table_of(DeviceReport)
STATE_REPORT = "state"  # DeviceReport.kind of a device's DeviceState report


def republish_stale(session: Session, reported_after: datetime, reported_before: datetime) -> int:
    """Mark documents pending again for devices whose latest state report, made in
    (reported_after, reported_before], shows an older version than was published before it.
    Returns how many documents were marked. Runs inside the caller's transaction."""
    rows = session.execute(
        select(_state.c.device_id, _state.c.domain, _state.c.published_version, _reports.c.report)
        .join(_reports, and_(_reports.c.device_id == _state.c.device_id, _reports.c.kind == STATE_REPORT))
        .where(
            _reports.c.reported_at > reported_after,
            _reports.c.reported_at <= reported_before,
            _state.c.published_at < _reports.c.reported_at,
            _state.c.published_version > 0,
            _state.c.publish_pending.is_(False),
        )
    ).all()
    stale = [
        (device_id, domain) for device_id, domain, published, report in rows if _applied(report, domain) < published
    ]
    for device_id, domain in stale:
        session.execute(
            update(_state)
            .where(_state.c.device_id == device_id, _state.c.domain == domain, _state.c.publish_pending.is_(False))
            .values(publish_pending=True)
        )
    return len(stale)


def _applied(report: Any, domain: str) -> int:
    versions = report.get("applied_versions") if isinstance(report, dict) else None
    value = versions.get(domain) if isinstance(versions, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class StaleCheck:
    """When to look, and which window of reports: each report is looked at once, after it
    has aged `settle_s` (time for the retained copy to arrive and be reported)."""

    def __init__(self, settle_s: float = 30.0, every_s: float = 10.0, lookback_s: float = 3600.0) -> None:
        self.settle = timedelta(seconds=settle_s)
        self.every = timedelta(seconds=every_s)
        # After a start, reports from the last hour get their look (a restart loses nothing recent).
        self._checked_until = datetime.now(UTC) - timedelta(seconds=lookback_s)
        self._next = datetime.min.replace(tzinfo=UTC)

    def run(self, session: Session, now: datetime | None = None) -> int | None:
        """Mark stale documents if a check is due; None when it was not."""
        now = now or datetime.now(UTC)
        if now < self._next:
            return None
        until = now - self.settle
        marked = republish_stale(session, self._checked_until, until) if until > self._checked_until else 0
        self._checked_until = max(self._checked_until, until)
        self._next = now + self.every
        return marked
