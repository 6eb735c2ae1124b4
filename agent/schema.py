"""Schema versions of the agent store, applied in order at start.

Append new migrations; never edit one that has shipped. Each runs in its own
transaction together with the ``PRAGMA user_version`` bump, so a crash mid-way
leaves the previous version intact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "meta",
        (
            # Small facts about this installation: which device owns the store,
            # boot counter, first start. Values are text; callers convert.
            """CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) STRICT""",
        ),
    ),
    Migration(
        2,
        "cloud_link",
        (
            # Up messages waiting for the cloud's ack. `seq` is the per-device sequence
            # number; the payload is encoded once at enqueue so every resend is
            # byte-identical (same message id: the cloud absorbs duplicates).
            # No index on message_id: acks are matched against the in-flight window
            # in memory, and a second index would tax every sale's commit.
            """CREATE TABLE outbox (
                seq         INTEGER PRIMARY KEY,
                message_id  TEXT NOT NULL,
                type        TEXT NOT NULL,
                payload     BLOB NOT NULL,
                created_at  REAL NOT NULL
            ) STRICT""",
            # Messages the cloud refused for good (schema, business rule): kept for support.
            """CREATE TABLE outbox_rejected (
                seq         INTEGER PRIMARY KEY,
                message_id  TEXT NOT NULL,
                type        TEXT NOT NULL,
                payload     BLOB NOT NULL,
                reason      TEXT NOT NULL,
                rejected_at REAL NOT NULL
            ) STRICT""",
            # Commands applied once: a redelivered command gets the stored reply again.
            """CREATE TABLE inbox (
                message_id  TEXT PRIMARY KEY,
                name        TEXT NOT NULL,
                received_at REAL NOT NULL,
                reply       BLOB NOT NULL
            ) STRICT""",
            # The newest version applied per pushed state domain, and that document.
            """CREATE TABLE applied_state (
                domain      TEXT PRIMARY KEY,
                version     INTEGER NOT NULL,
                doc         TEXT NOT NULL,
                applied_at  REAL NOT NULL
            ) STRICT""",
        ),
    ),
    Migration(
        3,
        "print_queue",
        (
            # Print jobs persist until the printer confirms them. `data` is the rendered
            # ESC/POS, so a job prints the same after an upgrade of the document model.
            # state: queued -> printing -> printed; `printing` found at start means the
            # agent died mid-job: it is queued again as a marked copy.
            """CREATE TABLE print_jobs (
                job_id      TEXT PRIMARY KEY,
                printer     TEXT NOT NULL,
                kind        TEXT NOT NULL,
                ref         TEXT,
                data        BLOB NOT NULL,
                state       TEXT NOT NULL CHECK (state IN ('queued', 'printing', 'printed', 'failed')),
                attempts    INTEGER NOT NULL DEFAULT 0,
                last_error  TEXT,
                created_at  REAL NOT NULL,
                printed_at  REAL,
                copy_of     TEXT
            ) STRICT""",
            "CREATE INDEX print_jobs_waiting ON print_jobs(printer, created_at) WHERE state IN ('queued', 'printing')",
        ),
    ),
    Migration(
        4,
        "licence",
        (
            # TODO(licence helper): licence tables
            "CREATE TABLE licence_placeholder (x INTEGER) STRICT",
        ),
    ),
    Migration(
        5,
        "cashiers",
        (
            # TODO(cashiers helper): cashier tables
            "CREATE TABLE cashiers_placeholder (x INTEGER) STRICT",
        ),
    ),
)
