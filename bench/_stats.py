"""Small helpers shared by the benchmarks: percentiles and the results table."""

from __future__ import annotations

import json
import platform
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 4),
        "p99_ms": round(percentile(samples, 99) * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
    }


def machine() -> str:
    return f"{platform.machine()}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    result = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(result, indent=2))
    return path


class BareInsert:
    """The baseline of the commit benchmarks: one row insert in its own transaction into a
    bare SQLite file with the agent's durability (WAL, synchronous=FULL), nothing else."""

    def __init__(self, path: Path, payload_size: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        self.blob = b"x" * payload_size

    def timed_insert(self) -> float:
        """Seconds one committed insert took."""
        started = time.perf_counter()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO t(payload) VALUES (?)", (self.blob,))
        self.db.execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.db.close()
