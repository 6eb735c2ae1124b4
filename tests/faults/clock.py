"""A wall clock the test moves under a real agent process: libfaketime (Debian package
`libfaketime`, `make faketime`) preloaded into the agent, its offset read from a file the test
rewrites (`FAKETIME_TIMESTAMP_FILE`, re-read on every call with `FAKETIME_NO_CACHE=1`).
`DONT_FAKE_MONOTONIC=1`: like a real NTP step, only the wall clock moves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _find_libfaketime() -> Path:
    """Where Debian put it: /usr/lib/<multiarch triplet>/faketime/ (x86_64, aarch64, ...)."""
    if "KASSA_LIBFAKETIME" in os.environ:
        return Path(os.environ["KASSA_LIBFAKETIME"])
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0] if found else Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


LIBFAKETIME = _find_libfaketime()


class FakeWallClock:
    """`set("+3h")`, `set("-2h")`, `set("+0")`: the agent's wall clock, relative to the real one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = ""
        self.set("+0")

    def set(self, offset: str) -> None:
        # Written aside and renamed: the agent reads the file on every clock call, never half of it.
        scratch = self.path.with_name(self.path.name + ".new")
        scratch.write_text(offset + "\n")
        os.replace(scratch, self.path)
        self.offset = offset

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def check(self) -> None:
        """Fail (never skip) unless a Python subprocess under this clock sees the offset on
        time.time() and the real time on time.monotonic()."""
        if not LIBFAKETIME.exists():
            pytest.fail(
                f"the clock-jump fault test needs libfaketime at {LIBFAKETIME}: run `make faketime` "
                "(installs the Debian package libfaketime)"
            )
        previous = self.offset
        self.set("+3h")
        try:
            probe = "import time; print(time.time(), time.monotonic())"
            before_wall, before_mono = time.time(), time.monotonic()
            result = subprocess.run(
                [sys.executable, "-c", probe],
                env={**os.environ, **self.env()},
                capture_output=True,
                text=True,
                timeout=30,
            )
            after_wall, after_mono = time.time(), time.monotonic()
        finally:
            self.set(previous)
        assert result.returncode == 0, f"python under libfaketime failed: {result.stderr}"
        wall, mono = map(float, result.stdout.split())
        assert before_wall + 3 * 3600 - 5 <= wall <= after_wall + 3 * 3600 + 5, (
            f"libfaketime did not move time.time() by +3h (got {wall - after_wall:+.0f} s)"
        )
        assert before_mono - 1 <= mono <= after_mono + 1, (
            "libfaketime moved time.monotonic() too (DONT_FAKE_MONOTONIC ignored)"
        )
