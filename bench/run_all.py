"""`make bench`: run every benchmark in turn; each prints its table and saves bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_render.py"],
    ["bench_commit.py", "--n", "2000"],
    ["bench_outbox.py", "--n", "100000"],
    ["bench_ingest.py"],
    ["bench_login.py", "--n", "20"],
    ["bench_lease.py", "--n", "100000"],
    ["bench_pos_api.py", "--n", "2000"],
    ["bench_footprint.py", "--runs", "5"],
]


def main() -> int:
    failed = []
    for argv in BENCHMARKS:
        script = HERE / argv[0]
        if not script.exists():
            continue
        print(f"\n=== {' '.join(argv)} ===", flush=True)
        if subprocess.run([sys.executable, str(script), *argv[1:]], cwd=HERE.parent).returncode != 0:
            failed.append(argv[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
