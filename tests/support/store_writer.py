"""Child process for the crash-safety test: commit transactions forever, report each commit.

Each transaction writes three rows sharing one ``txn``; a line ``txn`` is printed
only after COMMIT returned. The parent SIGKILLs us at an arbitrary moment.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from agent.schema import MIGRATIONS, Migration
from agent.store import Store

TEST_MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        MIGRATIONS[-1].version + 1,
        "crash_test",
        (
            "CREATE TABLE crash_rows (txn INTEGER NOT NULL, part INTEGER NOT NULL, payload BLOB NOT NULL,"
            " digest TEXT NOT NULL, PRIMARY KEY (txn, part)) STRICT",
        ),
    ),
)


def payload_for(txn: int, part: int) -> bytes:
    return (f"{txn}:{part}:".encode() * 50)[:2000]


def main() -> None:
    store = Store.open(Path(sys.argv[1]), TEST_MIGRATIONS)
    txn = 0
    while True:
        txn += 1
        with store.transaction() as conn:
            for part in range(3):
                data = payload_for(txn, part)
                conn.execute(
                    "INSERT INTO crash_rows VALUES (?, ?, ?, ?)", (txn, part, data, hashlib.sha256(data).hexdigest())
                )
        sys.stdout.write(f"{txn}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
