"""Wrong-PIN counters and lockouts, per cashier on this terminal, kept in the store.

A restart must not reset a lockout (that would turn "5 tries per 5 minutes" into
"5 tries per reboot"), so counters live in ``cashier_lockouts``. Times are wall-clock
seconds from the injected clock; a lock never lasts longer than ``lockout_s`` from now,
so a clock set back by hours does not lock a cashier out for hours.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """What one more wrong PIN did: attempts left before a lock, or the lock's end."""

    attempts_left: int
    locked_until: float | None


def locked_until(conn: sqlite3.Connection, cashier_id: str, now: float, lockout_s: float) -> float | None:
    """When the cashier's lock ends, or None when they may try now."""
    row = conn.execute("SELECT locked_until FROM cashier_lockouts WHERE cashier_id = ?", (cashier_id,)).fetchone()
    if row is None or row[0] is None or row[0] <= now:
        return None
    return min(float(row[0]), now + lockout_s)


def record_failure(conn: sqlite3.Connection, cashier_id: str, now: float, attempts: int, lockout_s: float) -> Failure:
    """Count a wrong PIN inside the caller's transaction; the Nth in a row locks."""
    row = conn.execute(
        "INSERT INTO cashier_lockouts(cashier_id, failures, locked_until) VALUES (?, 1, NULL) "
        "ON CONFLICT(cashier_id) DO UPDATE SET failures = failures + 1 RETURNING failures",
        (cashier_id,),
    ).fetchone()
    failures = row[0]
    if failures < attempts:
        return Failure(attempts - failures, None)
    until = now + lockout_s
    # The count starts again after the lock: the next wrong PIN is the first of a new series.
    conn.execute("UPDATE cashier_lockouts SET failures = 0, locked_until = ? WHERE cashier_id = ?", (until, cashier_id))
    return Failure(0, until)


def reset(conn: sqlite3.Connection, cashier_id: str) -> None:
    """A correct PIN: the series of wrong ones is over."""
    conn.execute("DELETE FROM cashier_lockouts WHERE cashier_id = ?", (cashier_id,))


def locked_cashiers(conn: sqlite3.Connection, now: float) -> dict[str, float]:
    return {
        row[0]: row[1]
        for row in conn.execute("SELECT cashier_id, locked_until FROM cashier_lockouts WHERE locked_until > ?", (now,))
    }
