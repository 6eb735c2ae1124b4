"""Every kassactl verb against a running agent, in human and --json form."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.ctl import main as kassactl_main
from agent.ctl_client import EXIT_NOPERM, PERMISSION_DENIED
from drivers.sim.printer import VirtualPrinter
from drivers.sim.scanner import VirtualSerialScanner
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config


def _lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, read in a thread so a test waits with a timeout, never forever."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


class Site:
    def __init__(
        self, agent: AgentProcess, printer: VirtualPrinter, scanner: VirtualSerialScanner, config: Path
    ) -> None:
        self.agent, self.printer, self.scanner, self.config = agent, printer, scanner, config

    def ctl(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(self.agent.socket_path), *args],
            cwd=cwd or REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        if check:
            assert result.returncode == 0, f"kassactl {' '.join(args)} failed: {result.stderr}"
        return result

    def ctl_json(self, *args: str) -> object:
        return json.loads(self.ctl("--json", *args).stdout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("kassactl")
    printer = VirtualPrinter(preview_dir=base / "previews").start()
    scanner = VirtualSerialScanner().start()
    extra = f"""
[hardware]
status_poll_s = 0.3
discovery_interval_s = 0

[[printers]]
name = "front"
url = "{printer.url}"

[[drawers]]
name = "cash"
printer = "front"

