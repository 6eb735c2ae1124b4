"""The scanner and drawer simulators also run as separate processes (the demo starts them that way)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from pathlib import Path

from drivers import DeviceStatus, open_drawer, open_scanner

ROOT = Path(__file__).resolve().parents[2]


def start(module: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args, "--log-level", "WARNING"],
        stdin=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"{path} was not written")


def send(process: subprocess.Popen, line: str) -> None:
    process.stdin.write(line + "\n")
    process.stdin.flush()


def test_scanner_simulator_process(tmp_path):
    process = start("drivers.sim.scanner", "--path-file", str(tmp_path / "path"), "--prefix", "\\x02")
    try:
        path = wait_for_file(tmp_path / "path")
        scanner = open_scanner(f"serial://{path}?prefix=\\x02")
        events: queue.Queue = queue.Queue()
        scanner.start(events.put)
        assert scanner.ready.wait(5)
        send(process, "4006381333931")
        event = events.get(timeout=5)
        scanner.stop()
        assert (event.data, event.valid) == ("4006381333931", True)
        send(process, "quit")
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_drawer_simulator_process(tmp_path):
    process = start("drivers.sim.drawer", "--path-file", str(tmp_path / "path"))
    try:
        drawer = open_drawer(f"serial://{wait_for_file(tmp_path / 'path')}", settle_time=0.05)
        assert drawer.state() is DeviceStatus.DRAWER_CLOSED
        drawer.open()
        assert drawer.state() is DeviceStatus.DRAWER_OPEN
        send(process, "close")
        deadline = time.monotonic() + 5
        while drawer.state() is not DeviceStatus.DRAWER_CLOSED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert drawer.state() is DeviceStatus.DRAWER_CLOSED
        drawer.close()
        send(process, "quit")
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
