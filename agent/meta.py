"""Installation facts kept in the store's ``meta`` table."""

from __future__ import annotations

import sqlite3

from agent.store import Store, StoreError


def get(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def put(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def claim_for_device(store: Store, device_id: str) -> int:
    """Bind the store to this device id and count the boot; returns the boot number.

    A store copied from another terminal (or a config pointing at the wrong
    state dir) would send that terminal's outbox under this id: refuse it.
    """
    with store.transaction() as conn:
        owner = get(conn, "device_id")
        if owner is None:
            put(conn, "device_id", device_id)
        elif owner != device_id:
            raise StoreError(
                f"{store.path} belongs to device '{owner}', but this agent is configured as "
                f"'{device_id}'. Point paths.state_dir at this device's own directory, or fix device_id."
            )
        boots = int(get(conn, "boot_count") or 0) + 1
        put(conn, "boot_count", str(boots))
        return boots
