"""One publisher at a time: a lease row that its holder renews and others take once it
has expired.

Renewing is an UPDATE of the holder's own row; taking is an UPDATE whose condition is
`expires_at < now`. The database serialises them: on PostgreSQL a second UPDATE waits for the first's row lock and then
re-checks its condition against the committed row, on SQLite writers take turns. Leases
compare wall clocks of different hosts; a skew only lets two publishers overlap briefly,
which is harmless (devices ignore versions they have, commands run once).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cloud_api.db import rows_matched, table_of, upsert_insert
from cloud_api.pushes.models import PublisherLease

PUBLISHER_LEASE = "pushes"
_lease = table_of(PublisherLease)


def take_or_renew(engine: Engine, holder: str, duration_s: float, name: str = PUBLISHER_LEASE) -> bool:
    """True if `holder` holds the lease for the next `duration_s` seconds."""
    now = datetime.now(UTC)
    until = now + timedelta(seconds=duration_s)
    with Session(engine) as session, session.begin():
        current = session.execute(select(_lease.c.holder, _lease.c.expires_at).where(_lease.c.name == name)).first()
        if current is not None and current.holder != holder and _aware(current.expires_at) >= now:
            return False  # held by another: a standby only reads (SQLite has one write lock)
        if current is None:
            session.execute(
                upsert_insert(session, _lease)
                .values(name=name, holder=holder, acquired_at=now, expires_at=until)
                .on_conflict_do_nothing(index_elements=[_lease.c.name])
            )
        renewed = rows_matched(
            session, update(_lease).where(_lease.c.name == name, _lease.c.holder == holder).values(expires_at=until)
        )
        if renewed == 1:
            return True
        taken = rows_matched(
            session,
            update(_lease)
            .where(_lease.c.name == name, _lease.c.expires_at < now)
            .values(holder=holder, acquired_at=now, expires_at=until),
        )
        return taken == 1


def release(engine: Engine, holder: str, name: str = PUBLISHER_LEASE) -> None:
    """Give the lease up now (a clean stop), so a standby takes over at its next look."""
    with Session(engine) as session, session.begin():
        session.execute(
            update(_lease)
            .where(_lease.c.name == name, _lease.c.holder == holder)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def current_holder(engine: Engine, name: str = PUBLISHER_LEASE) -> str | None:
    """Who holds an unexpired lease, if anyone."""
    with Session(engine) as session:
        lease = session.get(PublisherLease, name)
        if lease is None:
            return None
        return lease.holder if _aware(lease.expires_at) > datetime.now(UTC) else None


def _aware(moment: datetime) -> datetime:
    # SQLite hands stored timestamps back without a zone; every stored timestamp is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