[[scanners]]
name = "hand"
url = "serial://{scanner.path}"
"""
    config = write_agent_config(base / "agent", extra=extra)
    agent = AgentProcess(config).start()
    try:
        yield Site(agent, printer, scanner, config)
    finally:
        agent.kill()
        scanner.stop()
        printer.stop()


def test_status_and_ping(site: Site) -> None:
    human = site.ctl("status").stdout
    assert "pos-0001" in human and "outbox 0" in human and "pushed      none yet" in human
    status = site.ctl_json("status")
    assert status["components"]["cloud"]["outbox_depth"] == 0
    assert "hardware" in status["components"] and "provisioning" in status["components"]
    assert "pong from pos-0001" in site.ctl("ping").stdout
    assert site.ctl_json("ping")["pong"] is True


def test_methods_lists_every_verb_with_role(site: Site) -> None:
    methods = {m["name"]: m["role"] for m in site.ctl_json("methods")}  # type: ignore[union-attr]
    assert methods["status"] == "read" and methods["config.set"] == "admin" and methods["diagnostics"] == "admin"
    assert "config.set" in site.ctl("methods").stdout


def test_devices(site: Site) -> None:
    deadline = time.monotonic() + 10
    client = site.agent.client()  # kassactl devices exits 3 until the printer is ready
    while client.call("devices")["printers"]["front"]["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
    devices = site.ctl_json("devices")
    assert devices["printers"]["front"]["status"] == "ready"  # type: ignore[index]
    assert devices["drawers"] == ["cash"]  # type: ignore[index]
    human = site.ctl("devices").stdout
    assert "printer  front" in human and "(receipts)" in human and "scanner  hand" in human and "drawer   cash" in human


def test_test_print_jobs_and_reprint(site: Site) -> None:
    before = len(site.printer.receipts)
    job = site.ctl_json("test-print")["job_id"]  # type: ignore[index]
    site.printer.wait_for_receipts(before + 1, timeout=10)
    deadline = time.monotonic() + 10
    while site.ctl_json("print", "jobs")[0]["state"] != "printed" and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.1)
    assert job[:12] in site.ctl("print", "jobs").stdout
    copy = site.ctl("print", "reprint", job).stdout
    assert "copy queued as job" in copy
    receipts = site.printer.wait_for_receipts(before + 2, timeout=10)
    assert "*** COPY ***" in receipts[-1].text
    site.ctl("config", "set", "site.language", "ru")  # applies to the next copy, no restart
    site.ctl("print", "reprint", job)
    assert "*** КОПИЯ ***" in site.printer.wait_for_receipts(before + 3, timeout=10)[-1].text
    site.ctl("config", "set", "site.language", "en")
    missing = site.ctl("print", "reprint", "no-such-job", check=False)
    assert missing.returncode == 1 and "no print job no-such-job" in missing.stderr
    human = site.ctl("test-print", "--printer", "front").stdout
    assert "test page queued as job" in human


def test_drawer_open(site: Site) -> None:
    assert "drawer opened; sensor:" in site.ctl("drawer", "open").stdout
    assert site.ctl_json("drawer", "open", "cash")["state"] in ("open", "closed")  # type: ignore[index]
    assert site.printer.drawer.wait_for_kicks(2, 5)
    unknown = site.ctl("drawer", "open", "safe", check=False)
    assert unknown.returncode == 1 and "no drawer named 'safe'" in unknown.stderr


def test_scan_watch_streams_scans(site: Site) -> None:
    for json_mode in (False, True):
        args = [
            sys.executable,
            "-m",
            "agent.ctl",
            "--socket",
            str(site.agent.socket_path),
            *(["--json"] if json_mode else []),
            "scan",
            "--watch",
        ]
        watcher = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)  # let it subscribe
            site.scanner.scan("4006381333931" if not json_mode else "96385074")
            line = _lines_of(watcher).get(timeout=20)
        finally:
            watcher.terminate()
            watcher.wait(10)
        if json_mode:
            item = json.loads(line)
            assert item["data"] == "96385074" and item["symbology"] == "ean8"
        else:
            assert "hand" in line and "4006381333931" in line


def test_config_get_and_set(site: Site) -> None:
    assert site.ctl("config", "get", "mqtt.keepalive_s").stdout.strip() == "30"
    assert site.ctl_json("config", "get")["device_id"] == "pos-0001"  # type: ignore[index]
    assert "saved and applied" in site.ctl("config", "set", "log.level", "debug").stdout
    assert tomllib.loads(site.config.read_text())["log"]["level"] == "debug"
    result = site.ctl_json("config", "set", "mqtt.keepalive_s", "45")
    assert result["restart_needed"] is True  # type: ignore[index]
    assert "mqtt.keepalive_s" in site.ctl_json("status")["restart_needed"]  # type: ignore[index]
    before = site.config.read_text()
    bad = site.ctl("config", "set", "mqtt.port", "99999", check=False)
    assert bad.returncode == 1 and "mqtt.port" in bad.stderr and "not changed" in bad.stderr
    unknown = site.ctl("config", "set", "mqtt.colour", "red", check=False)
    assert unknown.returncode == 1 and "no configuration key 'mqtt.colour'" in unknown.stderr
    assert site.config.read_text() == before
    site.ctl("config", "set", "log.level", "info")


def test_reload(site: Site) -> None:
    assert "applied:" in site.ctl("reload").stdout
    assert site.ctl_json("reload")["error"] is None  # type: ignore[index]


def test_logs(site: Site) -> None:
    lines = site.ctl("logs", "-n", "500").stdout.splitlines()
    assert any("agent running" in line for line in lines)
    assert isinstance(site.ctl_json("logs", "-n", "5"), list)
    follower = subprocess.Popen(
        [sys.executable, "-m", "agent.ctl", "--socket", str(site.agent.socket_path), "logs", "-n", "1", "-f"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _lines_of(follower)
        lines.get(timeout=20)  # the backlog line
        time.sleep(0.5)
        site.ctl("config", "set", "log.level", "info")  # writes a log line
        deadline = time.monotonic() + 10
        seen = ""
        while "config reloaded" not in seen and time.monotonic() < deadline:
            seen = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert "config reloaded" in seen
    finally:
        follower.terminate()
        follower.wait(10)


def test_ctrl_c_on_a_watch_leaves_no_traceback_in_the_agent_log(site: Site) -> None:
    """Ctrl-C on `scan --watch` and `logs -f` while their stream waits for the next item."""
    kassactl = [sys.executable, "-m", "agent.ctl", "--socket", str(site.agent.socket_path)]
    logs_before = len(site.agent.log())
    for args, first_item in (
        (["logs", "-n", "1", "-f"], lambda: None),  # the backlog line comes at once
        (["scan", "--watch"], lambda: site.scanner.scan("4006381333931")),
    ):
        watcher = subprocess.Popen([*kassactl, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        try:
            lines = _lines_of(watcher)
            if args[0] == "scan":
                # subscribed once a scan reaches it: scan until one does
                wait_scan = time.monotonic() + 20
                while True:
                    first_item()
                    try:
                        lines.get(timeout=1)
                        break
                    except queue.Empty:
                        assert time.monotonic() < wait_scan, "scan --watch saw no scan"
            else:
                lines.get(timeout=20)
            watcher.send_signal(signal.SIGINT)  # its stream now waits in the generator for the next item
            watcher.wait(10)
        finally:
            if watcher.poll() is None:
                watcher.kill()
    site.ctl("status")  # a request after the hang-ups: the agent has handled them by its answer
    written = site.agent.log()[logs_before:]
    assert "Traceback" not in written and "aclose" not in written and " error " not in written


def test_diagnostics_bundle(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "diag.tar.gz"
    human = site.ctl("diagnostics", "-o", str(out)).stdout
    assert "store integrity: ok" in human
    assert out.stat().st_mode & 0o777 == 0o600
    with tarfile.open(out) as tar:
        names = {Path(n).name for n in tar.getnames()}
        assert {
            "status.json",
            "config.json",
            "versions.json",
            "logs.txt",
            "devices.json",
            "store_integrity.txt",
        } <= names
        config = json.loads(tar.extractfile("kassa-diagnostics/config.json").read())  # type: ignore[union-attr]
        assert config["device_id"] == "pos-0001"
    summary = site.ctl_json("diagnostics", "-o", str(tmp_path / "again.tar.gz"))
    assert summary["store_integrity"] == ["ok"]  # type: ignore[index]


def test_diagnostics_never_contains_the_broker_password(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", password="hunter2-secret")
    agent = AgentProcess(config).start()
    try:
        out = tmp_path / "d.tar.gz"
        subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(agent.socket_path), "diagnostics", "-o", str(out)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
        with tarfile.open(out) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                assert b"hunter2-secret" not in data, member.name
    finally:
        agent.kill()


OUTSIDER = 65534  # nobody/nogroup: in neither of the agent's groups


def _as_outsider(action: Callable[[], dict[str, Any]], timeout_s: float = 60.0) -> dict[str, Any]:
    """What `action` returns when a real other user runs it: a forked child that becomes uid and
    gid 65534 without supplementary groups, so the kernel checks the socket file's mode against
    that user and the agent reads that uid from SO_PEERCRED. A fork rather than a new process:
    a new interpreter would have to read the venv and this checkout as that user, and a checkout
    in a private (0700) directory denies it ("No module named 'agent'"). The child already holds
    every module it needs and only speaks to the socket; it never returns into pytest."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(OUTSIDER)
            os.setuid(OUTSIDER)
            result = action()
        except BaseException as exc:
            result = {"child_failed": repr(exc)}
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    output, ended = b"", False  # the pipe ends when the child exits
    deadline = time.monotonic() + timeout_s
    try:
        while not ended and time.monotonic() < deadline:
            if select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(read_end, 65536)
                ended = not chunk
                output += chunk
    finally:
        os.close(read_end)
        if not ended:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert ended and output, f"the outsider process gave no answer within {timeout_s} s"
    return json.loads(output)


