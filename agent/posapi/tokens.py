"""POS access tokens: how a web POS proves it was paired with this terminal by a technician.

``kassactl pos token create --label tablet-1`` makes one and shows it once; the store keeps
only its SHA-256 (``pos_tokens``, Migration 7). The POS sends it as ``Authorization: Bearer``.
Tokens are checked against memory (a dict of hashes loaded at start and kept in step with
create/revoke), so a request costs no store read; ``last_used_at`` is persisted at most
every ``TOUCH_EVERY_S`` per token, so traffic does not become fsyncs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.refusal import Refused
from agent.store import Store

TOKEN_PREFIX = "kpos_"
TOUCH_EVERY_S = 300.0
LABEL_PATTERN = re.compile(r"^[\w .:@/+-]{1,64}$")


class TokenError(Refused):
    """A token request that cannot be done (bad label, unknown id); the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__("pos_token.invalid", message)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class PosToken:
    token_id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "label": self.label,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": _iso(self.revoked_at),
        }


class PosTokens:
    """The token book; all methods run on the agent loop (the control socket and the API)."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock
        self._active: dict[bytes, PosToken] = {}
        self._touched: dict[str, float] = {}
        self.reload()

    def reload(self) -> None:
        rows = (
            self.store.read()
            .execute(
                "SELECT token_id, label, token_hash, created_at, last_used_at, revoked_at FROM pos_tokens WHERE "
                "revoked_at IS NULL"
            )
            .fetchall()
        )
        self._active = {bytes(r[2]): PosToken(r[0], r[1], r[3], r[4], r[5]) for r in rows}

    @property
    def active(self) -> int:
        return len(self._active)

    def create(self, label: str) -> dict[str, Any]:
        """A new token; the returned ``token`` is never stored nor shown again."""
        if not isinstance(label, str) or not LABEL_PATTERN.match(label):
            raise TokenError("label: 1 to 64 letters, digits, spaces or . : @ / + - _ (e.g. tablet-1)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = PosToken(f"pt-{secrets.token_hex(4)}", label, self.clock(), None, None)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO pos_tokens (token_id, label, token_hash, created_at) VALUES (?, ?, ?, ?)",
                (entry.token_id, label, digest(token), entry.created_at),
            )
        self._active[digest(token)] = entry
        return {**entry.as_dict(), "token": token}

    def listing(self) -> list[dict[str, Any]]:
        rows = (
            self.store.read()
            .execute("SELECT token_id, label, created_at, last_used_at, revoked_at FROM pos_tokens ORDER BY created_at")
            .fetchall()
        )
        tokens = [PosToken(*r) for r in rows]
        for entry in tokens:  # memory is newer than the store for last use
            entry.last_used_at = self._touched.get(entry.token_id, entry.last_used_at)
        return [t.as_dict() for t in tokens]

    def revoke(self, token_id: str) -> dict[str, Any]:
        if not isinstance(token_id, str):
            raise TokenError("token id must be a string such as pt-1a2b3c4d (kassactl pos token list)")
        now = self.clock()
        with self.store.transaction() as conn:
            token_id = _whole_id(conn, token_id)
            row = conn.execute("SELECT revoked_at FROM pos_tokens WHERE token_id = ?", (token_id,)).fetchone()
            if row[0] is None:
                conn.execute("UPDATE pos_tokens SET revoked_at = ? WHERE token_id = ?", (now, token_id))
        already = row[0] is not None
        self._active = {h: t for h, t in self._active.items() if t.token_id != token_id}
        return {"token_id": token_id, "revoked": True, "already_revoked": already}

    def is_active(self, token_id: str) -> bool:
        return any(t.token_id == token_id for t in self._active.values())

    def check(self, token: str | None) -> PosToken | None:
        """The active token entry, or None; a hit refreshes last use (persisted now and then)."""
        if not token:
            return None
        entry = self._active.get(digest(token))
        if entry is None:
            return None
        now = self.clock()
        self._touched[entry.token_id] = now
        if entry.last_used_at is None or now - entry.last_used_at >= TOUCH_EVERY_S:
            entry.last_used_at = now
            with self.store.transaction() as conn:
                conn.execute("UPDATE pos_tokens SET last_used_at = ? WHERE token_id = ?", (now, entry.token_id))
        return entry


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _whole_id(conn: sqlite3.Connection, token_id: str) -> str:
    """The token id itself, or the one id that starts with what was typed (``pt-1a``)."""
    # substr, not LIKE: '%' and '_' in what a person typed are characters, not wildcards
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT token_id FROM pos_tokens WHERE substr(token_id, 1, ?) = ? ORDER BY token_id",
            (len(token_id), token_id),
        )
    ]
    if token_id in ids:
        return token_id
    if not token_id or not ids:
        raise TokenError(f"no POS token {token_id!r} (kassactl pos token list shows them)")
    if len(ids) > 1:
        raise TokenError(f"POS token id {token_id!r} is ambiguous: it starts {', '.join(ids)}; give more of the id")
    return ids[0]
