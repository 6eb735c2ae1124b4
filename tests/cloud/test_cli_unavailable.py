"""`kassa-cloud serve` / `worker` with the database or the broker missing at start: one line
saying which, where and what to check, and the documented exit code; no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from broker.launcher import free_port
from cloud_api.startup_checks import EX_UNAVAILABLE
from tests.support.agent_process import REPO_ROOT


def _kassa_cloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_api.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_serve_with_a_dead_database_says_so_in_one_line() -> None:
    port = free_port()  # nothing listens there
    result = _kassa_cloud("serve", "--database-url", f"postgresql+psycopg://kassa:s3cret@127.0.0.1:{port}/kassa")
    assert result.returncode == EX_UNAVAILABLE == 69
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kassa-cloud serve: cannot reach the database at ")
    assert f"postgresql+psycopg://kassa:***@127.0.0.1:{port}/kassa" in lines[0] and "s3cret" not in lines[0]
    assert "refused" in lines[0].lower() and "check" in lines[0]


def test_worker_with_a_dead_broker_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = _kassa_cloud("worker", "--database-url", f"sqlite:///{tmp_path / 'cloud.db'}", "--mqtt-port", str(port))
    assert result.returncode == EX_UNAVAILABLE
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kassa-cloud worker: cannot reach the broker at 127.0.0.1:{port} ")
    assert "check" in lines[0]


def test_serve_logs_json_lines_with_uvicorn_through_the_same_formatter(tmp_path: Path) -> None:
    """`--log-format json`: every line one JSON object, uvicorn's too, with no ANSI colour copy."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "cloud_api.main", "--log-format", "json", "serve", "--port", str(port)),
            *("--database-url", f"sqlite:///{tmp_path / 'cloud.db'}"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "KASSA_CLOUD_SIGNING_KEY_FILE": str(tmp_path / "k.pem")},
    )
    events = []
    try:
        assert server.stderr is not None
        for line in server.stderr:  # ends when the server exits; the test runner's timeout bounds a hang
            events.append(json.loads(line))
            if "startup complete" in events[-1]["msg"]:
                break
    finally:
        server.terminate()
        server.wait(20)
    uvicorn_events = [event for event in events if event["logger"].startswith("uvicorn")]
    assert uvicorn_events and "startup complete" in uvicorn_events[-1]["msg"]
    assert all("color_message" not in event and "\x1b[" not in json.dumps(event) for event in events)
