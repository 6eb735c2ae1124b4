from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent import meta
from agent.schema import MIGRATIONS, Migration
from agent.store import Store, StoreCorruptError, StoreError, StoreFullError, StoreReadOnlyError
from tests.support.agent_process import REPO_ROOT
from tests.support.store_writer import TEST_MIGRATIONS

EXTRA = Migration(
    MIGRATIONS[-1].version + 1, "things", ("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL) STRICT",)
)


def test_pragmas_wal_full_sync_foreign_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as store:
        with store.transaction() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        reader = store.read()
        assert reader.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert store.info().integrity == "ok"


def test_migrations_apply_in_order_once(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store.open(path) as store:
        assert store.schema_version == MIGRATIONS[-1].version
    with Store.open(path, (*MIGRATIONS, EXTRA)) as store:
        assert store.schema_version == EXTRA.version
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(name) VALUES ('kept')")
    with Store.open(path, (*MIGRATIONS, EXTRA)) as store:  # re-opening applies nothing again
        assert [r[0] for r in store.read().execute("SELECT name FROM things")] == ["kept"]


def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    broken = Migration(EXTRA.version, "broken", ("CREATE TABLE t1 (x INTEGER)", "THIS IS NOT SQL"))
    with pytest.raises(StoreError):
        Store.open(path, (*MIGRATIONS, broken))
    with Store.open(path) as store:
        assert store.schema_version == MIGRATIONS[-1].version
        assert store.read().execute("SELECT count(*) FROM sqlite_master WHERE name = 't1'").fetchone()[0] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    Store.open(path, (*MIGRATIONS, EXTRA)).close()
    with pytest.raises(StoreError, match="newer than this agent knows"):
        Store.open(path)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", (*MIGRATIONS, EXTRA)) as store:
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute("INSERT INTO things(name) VALUES ('lost')")
            raise RuntimeError("boom")
        assert store.read().execute("SELECT count(*) FROM things").fetchone()[0] == 0


def test_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", (*MIGRATIONS, EXTRA)) as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(name) VALUES ('first')")
        reading = threading.Event()
        release = threading.Event()
        seen: list[int] = []

        def long_reader() -> None:
            conn = store.read()
            conn.execute("BEGIN")
            seen.append(conn.execute("SELECT count(*) FROM things").fetchone()[0])
            reading.set()
            release.wait(10)
            seen.append(conn.execute("SELECT count(*) FROM things").fetchone()[0])  # same snapshot
            conn.execute("COMMIT")

        thread = threading.Thread(target=long_reader)
        thread.start()
        assert reading.wait(10)
        with store.transaction() as conn:  # would raise SQLITE_BUSY if readers blocked writers
            conn.execute("INSERT INTO things(name) VALUES ('second')")
        release.set()
        thread.join(10)
        assert seen == [1, 1]
        assert store.read().execute("SELECT count(*) FROM things").fetchone()[0] == 2


def test_store_bound_to_its_device(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as store:
        assert meta.claim_for_device(store, "pos-1") == 1
        assert meta.claim_for_device(store, "pos-1") == 2
        with pytest.raises(StoreError, match="belongs to device 'pos-1'"):
            meta.claim_for_device(store, "pos-2")


def test_corrupt_file_fails_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store.open(path, (*MIGRATIONS, EXTRA)) as store, store.transaction() as conn:
        conn.executemany("INSERT INTO things(name) VALUES (?)", [(f"row {i}" * 20,) for i in range(2000)])
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    for number in range(pages // 2, pages):  # scribble over the b-tree page headers
        for offset in range(number * page, number * page + 12):
            data[offset] = 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=r"integrity check failed|damaged"):
        Store.open(path, (*MIGRATIONS, EXTRA))


def test_database_size_limit_gives_disk_full_error_and_keeps_data(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", (*MIGRATIONS, EXTRA)) as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(name) VALUES ('before')")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with (
            pytest.raises(StoreFullError, match=r"disk is full.*nothing\s+was corrupted"),
            store.transaction() as conn,
        ):
            conn.executemany("INSERT INTO things(name) VALUES (?)", [("x" * 1000,) for _ in range(100)])
        names = [r[0] for r in store.read().execute("SELECT name FROM things")]
        assert names == ["before"]
        assert store.read().execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _mount_tmpfs(target: Path, size: str) -> bool:
    target.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs needs root; the page-limit test covers SQLITE_FULL otherwise"
)
def test_real_full_filesystem(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    assert _mount_tmpfs(mount, "600k"), "mount tmpfs failed"
    try:
        filler = mount / "old-logs"  # something an operator can delete to make room
        filler.write_bytes(b"\0" * 200_000)
        store = Store.open(mount / "a.db", (*MIGRATIONS, EXTRA))
        committed = 0
        with pytest.raises(StoreFullError, match="disk is full"):
            for _ in range(10_000):
                with store.transaction() as conn:
                    conn.execute("INSERT INTO things(name) VALUES (?)", ("y" * 2000,))
                committed += 1
        assert committed > 0
        assert store.read().execute("SELECT count(*) FROM things").fetchone()[0] == committed
        filler.unlink()  # space returns: writes resume without a restart
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(name) VALUES ('after')")
        assert store.read().execute("SELECT count(*) FROM things").fetchone()[0] == committed + 1
        store.close()
        with Store.open(mount / "a.db", (*MIGRATIONS, EXTRA)) as again:
            assert again.info().integrity == "ok"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only mount needs root")
def test_read_only_filesystem_is_a_clear_error(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    assert _mount_tmpfs(mount, "2m")
    try:
        Store.open(mount / "a.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(StoreReadOnlyError, match="mounted read-write"):
            Store.open(mount / "a.db")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sigkill_mid_stream_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for round_no in range(3):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.store_writer", str(path)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        target = rng.randint(20, 300)
        reported = []
        for line in child.stdout:
            reported.append(int(line))
            if len(reported) >= target:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        with Store.open(path, TEST_MIGRATIONS) as store:
            assert store.info().integrity == "ok", f"seed {seed} round {round_no}"
            rows = store.read().execute("SELECT txn, part, payload, digest FROM crash_rows").fetchall()
        by_txn: dict[int, int] = {}
        for txn, _part, payload, digest in rows:
            assert hashlib.sha256(payload).hexdigest() == digest, "partial row"
            by_txn[txn] = by_txn.get(txn, 0) + 1
        assert all(count == 3 for count in by_txn.values()), f"partial transaction (seed {seed})"
        # every transaction the child saw committed is there
        assert set(reported) <= set(by_txn), f"seed {seed}"
        path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "a.db")
    store.close()
    with pytest.raises(StoreError, match="closed"), store.transaction():
        pass
    with pytest.raises(StoreError, match="closed"):
        store.read()
