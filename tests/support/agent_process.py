"""Run a real ``kassa-agent`` process against a config in a temp dir (tests and demo)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.ctl_client import ControlClient, ControlError

REPO_ROOT = Path(__file__).resolve().parents[2]

# Bound for the life of the test process and never listening: connections to it are refused,
# and no broker another test starts (in this or another xdist worker) can take it. A port merely
# free when chosen could later be a broker's, and a test agent would join a stranger's test.
_CLOSED = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_CLOSED.bind(("127.0.0.1", 0))
CLOSED_PORT: int = _CLOSED.getsockname()[1]


def write_agent_config(directory: Path, device_id: str = "pos-0001", extra: str = "", **mqtt: Any) -> Path:
    """A minimal agent.toml whose paths all live under ``directory``.

    Without an explicit broker port the agent points at a closed port (``CLOSED_PORT``), so a
    broker that happens to run on this machine is never used by accident.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mqtt.setdefault("port", CLOSED_PORT)
    mqtt.setdefault("reconnect_max_s", 2.0)
    lines = [
        f'device_id = "{device_id}"',
        "[paths]",
        f'state_dir = "{directory / "state"}"',
        f'run_dir = "{directory / "run"}"',
    ]
    if mqtt:
        lines.append("[mqtt]")
        lines += [
            f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"' for key, value in mqtt.items()
        ]
    lines.append(extra)
    if "[pos_api]" not in extra:
        # Any free port: many test agents run at once and must not fight over the default 8765.
        # Last, so that keys in `extra` stay in the section they were written for.
        lines += ["[pos_api]", "port = 0"]
    path = directory / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class AgentProcess:
    def __init__(self, config_path: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config_path = config_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.log_path = config_path.parent / "agent.log"
        self._socket_path: Path | None = None

    @property
    def socket_path(self) -> Path:
        if self._socket_path is None:  # cached: a test may break the file later on purpose
            from agent.config import load_config

            self._socket_path = load_config(self.config_path).paths.control_socket
        return self._socket_path

    def start(self, wait: bool = True, timeout_s: float = 20.0) -> AgentProcess:
        with open(self.log_path, "a") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent.main", "--config", str(self.config_path), *self.args],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        client = ControlClient(self.socket_path, timeout_s=2)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}:\n{self.log()}")
            try:
                if client.call("ping")["pong"]:
                    return
            except ControlError:
                time.sleep(0.05)
        raise TimeoutError(f"agent not ready within {timeout_s} s:\n{self.log()}")

    def client(self) -> ControlClient:
        return ControlClient(self.socket_path)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
