"""kassactl's manners against a running agent: flags anywhere, --version, "did you mean", id
prefixes, exit codes a script can use, confirmation of what cannot be undone, the cloud's last error."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.ctl import build_parser, run, watch_outbox
from agent.ctl_client import EXIT_NOT_OK, EXIT_UNAVAILABLE, ControlClient
from agent.version import agent_version
from drivers.sim.printer import VirtualPrinter
from tests.support.agent_process import CLOSED_PORT, REPO_ROOT, AgentProcess, write_agent_config

USAGE = 2  # argparse's exit code for a command line it cannot take


class Site:
    def __init__(self, agent: AgentProcess, config: Path) -> None:
        self.agent, self.config = agent, config

    def kassactl(self, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        """kassactl exactly as typed: no --socket added in front."""
        return subprocess.run(
            [sys.executable, "-m", "agent.ctl", *args],
            cwd=REPO_ROOT,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )

    def ctl(self, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        return self.kassactl(*args, "--socket", str(self.agent.socket_path), stdin=stdin)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("manners")
    printer = VirtualPrinter(preview_dir=base / "previews").start()
    # "back" points at a closed port: a configured printer that is never ready
    extra = f"""
[hardware]
status_poll_s = 0.3
discovery_interval_s = 0

[[printers]]
name = "front"
url = "{printer.url}"

