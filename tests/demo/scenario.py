"""The demo's steps. Each step is a method; later features add steps here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agent.ctl_client import ControlClient
from broker import contract as kc
from broker.launcher import Mosquitto, free_port
from cloud_api import signing_keys
from cloud_api.models import CommandReply
from cloud_api.provisioning import qr_text, write_qr_png
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.mqtt_peer import MqttPeer

DEVICE = "demo-pos-1"


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
        self.cloud: Cloud | None = None
        self.http: subprocess.Popen[bytes] | None = None
        self.printer: subprocess.Popen[str] | None = None
        self.scanner: subprocess.Popen[str] | None = None
        self.agent: AgentProcess | None = None
        self.cloud_peer: MqttPeer | None = None
        self.preview_dir = workdir / "receipts"

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("start broker", self.start_broker),
            ("start cloud service and ingest worker", self.start_cloud),
            ("start simulated printer and scanner", self.start_hardware),
            ("start agent", self.start_agent),
            ("agent status (kassactl status)", self.show_status),
            ("test print to the virtual printer", self.test_print),
            ("open the cash drawer (no sale)", self.open_drawer),
            ("scan a barcode", self.scan),
            ("scan a signed configuration QR (point of sale, language)", self.provision),
            ("cloud pushes config v1 (retained, versioned)", self.push_config),
            ("cloud command ping -> reply through the outbox -> cloud", self.ping),
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
            print(f"  ok  {name}: {detail}", flush=True)

    # ------------------------------------------------------------------- steps
    def start_broker(self) -> str:
        self.broker = Mosquitto(self.workdir / "mosquitto").start()
        return f"mosquitto on {self.broker.host}:{self.broker.port}"

    def start_cloud(self) -> str:
        assert self.broker is not None
        self.cloud = Cloud(self.workdir / "cloud", self.broker)
        self.cloud.start_worker_process("demo")
        port = free_port()
        log = open(self.workdir / "cloud" / "http.log", "ab")
        env = {**os.environ, "KASSA_CLOUD_DATABASE_URL": self.cloud.database_url}
        self.http = subprocess.Popen(
            [sys.executable, "-m", "cloud_api.main", "serve", "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        health = self._wait_http(f"http://127.0.0.1:{port}/healthz", "start cloud service")
        return f"http://127.0.0.1:{port} healthy ({health['database']}), ingest worker on $share/ingest"

    def start_hardware(self) -> str:
        port_file, path_file = self.workdir / "printer.port", self.workdir / "scanner.path"
        self.printer = self._spawn("printer", [sys.executable, "-m", "drivers.sim.printer", "--port", "0", "--port-file", str(port_file), "--preview-dir", str(self.preview_dir)])
        self.scanner = self._spawn("scanner", [sys.executable, "-m", "drivers.sim.scanner", "--path-file", str(path_file)])
        self.printer_port = int(self._wait_file(port_file, "printer"))
        self.scanner_path = self._wait_file(path_file, "scanner")
        return f"ESC/POS printer on tcp://127.0.0.1:{self.printer_port}, serial scanner on {self.scanner_path}"

    def start_agent(self) -> str:
        assert self.broker is not None
        hardware = f"""
[hardware]
status_poll_s = 1.0

[[printers]]
name = "front"
url = "tcp://127.0.0.1:{self.printer_port}"

[[drawers]]
name = "cash"
url = "printer:?pin=2"
printer = "front"

