"""The durable outbox: up messages persist here until the cloud acks them.

Producers call ``Outbox.enqueue(conn, outbox.draft(body))`` inside their own store
transaction (the draft made before it opens), so a sale and its outbox row commit
together or not at all. Rows leave the
table only when the cloud's ``down/ack`` settles them (never on MQTT PUBACK).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent import meta
from agent.store import Store
from broker import contract as kc

# The highest seq ever settled. The next seq is max(max(seq in outbox), this) + 1, so
# enqueue never writes a counter of its own. Both count: acks settle out of order (a
# resend, a reconnect), and a newer row settled before an older one must not hand its
# seq out again (the drain, past it already, would never send the new row).
SETTLED_SEQ_KEY = "outbox_settled_seq"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    message_id: uuid.UUID
    type: str
    payload: bytes
    topic: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_age_s: float | None
    rejected: int


class Outbox:
    def __init__(
        self,
        store: Store,
        device_id: str,
        boot_id: uuid.UUID,
        clock_trusted: Callable[[], bool],
    ) -> None:
        self.store = store
        self.device_id = device_id
        self.boot_id = boot_id
        self.clock_trusted = clock_trusted
        self._topics = {t: kc.up_topic(device_id, t) for t in kc.MessageType if t.is_up}

    # ---------------------------------------------------------------- producing
    def draft(self, body: kc.Body, *, correlation_id: uuid.UUID | None = None) -> kc.UpDraft:
        """Encode an up message for `enqueue`, all but its sequence number.

        Call it before the transaction opens: the store's write lock is then held only for
        the insert. Raises PayloadTooLargeError before anything is written.
        """
        return kc.draft_up(
            body,
            device_id=self.device_id,
            boot_id=self.boot_id,
            clock_trusted=self.clock_trusted(),
            correlation_id=correlation_id,
        )

    def enqueue(
        self, conn: sqlite3.Connection, message: kc.Body | kc.UpDraft, *, correlation_id: uuid.UUID | None = None
    ) -> OutboxRow:
        """Add one up message inside the caller's transaction (``with store.transaction() as conn``).

        `message` is a body, or better its `draft` made before the transaction.
        """
        if not conn.in_transaction:
            raise RuntimeError("Outbox.enqueue must run inside Store.transaction()")
        draft = message if isinstance(message, kc.UpDraft) else self.draft(message, correlation_id=correlation_id)
        seq = self._last_seq(conn) + 1
        payload = draft.payload(seq)
        conn.execute(
            "INSERT INTO outbox(seq, message_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            (seq, str(draft.message_id), draft.type.value, payload, time.time()),
        )
        return OutboxRow(seq, draft.message_id, draft.type.value, payload, self._topics[draft.type])

    def enqueue_one(self, body: kc.Body, *, correlation_id: uuid.UUID | None = None) -> OutboxRow:
        """Enqueue in a transaction of its own (for messages not tied to other writes)."""
        draft = self.draft(body, correlation_id=correlation_id)  # before BEGIN
        with self.store.transaction() as conn:
            return self.enqueue(conn, draft)

    # ----------------------------------------------------------------- draining
    def after(self, seq: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows with a sequence number above ``seq``, in order.

        The drain loop pages through the table this way, so a backlog of any size
        is streamed a window at a time and never loaded whole.
        """
        rows = (
            self.store.read()
            .execute(
                "SELECT seq, message_id, type, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            )
            .fetchall()
        )
        return [self._row(r) for r in rows]

    def get(self, seq: int) -> OutboxRow | None:
        row = (
            self.store.read()
            .execute("SELECT seq, message_id, type, payload FROM outbox WHERE seq = ?", (seq,))
            .fetchone()
        )
        return None if row is None else self._row(row)

    def _row(self, row: sqlite3.Row) -> OutboxRow:
        return OutboxRow(
            row["seq"],
            uuid.UUID(row["message_id"]),
            row["type"],
            row["payload"],
            self._topics[kc.MessageType(row["type"])],
        )

    def settle(self, acked: Iterable[tuple[int, uuid.UUID]], rejected: Iterable[tuple[int, str]] = ()) -> int:
        """Delete rows the cloud acked; move rows it refused for good aside. One transaction."""
        acked = list(acked)
        rejected = list(rejected)
        if not acked and not rejected:
            return 0
        with self.store.transaction() as conn:
            highest = max([s for s, _ in acked] + [s for s, _ in rejected])
            if highest > int(meta.get(conn, SETTLED_SEQ_KEY) or 0):
                meta.put(conn, SETTLED_SEQ_KEY, str(highest))
            if rejected:
                conn.executemany(
                    "INSERT OR REPLACE INTO outbox_rejected(seq, message_id, type, payload, reason, rejected_at) "
                    "SELECT seq, message_id, type, payload, ?, ? FROM outbox WHERE seq = ?",
                    ((reason, time.time(), seq) for seq, reason in rejected),
                )
            # seq and message_id both match: an ack for a stale id never deletes another row
            conn.executemany("DELETE FROM outbox WHERE seq = ? AND message_id = ?", ((s, str(m)) for s, m in acked))
            conn.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s, _ in rejected))
        return len(acked) + len(rejected)

    # ------------------------------------------------------------------- status
    def stats(self) -> OutboxStats:
        conn = self.store.read()
        depth, oldest = conn.execute("SELECT count(*), min(created_at) FROM outbox").fetchone()
        rejected = conn.execute("SELECT count(*) FROM outbox_rejected").fetchone()[0]
        return OutboxStats(depth, None if oldest is None else round(time.time() - oldest, 1), rejected)

    def last_seq(self) -> int:
        return self._last_seq(self.store.read())

    @staticmethod
    def _last_seq(conn: sqlite3.Connection) -> int:
        highest = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
        return max(highest or 0, int(meta.get(conn, SETTLED_SEQ_KEY) or 0))
