"""`make bench`: run every benchmark in turn; each prints its table and saves bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Each runs as a module (`python -m bench.<name>`) from the repository root, where `bench` and `tests` import.
BENCHMARKS = [
    ["bench_render"],
    ["bench_commit", "--n", "2000"],
    ["bench_outbox", "--n", "100000"],
    ["bench_ingest"],
    ["bench_login", "--n", "20"],
    ["bench_lease", "--n", "100000"],
    ["bench_pos_api", "--n", "2000"],
    ["bench_footprint", "--runs", "5"],
    ["cabinets"],  # seeds its own PostgreSQL schema (about a minute), then about three minutes of load
]


def main() -> int:
    failed = []
    for argv in BENCHMARKS:
        if not (HERE / f"{argv[0]}.py").exists():
            continue
        print(f"\n=== {' '.join(argv)} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{argv[0]}", *argv[1:]], cwd=HERE.parent).returncode != 0:
            failed.append(argv[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
