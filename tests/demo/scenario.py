"""The demo's steps. Each step is a method; later features add steps here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from broker.launcher import Mosquitto, free_port
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config


class DemoFailure(Exception):
    def __init__(self, step: str, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.logs = logs


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.steps_done = 0
        self.broker: Mosquitto | None = None
        self.cloud: subprocess.Popen[bytes] | None = None
        self.cloud_port = 0
        self.agent: AgentProcess | None = None

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("start broker", self.start_broker),
            ("start cloud service", self.start_cloud),
            ("start agent", self.start_agent),
            ("agent status (kassactl status)", self.show_status),
            ("stop agent cleanly", self.stop_agent),
        ]
        for name, step in steps:
            try:
                detail = step()
            except DemoFailure:
                raise
            except Exception as exc:  # any surprise is a failed step, with logs
                raise DemoFailure(name, f"{type(exc).__name__}: {exc}", self.collect_logs()) from exc
            self.steps_done += 1
            print(f"  ok  {name}: {detail}")

    # ------------------------------------------------------------------- steps
    def start_broker(self) -> str:
        self.broker = Mosquitto(self.workdir / "mosquitto").start()
        return f"mosquitto on {self.broker.host}:{self.broker.port}"

    def start_cloud(self) -> str:
        self.cloud_port = free_port()
        log = open(self.workdir / "cloud.log", "ab")
        env = {**os.environ, "KASSA_CLOUD_DATABASE_URL": f"sqlite:///{self.workdir / 'cloud.db'}"}
        self.cloud = subprocess.Popen(
            [sys.executable, "-m", "cloud_api.main", "serve", "--port", str(self.cloud_port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        health = self._wait_http(f"http://127.0.0.1:{self.cloud_port}/healthz", "start cloud service")
        return f"http://127.0.0.1:{self.cloud_port} healthy ({health['database']})"

    def start_agent(self) -> str:
        assert self.broker is not None
        config = write_agent_config(self.workdir / "agent", device_id="demo-pos-1", host=self.broker.host, port=self.broker.port)
        self.agent = AgentProcess(config).start()
        return f"device demo-pos-1, config {config}"

    def show_status(self) -> str:
        assert self.agent is not None
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(self.agent.socket_path), "status"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
        )
        if result.returncode != 0:
            raise DemoFailure("agent status", result.stderr, self.collect_logs())
        print("\n".join("        " + line for line in result.stdout.splitlines()))
        return "agent answered"

    def stop_agent(self) -> str:
        assert self.agent is not None
        code = self.agent.stop()
        if code != 0:
            raise DemoFailure("stop agent cleanly", f"exit code {code}", self.collect_logs())
        return "exit 0, store closed"

    # ----------------------------------------------------------------- helpers
    def _wait_http(self, url: str, step: str, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            if self.cloud is not None and self.cloud.poll() is not None:
                raise DemoFailure(step, f"cloud service exited with {self.cloud.returncode}", self.collect_logs())
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    return json.loads(reply.read())
            except OSError as exc:
                last_error = str(exc)
                time.sleep(0.1)
        raise DemoFailure(step, f"{url} not answering: {last_error}", self.collect_logs())

    def collect_logs(self) -> str:
        parts = []
        for name in ("agent/agent.log", "cloud.log", "mosquitto/mosquitto.log"):
            path = self.workdir / name
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
                parts.append(f"--- {path} (last lines) ---\n{tail}")
        return "\n".join(parts)

    def teardown(self) -> None:
        if self.agent is not None:
            self.agent.kill()
        if self.cloud is not None and self.cloud.poll() is None:
            self.cloud.terminate()
            try:
                self.cloud.wait(10)
            except subprocess.TimeoutExpired:
                self.cloud.kill()
        if self.broker is not None:
            self.broker.stop()
