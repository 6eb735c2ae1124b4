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
            # The lease held per licence (newest epoch only). `token` is re-verified at every
            # start; `state` turns to 'released' the moment the device stops using it.
            """CREATE TABLE licence_leases (
                licence_id  TEXT PRIMARY KEY,
                epoch       INTEGER NOT NULL,
                token       TEXT NOT NULL,
                received_at REAL NOT NULL,
                state       TEXT NOT NULL CHECK (state IN ('held', 'released'))
            ) STRICT""",
            # The highest epoch ever seen per licence: an older lease is never taken back.
            """CREATE TABLE licence_epochs (
                licence_id  TEXT PRIMARY KEY,
                highest     INTEGER NOT NULL
            ) STRICT""",
            # Leases given up, with the receipt signed by the device key. Reported to the
            # cloud until its licence document stops listing that epoch (confirmed_at).
            """CREATE TABLE licence_tombstones (
                licence_id   TEXT NOT NULL,
                epoch        INTEGER NOT NULL,
                receipt      TEXT NOT NULL,
                released_at  REAL NOT NULL,
                cause        TEXT NOT NULL,
                confirmed_at REAL,
                PRIMARY KEY (licence_id, epoch)
            ) STRICT""",
            # Licence keys typed in (only the last 4 characters are kept) and what became of
            # them: granted (a new lease arrived) or refused (the cloud's reason, from the ack).
            """CREATE TABLE licence_bind_requests (
                message_id   TEXT PRIMARY KEY,
                key_hint     TEXT NOT NULL,
                requested_at REAL NOT NULL,
                outcome      TEXT CHECK (outcome IN ('granted', 'refused')),
                detail       TEXT,
                decided_at   REAL
            ) STRICT""",
        ),
    ),
    Migration(
        5,
        "cashiers",
        (
            # The last roster this agent accepted (applied_state keeps the newest version
            # received, even one the handler refused): logins survive restarts and offline days.
            """CREATE TABLE cashier_roster (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                version     INTEGER NOT NULL,
                doc         TEXT NOT NULL,
                accepted_at REAL NOT NULL
            ) STRICT""",
            # Open cashier sessions. Only a hash of the token is kept: a copy of the database
            # does not hand out live sessions. `till_session_id` is what sales carry.
            """CREATE TABLE cashier_sessions (
                token_hash      TEXT PRIMARY KEY,
                till_session_id TEXT NOT NULL UNIQUE,
                cashier_id      TEXT NOT NULL,
                point_of_sale   TEXT,
                terminal_id     TEXT,
                operator_code   TEXT NOT NULL,
                started_at      REAL NOT NULL,
                last_used_at    REAL NOT NULL
            ) STRICT""",
            "CREATE INDEX cashier_sessions_by_cashier ON cashier_sessions(cashier_id)",
            # Wrong-PIN counters and lockouts per cashier on this device (wall-clock times).
            """CREATE TABLE cashier_lockouts (
                cashier_id   TEXT PRIMARY KEY,
                failures     INTEGER NOT NULL DEFAULT 0,
                locked_until REAL
            ) STRICT""",
        ),
    ),
    Migration(
        6,
        "sales",
        (
            # One row per committed sale; `request_id` makes commits idempotent, `result` is
            # what the first commit answered (a replay answers it again), `body` the kc.Sale.
            # `period_no` is the Z number that will close the sale's till period.
            """CREATE TABLE sales (
                sale_id        TEXT PRIMARY KEY,
                request_id     TEXT NOT NULL UNIQUE,
                request_hash   TEXT NOT NULL,
                receipt_no     INTEGER NOT NULL UNIQUE,
                period_no      INTEGER NOT NULL,
                created_at     REAL NOT NULL,
                cashier_id     TEXT NOT NULL,
                till_session_id TEXT NOT NULL,
                currency       TEXT NOT NULL,
                total          INTEGER NOT NULL,
                tax_total      INTEGER NOT NULL,
                change         INTEGER NOT NULL,
                body           TEXT NOT NULL,
                result         TEXT NOT NULL,
                print_job_id   TEXT
            ) STRICT""",
            "CREATE INDEX sales_by_period ON sales(period_no)",
            # Refunds, also of sales made on other devices (then `sale_body` keeps the
            # cloud's copy of the sale, so later partial refunds are checked against it).
            """CREATE TABLE refunds (
                refund_id      TEXT PRIMARY KEY,
                request_id     TEXT NOT NULL UNIQUE,
                request_hash   TEXT NOT NULL,
                sale_id        TEXT NOT NULL,
                original_device_id TEXT NOT NULL,
                receipt_no     INTEGER NOT NULL UNIQUE,
                period_no      INTEGER NOT NULL,
                created_at     REAL NOT NULL,
                cashier_id     TEXT NOT NULL,
                currency       TEXT NOT NULL,
                amount         INTEGER NOT NULL,
                tax_total      INTEGER NOT NULL,
                body           TEXT NOT NULL,
                result         TEXT NOT NULL,
                sale_body      TEXT,
                print_job_id   TEXT
            ) STRICT""",
            "CREATE INDEX refunds_by_sale ON refunds(sale_id)",
            "CREATE INDEX refunds_by_period ON refunds(period_no)",
            # What each refund took of each sale line: the sum per line never exceeds the sale.
            """CREATE TABLE refund_lines (
                refund_id   TEXT NOT NULL REFERENCES refunds(refund_id),
                sale_id     TEXT NOT NULL,
                line_index  INTEGER NOT NULL,
                qty_milli   INTEGER NOT NULL,
                amount      INTEGER NOT NULL,
                base        INTEGER NOT NULL,
                tax         INTEGER NOT NULL,
                tax_rate_bp INTEGER NOT NULL,
                PRIMARY KEY (refund_id, line_index)
            ) STRICT""",
            "CREATE INDEX refund_lines_by_sale ON refund_lines(sale_id)",
            # Per-device, gap-free counters (receipt numbers of sales and refunds share one).
            """CREATE TABLE sales_counters (
                name  TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            ) STRICT""",
            "INSERT INTO sales_counters(name, value) VALUES ('receipt_no', 0)",
            # Closed till periods; z_no counts without gaps, the open period is max(z_no) + 1.
            """CREATE TABLE z_reports (
                z_no        INTEGER PRIMARY KEY,
                report_id   TEXT NOT NULL UNIQUE,
                opened_at   REAL NOT NULL,
                closed_at   REAL NOT NULL,
                closed_by   TEXT NOT NULL,
                body        TEXT NOT NULL,
                print_job_id TEXT
            ) STRICT""",
        ),
    ),
    Migration(
        7,
        "pos_api",
        (
            # POS access tokens (pairing a web POS with this terminal, docs/pos-api.md):
            # only the SHA-256 of a token is kept; the token itself is shown once.
            """CREATE TABLE pos_tokens (
                token_id     TEXT PRIMARY KEY,
                label        TEXT NOT NULL,
                token_hash   BLOB NOT NULL UNIQUE,
                created_at   REAL NOT NULL,
                last_used_at REAL,
                revoked_at   REAL
            ) STRICT""",
        ),
    ),
    Migration(
        8,
        "print_copies",
        (
            # The agent copies a job by itself at most once: an original it cannot confirm (or that a
            # crash cut short) is 'failed' and gets one `automatic` copy; a copy it cannot confirm is
            # 'needs_attention' and prints again only when a person reprints it (never a copy of a
            # copy: on a slow link that repeated for ever). `queue_order` puts an automatic copy where
            # its original stood, ahead of receipts queued after it. SQLite cannot change a CHECK
            # constraint in place, so the table is rebuilt (dropping it drops its index).
            """CREATE TABLE print_jobs_v8 (
                job_id      TEXT PRIMARY KEY,
                printer     TEXT NOT NULL,
                kind        TEXT NOT NULL,
                ref         TEXT,
                data        BLOB NOT NULL,
                state       TEXT NOT NULL CHECK (state IN ('queued', 'printing', 'printed', 'failed', 'needs_attention')),
                attempts    INTEGER NOT NULL DEFAULT 0,
                last_error  TEXT,
                created_at  REAL NOT NULL,
                printed_at  REAL,
                copy_of     TEXT,
                automatic   INTEGER NOT NULL DEFAULT 0 CHECK (automatic IN (0, 1)),
                queue_order REAL NOT NULL
            ) STRICT""",  # noqa: E501 - a shipped migration keeps its SQL as it was
            """INSERT INTO print_jobs_v8(job_id, printer, kind, ref, data, state, attempts, last_error, created_at, printed_at, copy_of, queue_order)
               SELECT job_id, printer, kind, ref, data, state, attempts, last_error, created_at, printed_at, copy_of, created_at FROM print_jobs""",  # noqa: E501 - a shipped migration keeps its SQL as it was
            "DROP TABLE print_jobs",
            "ALTER TABLE print_jobs_v8 RENAME TO print_jobs",
            "CREATE INDEX print_jobs_waiting ON print_jobs(printer, queue_order) WHERE state IN ('queued', 'printing')",
        ),
    ),
)