def _call_socket(path: Path, method: str) -> dict[str, Any]:
    """One request in the control socket's own protocol (a JSON-RPC 2.0 object per line), with
    nothing of kassactl: what the socket answers, or the errno of a refused connect."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        try:
            sock.connect(str(path))
        except OSError as exc:
            return {"connect_errno": exc.errno}
        sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return json.loads(answer)


def _kassactl(*argv: str) -> dict[str, Any]:
    """kassactl's own main() (already imported: see _as_outsider), its exit code and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = kassactl_main(list(argv))
    return {"exit": code, "stderr": stderr.getvalue()}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_real_outsider_is_refused(tmp_path: Path) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="kassa-run-"))  # pytest's own tmp dirs are private (0700)
    os.chmod(run_dir, 0o711)
    config = write_agent_config(tmp_path / "agent")
    config.write_text(config.read_text().replace(str(tmp_path / "agent" / "run"), str(run_dir)))
    agent = AgentProcess(config).start()
    path = agent.socket_path
    try:
        assert "result" in _call_socket(path, "status")  # the same client, as root, is served
        # The file mode (0660, root and the admin group) stops the outsider at connect().
        assert _as_outsider(partial(_call_socket, path, "status")) == {"connect_errno": errno.EACCES}
        told = _as_outsider(partial(_kassactl, "--socket", str(path), "status"))
        assert told["exit"] == EXIT_NOPERM, told
        assert "permission denied" in told["stderr"] and "kassa-admin" in told["stderr"], told
        os.chmod(path, 0o666)  # past the file mode, the per-method check still stops them
        for method, role, group in (("status", "read", "kassa"), ("config.reload", "admin", "kassa-admin")):
            error = _as_outsider(partial(_call_socket, path, method)).get("error")
            assert error is not None and error["code"] == PERMISSION_DENIED, error
            assert f"'{method}' needs the {role} role; add the user to group '{group}'" in error["message"], error
        told = _as_outsider(partial(_kassactl, "--socket", str(path), "status"))
        assert told["exit"] == EXIT_NOPERM and "needs the read role" in told["stderr"], told
    finally:
        agent.kill()
        shutil.rmtree(run_dir, ignore_errors=True)
