"""The demo's steps. Each step is a method; later features add steps here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from agent.ctl_client import ControlClient
from broker import contract as kc
from broker.launcher import free_port
from cloud_api import signing_keys
from cloud_api.provisioning import qr_text, write_qr_png
from cloud_api.tenancy.tokens import create_owner
from tests.demo.business import BusinessSteps
from tests.demo.cabinets import CabinetSteps
from tests.demo.resilience import ResilienceSteps
from tests.demo.trust import TrustSteps
from tests.deploy.tls_broker import ProductionBroker, make_certs, start_production_broker
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config
from tests.support.cloud import Cloud, api_request
from tests.support.smtp import SmtpServer

DEVICE = "demo-pos-1"


class DemoFailure(Exception):
    def __init__(self, step: str, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.logs = logs


class Demo(BusinessSteps, CabinetSteps, ResilienceSteps, TrustSteps):
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.steps_done = 0
        self.broker: ProductionBroker | None = None
        self.cloud: Cloud | None = None
        self.http: subprocess.Popen[bytes] | None = None
        self.printer: subprocess.Popen[str] | None = None
        self.scanner: subprocess.Popen[str] | None = None
        self.agent: AgentProcess | None = None
        self.agent2: AgentProcess | None = None
        self.api_url = ""
        self.api_token = ""
        self.preview_dir = workdir / "receipts"
        # The cloud's mail goes to a real SMTP server on loopback; its links are printed as they arrive.
        self.smtp = SmtpServer()
        self.cabinet_url = ""

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("start broker (production config: TLS, client certificates, ACL)", self.start_broker),
            ("start cloud service and ingest worker", self.start_cloud),
            ("start simulated printer and scanner", self.start_hardware),
            ("start agent, unpaired: it registers and shows a pairing code", self.start_agent),
            ("company admin claims the code; the agent connects with its new certificate", self.pair),
            (
                "people in the web cabinets: the owner invites a partner by e-mail and sells it licences; a company "
                "registers itself; the partner accepts it, moves two licences and unseals one",
                self.cabinets,
            ),
            ("agent status (kassactl status)", self.show_status),
            ("test print to the virtual printer", self.test_print),
            ("open the cash drawer (no sale)", self.open_drawer),
            ("scan a barcode", self.scan),
            ("scan a signed configuration QR (point of sale, language)", self.provision),
            ("cloud pushes config v1 (retained, versioned)", self.push_config),
            ("cloud command ping -> reply through the outbox -> cloud", self.ping),
            ("partner sells a licence; its key typed on the terminal binds it", self.sell_licence),
            ("cloud creates a cashier with a PIN; the roster is pushed to the terminal", self.create_cashier),
            ("a shift through the POS API: login, three sales (one cash), a refund, X and Z reports", self.shift),
            ("power cut mid-shift: the agent is SIGKILLed and restarted; no sale lost or doubled", self.power_cut),
            ("a second terminal pairs and the licence migrates to it", self.migrate_licence),
            ("broker down: the cashier logs in offline; permissions follow roles and licence", self.offline_login),
            ("stop the second terminal cleanly", self.stop_second_terminal),
            (
                "the second terminal is stolen: its certificate reaches no other terminal's messages, "
                "and one call revokes it",
                self.stolen_terminal,
            ),
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
        pki = self.workdir / "pki"
        made = make_certs(pki)  # cloud CA (broker, kassa-cloud), device CA and its empty CRL
        if made.returncode != 0:
            raise DemoFailure("start broker", f"make-certs.sh failed: {made.stderr}")
        self.broker = start_production_broker(self.workdir / "mosquitto", pki)
        return f"mosquitto: devices on :{self.broker.device_port} (mTLS), cloud on :{self.broker.cloud_port}"

    def start_cloud(self) -> str:
        assert self.broker is not None
        pki = self.broker.pki
        self.cloud = Cloud(self.workdir / "cloud", self.broker.broker)
        # The key the cloud signs configuration codes and licence leases with; terminals pin it.
        key_file = self.workdir / "cloud" / "signing.pem"
        self.signing_key = signing_keys.generate(key_file, "demo-cloud-1")
        signing = {"KASSA_CLOUD_SIGNING_KEY_FILE": str(key_file), "KASSA_CLOUD_SIGNING_KEY_ID": self.signing_key.key_id}
        self.cloud.start_worker_process(
            "demo",
            port=self.broker.cloud_port,
            env={
                **signing,
                "KASSA_CLOUD_MQTT_CA_FILE": str(pki / "cloud-ca.crt"),
                "KASSA_CLOUD_MQTT_CERT_FILE": str(pki / "clients" / "kassa-cloud.crt"),
                "KASSA_CLOUD_MQTT_KEY_FILE": str(pki / "clients" / "kassa-cloud.key"),
            },
        )
        port = free_port()
        self.smtp.start()
        env = {
            **os.environ,
            **signing,
            "KASSA_CLOUD_DATABASE_URL": self.cloud.database_url,
            # The cabinets: mail through the SMTP catcher, links in mails point at this server.
            "KASSA_CLOUD_MAIL_HOST": self.smtp.host,
            "KASSA_CLOUD_MAIL_PORT": str(self.smtp.port),
            "KASSA_CLOUD_MAIL_POLL_S": "0.5",
            "KASSA_CLOUD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # pairing: the device CA (the one the broker's device listener trusts) signs terminals;
            # they are sent the cloud CA to trust the broker with. The cloud CA's key stays out of it.
            "KASSA_CLOUD_DEVICE_CA_CERT_FILE": str(pki / "device-ca.crt"),
            "KASSA_CLOUD_DEVICE_CA_KEY_FILE": str(pki / "device-ca.key"),
            "KASSA_CLOUD_PAIRING_BROKER_CA_FILE": str(pki / "cloud-ca.crt"),
            "KASSA_CLOUD_PAIRING_BROKER_HOST": "127.0.0.1",
            "KASSA_CLOUD_PAIRING_BROKER_PORT": str(self.broker.device_port),
            "KASSA_CLOUD_PAIRING_POLL_INTERVAL_S": "1",
        }
        with open(self.workdir / "cloud" / "http.log", "ab") as log:  # the child keeps its own descriptor
            self.http = subprocess.Popen(
                [sys.executable, "-m", "cloud_api.main", "serve", "--port", str(port)],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.api_url = self.cabinet_url = f"http://127.0.0.1:{port}"
        health = self._wait_http(f"{self.api_url}/healthz", "start cloud service")
        return f"{self.api_url} healthy ({health['database']}), ingest worker on $share/ingest over mTLS"

    def start_hardware(self) -> str:
        port_file, path_file = self.workdir / "printer.port", self.workdir / "scanner.path"
        self.printer = self._spawn(
            "printer",
            [
                sys.executable,
                "-m",
                "drivers.sim.printer",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--preview-dir",
                str(self.preview_dir),
            ],
        )
        self.scanner = self._spawn(
            "scanner", [sys.executable, "-m", "drivers.sim.scanner", "--path-file", str(path_file)]
        )
        self.printer_port = int(self._wait_file(port_file, "printer"))
        self.scanner_path = self._wait_file(path_file, "scanner")
        return f"ESC/POS printer on tcp://127.0.0.1:{self.printer_port}, serial scanner on {self.scanner_path}"

    def start_agent(self) -> str:
        self.agent = self.start_terminal(DEVICE, self.workdir / "agent")
        pairing = self._kassactl("pairing")
        print("\n".join("        " + line for line in pairing.splitlines()))
        return f"device {DEVICE}, config {self.agent.config_path}, no broker certificate yet"

    def pair(self) -> str:
        assert self.cloud is not None and self.broker is not None
        code = self._status()["components"]["pairing"]["pairing_code"]
        self._kassactl("pairing", "--print")
        self._wait(
            lambda: any(code in path.read_text() for path in self.preview_dir.glob("*.txt")),
            "pair",
            "the pairing code on the printed slip",
        )
        with Session(self.cloud.engine) as session:  # `kassa-cloud owner create` does the same
            _owner, _admin, self.owner_token = create_owner(session, "Demo owner")
        _, company = self._api(self.owner_token, "POST", "/companies", {"name": "Demo shop"}, 201)
        _, admin = self._api(
            self.owner_token,
            "POST",
            "/users",
            {"name": "Demo shop admin", "role": "company_admin", "company_id": company["id"]},
            201,
        )
        self.company_id, self.api_token = company["id"], admin["token"]
        _, pos = self._api(
            self.api_token,
            "POST",
            f"/companies/{self.company_id}/points-of-sale",
            {"name": "Front till", "code": "POS-DEMO-1"},
            201,
        )
        self.claim(self.agent, pos["id"])
        if self._client().call("config.get", key="site.point_of_sale")["value"] != "POS-DEMO-1":
            raise DemoFailure("pair", "pairing did not set the point of sale it was claimed into", self.collect_logs())
        if f"as {DEVICE} (" not in self.broker.log():
            raise DemoFailure(
                "pair",
                "the broker log does not show the device logged in under its certificate's name",
                self.collect_logs(),
            )
        return (
            f"code {code} printed and claimed into point of sale POS-DEMO-1; "
            f"certificate CN={DEVICE} accepted by the broker"
        )

    # ------------------------------------------------------------- terminals
    def start_terminal(self, device_id: str, directory: Path, *, with_hardware: bool = True) -> AgentProcess:
        """An unpaired agent that trusts the cloud's signing key; waits until it shows a code."""
        hardware = (
            f"""
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
            if with_hardware
            else ""
        )
        trust = f'\n[trust]\ncloud_keys = {{ "{self.signing_key.key_id}" = "{self.signing_key.public_text}" }}\n'
        # No broker certificate: only where the cloud's API is. Pairing does the rest.
        cloud = f'\n[cloud]\napi_url = "{self.api_url}"\nretry_min_s = 0.2\nretry_max_s = 1.0\n'
        config = write_agent_config(directory, device_id=device_id, extra=hardware + trust + cloud)
        agent = AgentProcess(config).start()
        self._wait(
            lambda: agent.client().call("status")["components"]["pairing"]["state"] == "waiting",
            "start agent",
            f"{device_id} to register and wait for a claim",
        )
        return agent

    def claim(self, agent: AgentProcess, point_of_sale_id: int) -> None:
        """The company admin claims the terminal's code; waits for its mTLS connection."""
        code = agent.client().call("status")["components"]["pairing"]["pairing_code"]
        self._api(
            self.api_token,
            "POST",
            f"/companies/{self.company_id}/pairing/claims",
            {"pairing_code": code, "point_of_sale_id": point_of_sale_id},
            201,
        )
        self._wait(
            lambda: agent.client().call("status")["components"].get("cloud", {}).get("connected"),
            "pair",
            "the agent's mTLS connection with its new certificate",
        )

    def show_status(self) -> str:
        assert self.agent is not None
        self._wait(
            lambda: self._status()["components"]["hardware"]["printers"]["front"]["status"] == "ready",
            "agent status",
            "printer status ready",
        )
        result = self._kassactl("status")
        print("\n".join("        " + line for line in result.splitlines()))
        return "agent answered"

    def test_print(self) -> str:
        job = self._client().call("print.test")
        self._wait(
            lambda: any(
                j["job_id"] == job["job_id"] and j["state"] == "printed" for j in self._client().call("print.jobs")
            ),
            "test print",
            "job printed",
        )
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
        self._wait(
            lambda: self._status()["components"]["hardware"]["scans"] == before + 1,
            "scan",
            "the scan to reach the agent",
        )
        return "EAN-13 4006381333931 delivered to the agent's event stream"

    def provision(self) -> str:
        assert self.scanner is not None and self.scanner.stdin is not None
        # Pairing set the point of sale to POS-DEMO-1; the code moves the terminal to the bar.
        # ... and makes it Russian: the shift's receipts print in Russian, without a restart.
        settings = kc.Provisioning(
            point_of_sale="POS-DEMO-BAR", language="ru", rooms=["Hall A"], issued_at=datetime.now(UTC)
        )
        text = qr_text(settings, self.signing_key)
        write_qr_png(text, self.workdir / "configuration-qr.png")
        self.scanner.stdin.write(text + "\n")
        self.scanner.stdin.flush()
        self._wait(
            lambda: (
                self._client().call("config.get", key="site.point_of_sale")["value"] == "POS-DEMO-BAR"
                and self._client().call("config.get", key="site.language")["value"] == "ru"
            ),
            "provision",
            "the QR settings applied",
        )
        return (
            "point of sale POS-DEMO-1 -> POS-DEMO-BAR, language ru applied "
            f"(QR image {self.workdir / 'configuration-qr.png'})"
        )

    def push_config(self) -> str:
        assert self.cloud is not None and self.api_token  # the company admin of the pairing step
        self.device_path = f"/companies/{self.company_id}/devices/{DEVICE}"
        doc = {"language": "en", "receipt_footer": "Thank you!"}
        status, desired = api_request(
            self.api_url, self.api_token, "PUT", f"{self.device_path}/state/config", {"doc": doc}
        )
        if status != 200:
            raise DemoFailure(
                "push config", f"PUT {self.device_path}/state/config answered {status}: {desired}", self.collect_logs()
            )
        version = desired["version"]
        self._wait(
            lambda: self._status()["components"]["cloud"]["state_versions"].get("config") == version,
            "push config",
            f"config v{version} applied",
        )

        def reported_up_to_date() -> bool:
            return (
                api_request(self.api_url, self.api_token, "GET", f"{self.device_path}/state")[1]["up_to_date"] is True
            )

        self._wait(reported_up_to_date, "push config", "the device's state report to show it up to date")
        return (
            f"PUT config through the HTTP API -> v{version} published retained by the worker's publisher "
            "-> applied by the agent -> reported up to date"
        )

    def ping(self) -> str:
        status, command = api_request(
            self.api_url, self.api_token, "POST", f"{self.device_path}/commands", {"name": "ping"}
        )
        if status != 201:
            raise DemoFailure(
                "ping", f"POST {self.device_path}/commands answered {status}: {command}", self.collect_logs()
            )

        def answered() -> dict[str, Any] | None:
            found = api_request(self.api_url, self.api_token, "GET", f"{self.device_path}/commands/{command['id']}")[1]
            return found if found.get("state") == "answered" else None

        self._wait(lambda: answered() is not None, "ping", "the reply to show in the API")
        reply = answered()
        if reply is None or not reply["reply"]["ok"] or reply["reply"]["result"].get("pong") is not True:
            raise DemoFailure("ping", f"unexpected reply: {reply}", self.collect_logs())
        self._wait(lambda: self._status()["components"]["cloud"]["outbox_depth"] == 0, "ping", "the outbox to drain")
        return f"command {command['id']} sent through the HTTP API, answered pong; reply shown by the API, outbox empty"

    def stop_agent(self) -> str:
        assert self.agent is not None
        code = self.agent.stop()
        if code != 0:
            raise DemoFailure("stop agent cleanly", f"exit code {code}", self.collect_logs())
        return "exit 0, store closed"

    # ----------------------------------------------------------------- helpers
    def failure(self, step: str, message: str) -> DemoFailure:
        return DemoFailure(step, message, self.collect_logs())

    def _client(self) -> ControlClient:
        assert self.agent is not None
        return self.agent.client()

    def _status(self) -> dict[str, Any]:
        return self._client().call("status")

    def _kassactl(self, *args: str) -> str:
        assert self.agent is not None
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(self.agent.socket_path), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise DemoFailure(f"kassactl {' '.join(args)}", result.stderr, self.collect_logs())
        return result.stdout

    def _api(self, token: str, method: str, path: str, body: object, expected: int) -> tuple[int, Any]:
        status, reply = api_request(self.api_url, token, method, path, body)
        if status != expected:
            raise DemoFailure(
                f"{method} {path}", f"answered {status}, expected {expected}: {reply}", self.collect_logs()
            )
        return status, reply

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        with open(self.workdir / f"{name}.log", "a") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True
            )

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
        for name in (
            "agent/agent.log",
            "agent2/agent.log",
            "cloud/http.log",
            "cloud/worker-demo.log",
            "printer.log",
            "scanner.log",
            "mosquitto/mosquitto.log",
        ):
            path = self.workdir / name
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
                parts.append(f"--- {path} (last lines) ---\n{tail}")
        return "\n".join(parts)

    def teardown(self) -> None:
        for agent in (self.agent, self.agent2):
            if agent is not None:
                agent.kill()
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
            self.broker.broker.stop()
        self.smtp.stop()