[[scanners]]
name = "hand"
url = "serial://{self.scanner_path}"
"""
        self.signing_key = signing_keys.generate(self.workdir / "cloud" / "signing.pem", "demo-cloud-1")
        trust = f'\n[trust]\ncloud_keys = {{ "{self.signing_key.key_id}" = "{self.signing_key.public_text}" }}\n'
        config = write_agent_config(self.workdir / "agent", device_id=DEVICE, extra=hardware + trust, host=self.broker.host, port=self.broker.port)
        self.agent = AgentProcess(config).start()
        self._wait(lambda: self._status()["components"]["cloud"]["connected"], "start agent", "the agent's broker connection")
        return f"device {DEVICE}, config {config}"

    def show_status(self) -> str:
        assert self.agent is not None
        self._wait(lambda: self._status()["components"]["hardware"]["printers"]["front"]["status"] == "ready", "agent status", "printer status ready")
        result = self._kassactl("status")
        print("\n".join("        " + line for line in result.splitlines()))
        return "agent answered"

    def test_print(self) -> str:
        job = self._client().call("print.test")
        self._wait(lambda: any(j["job_id"] == job["job_id"] and j["state"] == "printed" for j in self._client().call("print.jobs")), "test print", "job printed")
        previews = sorted(self.preview_dir.glob("*.png"))
        if not previews:
            raise DemoFailure("test print", f"no receipt preview in {self.preview_dir}", self.collect_logs())
        text = sorted(self.preview_dir.glob("*.txt"))[-1].read_text()
        if "kassa test print" not in text:
            raise DemoFailure("test print", f"preview text does not show the test page:\n{text}")
        return f"job {job['job_id'][:8]} printed; receipt preview {previews[-1]}"

    def open_drawer(self) -> str:
        result = self._client().call("drawer.open", drawer="cash")
        return f"drawer 'cash' kicked through the printer, sensor says {result['state']}"

    def scan(self) -> str:
        assert self.scanner is not None and self.scanner.stdin is not None
        before = self._status()["components"]["hardware"]["scans"]
        self.scanner.stdin.write("4006381333931\n")
        self.scanner.stdin.flush()
        self._wait(lambda: self._status()["components"]["hardware"]["scans"] == before + 1, "scan", "the scan to reach the agent")
        return "EAN-13 4006381333931 delivered to the agent's event stream"

    def provision(self) -> str:
        assert self.scanner is not None and self.scanner.stdin is not None
        settings = kc.Provisioning(point_of_sale="POS-DEMO-1", language="de", rooms=["Hall A"], issued_at=datetime.now(timezone.utc))
        text = qr_text(settings, self.signing_key)
        write_qr_png(text, self.workdir / "configuration-qr.png")
        self.scanner.stdin.write(text + "\n")
        self.scanner.stdin.flush()
        self._wait(lambda: self._client().call("config.get", key="site.point_of_sale")["value"] == "POS-DEMO-1", "provision", "the QR settings applied")
        return f"point of sale POS-DEMO-1, language de applied (QR image {self.workdir / 'configuration-qr.png'})"

    def push_config(self) -> str:
        assert self.broker is not None
        self.cloud_peer = MqttPeer(self.broker, "demo-cloud-push")
        doc = kc.StateDoc(domain=kc.StateDomain.CONFIG, version=1, doc={"language": "en", "receipt_footer": "Thank you!"}, issued_at=datetime.now(timezone.utc))
        self.cloud_peer.send(kc.down_message(doc, device_id=DEVICE))
        self._wait(lambda: self._status()["components"]["cloud"]["state_versions"].get("config") == 1, "push config", "config v1 applied")
        return "agent applied config version 1"

    def ping(self) -> str:
        assert self.cloud_peer is not None and self.cloud is not None
        command = kc.down_message(kc.Command(name="ping"), device_id=DEVICE)
        self.cloud_peer.send(command)

        def replied() -> CommandReply | None:
            with self.cloud.engine.connect() as conn:  # type: ignore[union-attr]
                return conn.execute(select(CommandReply).where(CommandReply.correlation_id == command.id)).first()

        self._wait(lambda: replied() is not None, "ping", "the reply in the cloud database")
        self._wait(lambda: self._status()["components"]["cloud"]["outbox_depth"] == 0, "ping", "the outbox to drain")
        return "reply stored by the cloud, acked, outbox empty"

    def stop_agent(self) -> str:
        assert self.agent is not None
        code = self.agent.stop()
        if code != 0:
            raise DemoFailure("stop agent cleanly", f"exit code {code}", self.collect_logs())
        return "exit 0, store closed"

    # ----------------------------------------------------------------- helpers
    def _client(self) -> ControlClient:
        assert self.agent is not None
        return self.agent.client()

    def _status(self) -> dict[str, Any]:
        return self._client().call("status")

    def _kassactl(self, *args: str) -> str:
        assert self.agent is not None
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(self.agent.socket_path), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise DemoFailure(f"kassactl {' '.join(args)}", result.stderr, self.collect_logs())
        return result.stdout

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        log = open(self.workdir / f"{name}.log", "a")
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        return process

    def _wait_file(self, path: Path, what: str, timeout_s: float = 20) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return path.read_text().strip()
            time.sleep(0.05)
        raise DemoFailure(f"start {what}", f"the simulator did not write {path}", self.collect_logs())

    def _wait(self, predicate: Callable[[], bool], step: str, what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise DemoFailure(step, f"timed out after {timeout_s:.0f} s waiting for {what}", self.collect_logs())

    def _wait_http(self, url: str, step: str, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            if self.http is not None and self.http.poll() is not None:
                raise DemoFailure(step, f"cloud service exited with {self.http.returncode}", self.collect_logs())
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    return json.loads(reply.read())
            except OSError as exc:
                last_error = str(exc)
                time.sleep(0.1)
        raise DemoFailure(step, f"{url} not answering: {last_error}", self.collect_logs())

    def collect_logs(self) -> str:
        parts = []
        for name in ("agent/agent.log", "cloud/http.log", "cloud/worker-demo.log", "printer.log", "scanner.log", "mosquitto/mosquitto.log"):
            path = self.workdir / name
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
                parts.append(f"--- {path} (last lines) ---\n{tail}")
        return "\n".join(parts)

    def teardown(self) -> None:
        if self.agent is not None:
            self.agent.kill()
        if self.cloud_peer is not None:
            self.cloud_peer.close()
        for process in (self.http, self.printer, self.scanner):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if self.cloud is not None:
            self.cloud.stop()
        if self.broker is not None:
            self.broker.stop()
