"""`make demo`: bring up broker + cloud + agent with simulated hardware, run the scenario, tear down.

Exits 0 only if every step worked. Each step prints one line; on failure the
relevant logs are printed and the exit code is 1. Artefacts (configs, logs,
receipt previews) stay in the printed directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.demo.scenario import Demo, DemoFailure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo")
    parser.add_argument("--dir", type=Path, help="where to keep the demo's files (default: a new temp dir)")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="kassa-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"kassa demo: files in {workdir}")
    started = time.monotonic()
    demo = Demo(workdir)
    try:
        demo.run()
    except DemoFailure as exc:
        print(f"\nDEMO FAILED at step '{exc.step}': {exc}", file=sys.stderr)
        if exc.logs:
            print(exc.logs, file=sys.stderr)
        return 1
    finally:
        demo.teardown()
    print(
        f"\nkassa demo: all {demo.steps_done} steps passed in {time.monotonic() - started:.1f} s (files in {workdir})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
