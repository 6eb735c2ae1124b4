"""The licence tables (agent/schema.py, migration 4): reads and writes, no decisions.

Writers take the caller's transaction (``conn`` from ``Store.transaction()``), so a release,
its tombstone and the up message that reports it commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from agent import meta

HIGH_WATER_KEY = "licence.wall_high_water"


@dataclass(frozen=True, slots=True)
class StoredLease:
    licence_id: str
    epoch: int
    token: str
    received_at: float
    released: bool


@dataclass(frozen=True, slots=True)
class StoredTombstone:
    licence_id: str
    epoch: int
    receipt: str
    released_at: float
    cause: str
    confirmed_at: float | None


# ------------------------------------------------------------------------ leases
def leases(conn: sqlite3.Connection) -> list[StoredLease]:
    rows = conn.execute("SELECT licence_id, epoch, token, received_at, state FROM licence_leases ORDER BY licence_id")
    return [StoredLease(r[0], r[1], r[2], r[3], r[4] == "released") for r in rows]


def put_lease(conn: sqlite3.Connection, licence_id: str, epoch: int, token: str, received_at: float) -> None:
    conn.execute(
        "INSERT INTO licence_leases(licence_id, epoch, token, received_at, state) VALUES (?, ?, ?, ?, 'held') "
        "ON CONFLICT(licence_id) DO UPDATE SET epoch = excluded.epoch, token = excluded.token, "
        "received_at = excluded.received_at, state = 'held'",
        (licence_id, epoch, token, received_at),
    )


def mark_released(conn: sqlite3.Connection, licence_id: str, up_to_epoch: int) -> bool:
    """Mark the held lease of ``licence_id`` released if its epoch is at most ``up_to_epoch``."""
    cursor = conn.execute(
        "UPDATE licence_leases SET state = 'released' WHERE licence_id = ? AND epoch <= ? AND state = 'held'",
        (licence_id, up_to_epoch),
    )
    return cursor.rowcount > 0


# ------------------------------------------------------------------------ epochs
def highest_epochs(conn: sqlite3.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute("SELECT licence_id, highest FROM licence_epochs")}


def raise_epoch(conn: sqlite3.Connection, licence_id: str, epoch: int) -> None:
    conn.execute(
        "INSERT INTO licence_epochs(licence_id, highest) VALUES (?, ?) "
        "ON CONFLICT(licence_id) DO UPDATE SET highest = max(highest, excluded.highest)",
        (licence_id, epoch),
    )


# -------------------------------------------------------------------- tombstones
def tombstone(conn: sqlite3.Connection, licence_id: str, epoch: int) -> StoredTombstone | None:
    row = conn.execute(
        "SELECT licence_id, epoch, receipt, released_at, cause, confirmed_at FROM licence_tombstones "
        "WHERE licence_id = ? AND epoch = ?",
        (licence_id, epoch),
    ).fetchone()
    return None if row is None else StoredTombstone(*row)


def tombstones(conn: sqlite3.Connection, *, unconfirmed_since: float | None = None) -> list[StoredTombstone]:
    """All tombstones, or only those not yet confirmed and released after ``unconfirmed_since``."""
    sql = "SELECT licence_id, epoch, receipt, released_at, cause, confirmed_at FROM licence_tombstones"
    params: tuple[Any, ...] = ()
    if unconfirmed_since is not None:
        sql += " WHERE confirmed_at IS NULL AND released_at >= ?"
        params = (unconfirmed_since,)
    return [StoredTombstone(*r) for r in conn.execute(sql + " ORDER BY released_at", params)]


def add_tombstone(
    conn: sqlite3.Connection, licence_id: str, epoch: int, receipt: str, released_at: float, cause: str
) -> None:
    conn.execute(
        "INSERT INTO licence_tombstones(licence_id, epoch, receipt, released_at, cause) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(licence_id, epoch) DO NOTHING",
        (licence_id, epoch, receipt, released_at, cause),
    )


def confirm_tombstones(conn: sqlite3.Connection, listed: set[tuple[str, int]], older_than: float, now: float) -> int:
    """The cloud's document no longer lists these epochs: it knows they are released."""
    confirmed = 0
    for stone in tombstones(conn, unconfirmed_since=0.0):
        if stone.released_at < older_than and (stone.licence_id, stone.epoch) not in listed:
            conn.execute(
                "UPDATE licence_tombstones SET confirmed_at = ? WHERE licence_id = ? AND epoch = ?",
                (now, stone.licence_id, stone.epoch),
            )
            confirmed += 1
    return confirmed


# ------------------------------------------------------------------- high water
def wall_high_water(conn: sqlite3.Connection) -> float:
    value = meta.get(conn, HIGH_WATER_KEY)
    return float(value) if value else 0.0


def put_wall_high_water(conn: sqlite3.Connection, value: float) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
        "CASE WHEN CAST(value AS REAL) < CAST(excluded.value AS REAL) THEN excluded.value ELSE value END",
        (HIGH_WATER_KEY, repr(float(value))),
    )


# ----------------------------------------------------------------- bind requests
def add_bind_request(conn: sqlite3.Connection, message_id: str, key_hint: str, requested_at: float) -> None:
    conn.execute(
        "INSERT INTO licence_bind_requests(message_id, key_hint, requested_at) VALUES (?, ?, ?)",
        (message_id, key_hint, requested_at),
    )


def latest_bind_request(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT message_id, key_hint, requested_at, outcome, detail, decided_at FROM licence_bind_requests "
        "ORDER BY requested_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return {
        "message_id": row[0],
        "key_hint": row[1],
        "requested_at": row[2],
        "outcome": row[3],
        "detail": row[4],
        "decided_at": row[5],
    }


def refusal_of(conn: sqlite3.Connection, message_id: str) -> str | None:
    """The cloud's reason if it refused this up message for good (ack ``rejected`` list)."""
    row = conn.execute("SELECT reason FROM outbox_rejected WHERE message_id = ?", (message_id,)).fetchone()
    return None if row is None else row[0]


def decide_bind_request(conn: sqlite3.Connection, message_id: str, outcome: str, detail: str, now: float) -> None:
    conn.execute(
        (
            "UPDATE licence_bind_requests SET outcome = ?, detail = ?, decided_at = ? WHERE message_id = ? AND outcome "
            "IS NULL"
        ),
        (outcome, detail, now, message_id),
    )


def grant_pending_bind_requests(conn: sqlite3.Connection, licence_id: str, now: float) -> int:
    cursor = conn.execute(
        "UPDATE licence_bind_requests SET outcome = 'granted', detail = ?, decided_at = ? WHERE outcome IS NULL",
        (f"licence {licence_id}", now),
    )
    return cursor.rowcount
