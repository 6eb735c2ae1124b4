"""Cashier sessions, kept in the store so a logged-in till survives an agent restart.

The token (``secrets.token_urlsafe``) is handed to the POS once; only its SHA-256 is
stored, so a copy of the database opens no session. A session carries what every sale
must carry: cashier, point of sale, terminal id, operator code and the till session id.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from broker import contract as kc

TOKEN_BYTES = 32
# Writing last_used_at on every action would cost a commit per scan; a minute of slack in
# an idle timeout of hours does not matter.
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class CashierSession:
    till_session_id: str  # sales carry it; `refund_own` compares it
    cashier_id: str
    point_of_sale: str | None
    terminal_id: str | None
    operator_code: str
    started_at: float
    last_used_at: float

    def expires_at(self, timeout_s: float) -> float:
        return self.last_used_at + timeout_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    conn: sqlite3.Connection,
    *,
    cashier_id: str,
    point_of_sale: str | None,
    terminal_id: str | None,
    operator_code: str,
    now: float,
) -> tuple[str, CashierSession]:
    """A new session inside the caller's transaction; returns (token, session)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session = CashierSession(str(kc.uuid7()), cashier_id, point_of_sale, terminal_id, operator_code, now, now)
    conn.execute(
        "INSERT INTO cashier_sessions(token_hash, till_session_id, cashier_id, point_of_sale, terminal_id, "
        "operator_code, started_at, last_used_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (token_hash(token), session.till_session_id, cashier_id, point_of_sale, terminal_id, operator_code, now, now),
    )
    return token, session


_COLUMNS = "till_session_id, cashier_id, point_of_sale, terminal_id, operator_code, started_at, last_used_at"


def find(conn: sqlite3.Connection, token: str) -> CashierSession | None:
    if not isinstance(token, str) or not token:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM cashier_sessions WHERE token_hash = ?", (token_hash(token),)).fetchone()
    return None if row is None else CashierSession(*row)


def touch(conn: sqlite3.Connection, session: CashierSession, now: float) -> None:
    conn.execute(
        "UPDATE cashier_sessions SET last_used_at = ? WHERE till_session_id = ?", (now, session.till_session_id)
    )


def end(conn: sqlite3.Connection, session: CashierSession) -> bool:
    return (
        conn.execute("DELETE FROM cashier_sessions WHERE till_session_id = ?", (session.till_session_id,)).rowcount > 0
    )


def all_sessions(conn: sqlite3.Connection) -> list[CashierSession]:
    return [
        CashierSession(*row) for row in conn.execute(f"SELECT {_COLUMNS} FROM cashier_sessions ORDER BY started_at")
    ]


def idle_since(conn: sqlite3.Connection, cutoff: float) -> list[CashierSession]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM cashier_sessions WHERE last_used_at < ?", (cutoff,))
    return [CashierSession(*row) for row in rows]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM cashier_sessions").fetchone()[0])