[[printers]]
name = "back"
url = "tcp://127.0.0.1:{CLOSED_PORT}"
"""
    config = write_agent_config(base / "agent", extra=extra)
    agent = AgentProcess(config).start()
    try:
        yield Site(agent, config)
    finally:
        agent.kill()
        printer.stop()


def test_global_flags_are_taken_after_the_command(site: Site) -> None:
    after = site.kassactl("ping", "--json", "--socket", str(site.agent.socket_path))
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["pong"] is True
    before = site.kassactl("--json", "--socket", str(site.agent.socket_path), "ping")
    assert json.loads(before.stdout)["pong"] is True
    by_config = site.kassactl("config", "get", "device_id", "-c", str(site.config))
    assert by_config.returncode == 0 and by_config.stdout.strip() == "pos-0001", by_config.stderr
    mixed = site.kassactl("--socket", str(site.agent.socket_path), "print", "jobs", "--json")
    assert isinstance(json.loads(mixed.stdout), list)
    nowhere = site.kassactl("ping", "--socket", str(site.config.parent / "missing.sock"))
    assert nowhere.returncode == EXIT_UNAVAILABLE and "missing.sock" in nowhere.stderr


def test_version() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "agent.ctl", "--version"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and shown.stdout.strip() == f"kassactl {agent_version()}"


def test_did_you_mean_for_commands_and_config_keys(site: Site) -> None:
    typo = site.ctl("stauts")
    assert typo.returncode == USAGE and "did you mean 'status'?" in typo.stderr
    assert "diagnostics" not in typo.stderr  # the suggestion, not every command
    action = site.ctl("licence", "chek")
    assert action.returncode == USAGE and "did you mean 'check'?" in action.stderr
    unknown = site.ctl("frobnicate")
    assert unknown.returncode == USAGE and "choose from" in unknown.stderr and "did you mean" not in unknown.stderr
    get = site.ctl("config", "get", "log.levle")
    assert get.returncode == 1 and "no configuration key 'log.levle'; did you mean 'log.level'?" in get.stderr
    set_ = site.ctl("config", "set", "mqtt.keepalive", "40")
    assert set_.returncode == 1 and "did you mean 'mqtt.keepalive_s'?" in set_.stderr


def test_job_ids_are_taken_by_any_unique_prefix(site: Site) -> None:
    client = site.agent.client()
    # 17 jobs: among 16 hex digits at least two ids share their first one (an ambiguous prefix)
    job_ids = [client.call("print.test", printer="front")["job_id"] for _ in range(17)]
    first = job_ids[0]
    copy = site.ctl("print", "reprint", first[:12])
    assert copy.returncode == 0 and "copy queued as job" in copy.stdout, copy.stderr
    copy_id = copy.stdout.split()[-1]
    assert client.call("print.jobs", limit=500)[0]["job_id"] == copy_id
    assert next(job for job in client.call("print.jobs", limit=500) if job["job_id"] == copy_id)["copy_of"] == first
    # dismiss resolves the prefix too: the refusal names the whole id of the job it found
    dismiss = site.ctl("print", "dismiss", first[:12])
    assert dismiss.returncode == 1 and f"print job {first} does not wait for a person" in dismiss.stderr
    every_id = [job["job_id"] for job in client.call("print.jobs", limit=500)]
    shared, count = Counter(job_id[0] for job_id in every_id).most_common(1)[0]
    assert count >= 2
    ambiguous = site.ctl("print", "reprint", shared)
    assert ambiguous.returncode == 1 and f"print job id '{shared}' is ambiguous" in ambiguous.stderr
    candidates = [job_id for job_id in every_id if job_id.startswith(shared)]
    assert sum(job_id[:16] in ambiguous.stderr for job_id in candidates) == min(len(candidates), 5)
    unknown = site.ctl("print", "reprint", "zz")
    assert unknown.returncode == 1 and "no print job zz" in unknown.stderr


def test_exit_codes_say_not_ok(site: Site) -> None:
    check = site.ctl("licence", "check")
    assert check.returncode == EXIT_NOT_OK and "refused (licence.none)" in check.stdout
    check_json = site.ctl("licence", "check", "--json")
    assert check_json.returncode == EXIT_NOT_OK and json.loads(check_json.stdout)["ok"] is False
    devices = site.ctl("devices")  # "back" is configured and never ready
    assert devices.returncode == EXIT_NOT_OK and "printer  back" in devices.stdout
    status = site.ctl("status")
    assert status.returncode == 0, status.stderr
    assert site.ctl("ping").returncode == 0


def test_status_exit_code_when_the_agent_is_not_running_normally(site: Site) -> None:
    """A real status answer, then the same with a full disk: the exit code follows it."""
    answer = site.agent.client().call("status")

    class Answering(ControlClient):
        def call(self, method: str, **params: Any) -> Any:
            assert method == "status"
            return answer

    client = Answering(site.agent.socket_path)
    args = build_parser().parse_args(["status"])
    with contextlib.redirect_stdout(io.StringIO()):
        assert run(client, args) == 0
        answer["store"]["disk_full"] = True
        assert run(client, args) == EXIT_NOT_OK
        answer["store"]["disk_full"], answer["state"] = False, "stopping"
        assert run(client, args) == EXIT_NOT_OK


def test_release_file_asks_first(site: Site) -> None:
    refused = site.ctl("licence", "release-file")  # standard input is not a terminal
    assert refused.returncode == 1 and "add --yes" in refused.stderr and "for good" in refused.stderr
    assert "no licence" not in refused.stderr  # the agent was never asked
    for answer, told in ((b"n\n", "not done"), (b"y\n", "no licence")):
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer)  # typed ahead: input() reads it whenever it asks
            asked = site.ctl("licence", "release-file", stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)
        assert asked.returncode == 1 and "Go ahead? [y/N]" in asked.stdout and told in asked.stderr, asked
    with_yes = site.ctl("licence", "release-file", "--yes")
    assert with_yes.returncode == 1 and "no licence" in with_yes.stderr  # went to the agent, which has none


def test_status_shows_why_the_cloud_is_disconnected(site: Site) -> None:
    client = site.agent.client()
    deadline = time.monotonic() + 20  # the first connect attempt to the closed port, not a fixed wait
    while not client.call("status")["components"]["cloud"]["last_error"] and time.monotonic() < deadline:
        time.sleep(0.1)
    reason = client.call("status")["components"]["cloud"]["last_error"]
    assert reason
    cloud_line = next(line for line in site.ctl("status").stdout.splitlines() if line.startswith("cloud "))
    assert f"disconnected from 127.0.0.1:{CLOSED_PORT} (last error: {reason}); outbox" in cloud_line


def test_pos_token_revoke_takes_a_prefix_and_asks_first(site: Site) -> None:
    client = site.agent.client()
    first, second = (client.call("pos.token.create", label=label)["token_id"] for label in ("till-a", "till-b"))
    unasked = site.ctl("pos", "token", "revoke", first)
    assert unasked.returncode == 1 and "add --yes" in unasked.stderr
    assert not next(t for t in client.call("pos.token.list")["tokens"] if t["token_id"] == first)["revoked"]
    ambiguous = site.ctl("pos", "token", "revoke", "pt-", "--yes")
    assert ambiguous.returncode == 1 and "is ambiguous" in ambiguous.stderr
    assert first in ambiguous.stderr and second in ambiguous.stderr
    prefix = next(first[:n] for n in range(4, len(first) + 1) if not second.startswith(first[:n]))
    revoked = site.ctl("pos", "token", "revoke", prefix, "--yes")
    assert revoked.returncode == 0 and f"POS token {first} revoked" in revoked.stdout, revoked.stderr
    states = {t["token_id"]: t["revoked"] for t in client.call("pos.token.list")["tokens"]}
    assert states[first] and not states[second]
    unknown = site.ctl("pos", "token", "revoke", "pt-zz", "--yes")
    assert unknown.returncode == 1 and "no POS token 'pt-zz'" in unknown.stderr


def test_print_show_decodes_the_stored_bytes(site: Site, tmp_path: Path) -> None:
    job_id = site.agent.client().call("print.test", printer="back")["job_id"]  # never printed: "back" is offline
    png = tmp_path / "job.png"
    shown = site.ctl("print", "show", job_id[:10], "--png", str(png))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"job {job_id}  back test ")
    assert "kassa test print" in shown.stdout and "[QR: kassa:test:pos-0001:back:" in shown.stdout
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    as_json = json.loads(site.ctl("print", "show", job_id, "--json").stdout)
    assert as_json["job"]["job_id"] == job_id and "png_base64" not in as_json
    assert as_json["text"] in shown.stdout


def test_status_watch_ends_at_once_when_nothing_waits(site: Site) -> None:
    assert site.agent.client().call("status")["components"]["cloud"]["outbox_depth"] == 0
    watched = site.ctl("status", "--watch")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("outbox 0  -  cloud disconnected (")
    assert lines[1] == "outbox empty: nothing waits for the cloud"


def test_status_watch_shows_a_drain(site: Site) -> None:
    """A real status answer whose outbox depth goes 30,000 -> 20,000 -> 0, one second apart."""
    answer = site.agent.client().call("status")
    depths, clock = [30_000, 20_000, 0], [0.0]

    class Draining(ControlClient):
        def call(self, method: str, **params: Any) -> Any:
            answer["components"]["cloud"].update(outbox_depth=depths.pop(0), connected=True)
            return answer

    def tick(seconds: float) -> None:
        clock[0] += 1.0

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = watch_outbox(Draining(site.agent.socket_path), 1.0, False, clock=lambda: clock[0], sleep=tick)
    assert code == 0 and out.getvalue().splitlines() == [
        "outbox 30,000  -  cloud connected",
        "outbox 20,000  10,000/s, about 2 s left  cloud connected",
        "outbox 0  20,000/s  cloud connected",
        "outbox drained: 30,000 message(s) in 2.0 s",
    ]
