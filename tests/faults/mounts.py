"""A small tmpfs mounted over a directory, for filling a disk on purpose (needs root or CAP_SYS_ADMIN)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, size: str) -> Path:
    """Mount a tmpfs of `size` (e.g. "16m") over `path`. Fails the test (never skips) when the
    machine does not let us mount: this fault needs a real full filesystem."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.fail("the disk-full fault test needs the `mount` command (util-linux) to mount a small tmpfs")
    if result.returncode != 0:
        pytest.fail(
            f"the disk-full fault test mounts a small tmpfs over {path} and so needs root or CAP_SYS_ADMIN "
            f"(running as uid {os.getuid()}): mount said: {result.stderr.strip() or result.returncode}"
        )
    return path


def unmount(path: Path) -> None:
    """Unmount; a lazy unmount if something still holds a file open there."""
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(directory: Path, name: str = "ballast", chunk: int = 64 * 1024) -> Path:
    """Write a file in `directory` until the filesystem has no byte left (ENOSPC)."""
    ballast = directory / name
    block = b"\0" * chunk
    with open(ballast, "ab", buffering=0) as out:
        while True:
            try:
                out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    return ballast


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize
