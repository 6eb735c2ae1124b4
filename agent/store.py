"""The agent's local store: one SQLite database, crash-safe by construction.

WAL mode with ``synchronous=FULL`` means a transaction that returned from COMMIT
survives a power cut, and readers never block the writer. All writes go through
one connection behind one lock (``Store.transaction``), so there is exactly one
writer path; each reading thread gets its own connection (``Store.read``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.schema import MIGRATIONS, Migration

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """The store cannot do what was asked. ``str()`` says what happened and what to do."""


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full. Nothing of the failed transaction was written."""


class StoreReadOnlyError(StoreError):
    """The database or its directory cannot be written."""


class StoreCorruptError(StoreError):
    """The integrity check failed at start."""


@dataclass(frozen=True)
class StoreInfo:
    path: str
    schema_version: int
    integrity: str
    journal_mode: str
    size_bytes: int
    disk_full: bool = False  # the last write failed for a full disk (cleared by the next write that succeeds)
    problem: str | None = None  # what that failure said, for kassactl status


class Store:
    """Open with ``Store.open(path)``; close with ``close()`` (or use as a context manager)."""

    def __init__(self, path: Path, writer: sqlite3.Connection, integrity: str) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = threading.RLock()
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._integrity = integrity
        self._closed = False
        self._commit_listeners: list[Callable[[], None]] = []
        self._full: str | None = None  # the message of the last write refused for a full disk

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        path: Path | str,
        migrations: Sequence[Migration] = MIGRATIONS,
        *,
        integrity_check: bool = True,
    ) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreReadOnlyError(
                f"cannot create the state directory {path.parent}: {exc.strerror}. "
                "Check that it exists and the agent's user may write it."
            ) from None
        try:
            writer = _connect(path)
            integrity = _check_integrity(writer, path) if integrity_check else "skipped"
            _migrate(writer, migrations, path)
        except sqlite3.Error as exc:
            raise translate_error(exc, path, "opening the store") from None
        store = cls(path, writer, integrity)
        log.info("store opened", extra={"path": str(path), "schema_version": store.schema_version})
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so a transaction never
        fails half-way with SQLITE_BUSY after doing work.
        """
        self._ensure_open()
        with self._write_lock:
            conn = self._writer
            if conn.in_transaction:  # nested use joins the outer transaction
                yield conn
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    error = translate_error(exc, self.path, "writing")
                    if isinstance(error, StoreFullError):
                        self._full = str(error)
                    raise error from exc
                raise
            self._full = None
        for listener in self._commit_listeners:
            listener()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every successful commit (e.g. to wake the outbox drain).

        It runs in the committing thread, outside the write lock; keep it cheap and thread-safe.
        """
        self._commit_listeners.append(listener)

    # ------------------------------------------------------------------ reading
    def read(self) -> sqlite3.Connection:
        """This thread's read connection. WAL readers see the last committed state and never block the writer."""
        self._ensure_open()
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            try:
                conn = _connect(self.path, reader=True)
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path, "reading") from None
            self._readers.conn = conn
            with self._readers_lock:
                self._reader_conns.append(conn)
        return conn

    # ------------------------------------------------------------------- status
    @property
    def schema_version(self) -> int:
        with self._write_lock:
            return int(self._writer.execute("PRAGMA user_version").fetchone()[0])

    def info(self) -> StoreInfo:
        with self._write_lock:
            mode = self._writer.execute("PRAGMA journal_mode").fetchone()[0]
        size = self.path.stat().st_size if self.path.exists() else 0
        return StoreInfo(
            str(self.path), self.schema_version, self._integrity, mode, size, self._full is not None, self._full
        )

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close every connection."""
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._reader_conns:
                    conn.close()
                self._reader_conns.clear()
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a full disk must not stop a clean shutdown
                log.warning("WAL checkpoint at close failed", extra={"error": str(exc)})
            self._writer.close()
        log.info("store closed", extra={"path": str(self.path)})

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed (the agent is stopping).")


def _connect(path: Path, reader: bool = False) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so Python never opens
    # implicit transactions behind our back. check_same_thread=False because the
    # writer is shared under our lock.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not reader:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode}); the filesystem may not support it.")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if reader:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _check_integrity(conn: sqlite3.Connection, path: Path) -> str:
    started = time.monotonic()
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    if rows != ["ok"]:
        raise StoreCorruptError(
            f"{path}: integrity check failed: {'; '.join(rows[:5])}. "
            "Stop the agent, keep a copy of the file for support, and restore from the cloud "
            "(kassactl diagnostics collects what support needs)."
        )
    log.debug("integrity check ok", extra={"seconds": round(time.monotonic() - started, 3)})
    return "ok"


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], path: Path) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StoreError(
            f"{path}: schema version {current} is newer than this agent knows ({latest}). "
            "Install the newer agent again, or restore the database that belongs to this version."
        )
    pending = [m for m in migrations if m.version > current]
    for index, migration in enumerate(pending, 1):
        log.info(
            "applying schema migration",
            extra={"version": migration.version, "migration": migration.name, "step": f"{index}/{len(pending)}"},
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                conn.execute(statement)
            # PRAGMA user_version is transactional in SQLite: it commits with the schema.
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


_FULL_CODES = {"SQLITE_FULL"}
_READONLY_CODES = {
    "SQLITE_READONLY",
    "SQLITE_READONLY_DIRECTORY",
    "SQLITE_READONLY_DBMOVED",
    "SQLITE_CANTOPEN",
    "SQLITE_PERM",
}


def translate_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """Turn a raw SQLite error into one that tells the operator what to do."""
    if isinstance(exc, StoreError):
        return exc
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name in _FULL_CODES or "disk is full" in text:
        return StoreFullError(
            f"{path}: the disk is full while {doing}; the last operation was not saved and nothing "
            f"was corrupted. Free space on the filesystem holding {path.parent}; the agent resumes by itself."
        )
    if name in _READONLY_CODES or "readonly" in text or "unable to open" in text:
        return StoreReadOnlyError(
            f"{path}: the database cannot be written while {doing} ({text}). Check that the filesystem "
            f"is mounted read-write and that the agent's user owns {path.parent}."
        )
    if name == "SQLITE_CORRUPT" or "malformed" in text:
        return StoreCorruptError(f"{path}: the database is damaged ({text}). Keep the file and contact support.")
    return StoreError(f"{path}: store error while {doing}: {text}")
