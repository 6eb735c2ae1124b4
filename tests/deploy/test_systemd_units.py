"""systemd/: the units pass systemd-analyze, agree with each other and with the agent, and the
agent behaves as kassa-agent.service promises when run the way that unit runs it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.ctl import ControlClient
from cloud_api.main import build_parser as cloud_parser
from tests.deploy.units import UNIT_DIR, ServiceRun, ensure_tool, unit, venv_binary
from tests.support.agent_process import REPO_ROOT, write_agent_config

SERVICES = ("kassa-agent.service", "kassa-cloud.service", "kassa-cloud-worker@.service")
BINARIES = {"/usr/bin/kassa-agent": "kassa-agent", "/usr/bin/kassa-cloud": "kassa-cloud"}


def load_config_defaults() -> AgentConfig:
    """The agent's configuration with nothing but the required device id set."""
    return AgentConfig(device_id="pos-0001")


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return ensure_tool("systemd-analyze")


def installable_copy(directory: Path, text_edit: dict[str, str] | None = None) -> list[Path]:
    """The units as they would be installed, with /usr/bin/... pointing at this venv's scripts
    (verify checks that ExecStart binaries exist). The worker template is verified as instance @1."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SERVICES:
        text = (UNIT_DIR / name).read_text()
        for production, script in BINARIES.items():
            text = text.replace(production + " ", f"{venv_binary(script)} ")
        for old, new in (text_edit or {}).items():
            text = text.replace(old, new)
        (directory / name).write_text(text)
        paths.append(directory / name.replace("@.service", "@1.service"))
    return paths


def run_verify(tool: str, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "notice", "SYSTEMD_PAGER": "", "LC_ALL": "C"}
    return subprocess.run(
        [tool, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True, env=env, timeout=60
    )


def test_units_pass_systemd_analyze_verify(systemd_analyze: str, tmp_path: Path) -> None:
    paths = installable_copy(tmp_path / "units")
    result = run_verify(systemd_analyze, paths)
    output = (result.stdout + result.stderr).strip()
    about_ours = [line for line in output.splitlines() if str(tmp_path) in line or "kassa" in line]
    assert result.returncode == 0, output
    assert about_ours == [], "systemd-analyze verify complains about our units:\n" + output


def test_broker_crl_timer_and_service_pass_verify_and_call_the_shipped_script(
    systemd_analyze: str, tmp_path: Path
) -> None:
    """kassa-broker-crl.{service,timer} on the broker host: valid units, and the service runs
    fetch-crl.sh with the paths broker/production/mosquitto.conf reads."""
    directory = tmp_path / "units"
    directory.mkdir()
    for name in ("kassa-broker-crl.service", "kassa-broker-crl.timer"):
        (directory / name).write_text((UNIT_DIR / name).read_text())
    result = run_verify(systemd_analyze, [directory / "kassa-broker-crl.service", directory / "kassa-broker-crl.timer"])
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and [line for line in output.splitlines() if "kassa" in line] == [], output
    service = unit("kassa-broker-crl.service")
    conf = (REPO_ROOT / "broker" / "production" / "mosquitto.conf").read_text().splitlines()
    exec_start = " ".join(service.get("ExecStart").split())
    assert "/usr/local/lib/kassa/fetch-crl.sh" in exec_start
    assert (
        "--ca /etc/mosquitto/kassa/device-ca.crt" in exec_start and "cafile /etc/mosquitto/kassa/device-ca.crt" in conf
    )
    assert (
        "--out /etc/mosquitto/kassa/device-crl.pem" in exec_start
        and "crlfile /etc/mosquitto/kassa/device-crl.pem" in conf
    )
    # The sandbox must leave the CRL's directory writable, or every run fails to install it.
    assert service.get("ProtectSystem") == "strict" and service.all("ReadWritePaths") == ["/etc/mosquitto/kassa"]
    assert unit("kassa-broker-crl.timer").get("OnUnitActiveSec", section="Timer") == "60s"


def test_verify_would_catch_a_broken_unit(systemd_analyze: str, tmp_path: Path) -> None:
    """The check above is not vacuous: a typo, a bad time and a missing binary are all reported."""
    paths = installable_copy(
        tmp_path / "units", {"WatchdogSec=30": "WatchdogSec=thirty", "RestartSec=2": "RestartSecs=2"}
    )
    (tmp_path / "units" / "kassa-agent.service").write_text(
        (tmp_path / "units" / "kassa-agent.service")
        .read_text()
        .replace(str(venv_binary("kassa-agent")), "/nonexistent/kassa-agent")
    )
    result = run_verify(systemd_analyze, paths)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Failed to parse sec value" in output and "thirty" in output
    assert "Unknown key 'RestartSecs'" in output
    assert "/nonexistent/kassa-agent is not executable" in output


@pytest.mark.parametrize("name", SERVICES)
def test_sandbox_exposure_is_low(systemd_analyze: str, tmp_path: Path, name: str) -> None:
    """systemd-analyze security --offline: the sandbox settings take effect (lower is better, 10 = none)."""
    path = next(p for p in installable_copy(tmp_path / "units") if p.name.startswith(name.split("@")[0]))
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LC_ALL": "C"},
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_sysusers_and_tmpfiles_in_a_scratch_root(tmp_path: Path) -> None:
    """Applied to a copy of this machine's /etc: users, groups, memberships, directories, modes."""
    sysusers, tmpfiles = ensure_tool("systemd-sysusers"), ensure_tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    for name in ("dialout", "lp"):  # base-passwd groups on Debian; make sure the copy has them
        if f"\n{name}:" not in "\n" + (root / "etc" / "group").read_text():
            pytest.fail(f"group {name} missing from /etc/group: a Debian base system has it")
    confs = sorted((UNIT_DIR / "sysusers.d").glob("*.conf"))
    subprocess.run([sysusers, f"--root={root}", *map(str, confs)], check=True, capture_output=True, text=True)
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert passwd["kassa"][3] == groups["kassa"][2], "kassa's primary group is kassa"
    assert passwd["kassa"][6] in ("/usr/sbin/nologin", "/sbin/nologin"), "a system user without a login shell"
    assert "kassa-cloud" in passwd and "kassa-admin" in groups
    members = {name: set(filter(None, fields[3].split(","))) for name, fields in groups.items()}
    assert {"kassa-admin", "dialout", "lp"} <= {g for g, m in members.items() if "kassa" in m}
    assert "kassa" not in members.get("input", set()), "no access to every keyboard"
    subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(UNIT_DIR / "tmpfiles.d" / "kassa.conf")],
        check=True,
        capture_output=True,
        text=True,
    )
    uid, gid = int(passwd["kassa"][2]), int(groups["kassa"][2])
    state, etc = (root / "var/lib/kassa").stat(), (root / "etc/kassa").stat()
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, uid, gid)
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid) == (0o770, 0, gid)  # the agent rewrites agent.toml


def test_units_udev_sysusers_and_agent_agree() -> None:
    agent_unit = unit("kassa-agent.service")
    defaults = load_config_defaults()
    # the kassa group everywhere
    assert agent_unit.get("User") == "kassa" and agent_unit.get("Group") == "kassa"
    rules = [
        line for line in (UNIT_DIR / "99-kassa-devices.rules").read_text().splitlines() if not line.startswith("#")
    ]
    assert set(re.findall(r'GROUP="([^"]+)"', "\n".join(rules))) == {"kassa"}
    assert set(re.findall(r'MODE="([^"]+)"', "\n".join(rules))) == {"0660"}, "group access only, never 0666"
    sysusers = (UNIT_DIR / "sysusers.d" / "kassa.conf").read_text()
    declared = set(re.findall(r"(?m)^g\s+(\S+)", sysusers))
    assert {"kassa", defaults.control.read_group, defaults.control.admin_group} <= declared
    supplementary = agent_unit.get("SupplementaryGroups").split()
    assert defaults.control.admin_group in supplementary, "the agent chowns its socket to the admin group"
    assert set(supplementary) <= declared | {"dialout", "lp"}
    for group in supplementary:
        assert re.search(rf"(?m)^m\s+kassa\s+{re.escape(group)}\s*$", sysusers), (
            f"sysusers makes kassa a member of {group}"
        )
    # directories: the unit's, the agent's defaults and tmpfiles' are the same
    assert Path("/var/lib") / agent_unit.get("StateDirectory") == defaults.paths.state_dir
    assert Path("/run") / agent_unit.get("RuntimeDirectory") == defaults.paths.run_dir
    exec_start = agent_unit.get("ExecStart").split()
    assert exec_start[:3] == ["/usr/bin/kassa-agent", "--config", str(DEFAULT_CONFIG_PATH)]
    assert Path("/etc") / agent_unit.get("ConfigurationDirectory") == DEFAULT_CONFIG_PATH.parent
    tmpfiles = {
        fields[1]: fields
        for fields in (line.split() for line in (UNIT_DIR / "tmpfiles.d" / "kassa.conf").read_text().splitlines())
        if fields and not fields[0].startswith("#")
    }
    assert tmpfiles[str(defaults.paths.state_dir)][2:] == [agent_unit.get("StateDirectoryMode"), "kassa", "kassa"]
    assert tmpfiles[str(DEFAULT_CONFIG_PATH.parent)][2:] == [
        agent_unit.get("ConfigurationDirectoryMode"),
        "root",
        "kassa",
    ]
    # a clean stop fits in the unit's stop timeout; watchdog and restart settings as documented
    assert defaults.lifecycle.shutdown_timeout_s < agent_unit.seconds("TimeoutStopSec")
    assert "78" in agent_unit.get("RestartPreventExitStatus").split(), "EX_CONFIG is not retried"
    # cloud units: their command lines are ones kassa-cloud accepts, the SQLite default in the state dir
    for name, command in (("kassa-cloud.service", "serve"), ("kassa-cloud-worker@.service", "worker")):
        u = unit(name)
        words = u.get("ExecStart").replace("%i", "w1").split()
        assert words[0] == "/usr/bin/kassa-cloud"
        args = cloud_parser().parse_args(words[1:])
        assert args.command == command
        url = dict(a.split("=", 1) for a in u.all("Environment"))["KASSA_CLOUD_DATABASE_URL"]
        assert url == f"sqlite:///{u.get('WorkingDirectory')}/kassa-cloud.db"
        assert u.get("WorkingDirectory") == f"/var/lib/{u.get('StateDirectory')}"
        assert u.get("User") == "kassa-cloud" and u.get("EnvironmentFile") == "-/etc/kassa/cloud.env"
    assert (
        cloud_parser()
        .parse_args(unit("kassa-cloud-worker@.service").get("ExecStart").replace("%i", "w1").split()[1:])
        .worker_id
        == "w1"
    )
    # the console scripts the units name exist in pyproject.toml
    scripts = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'kassa-agent = "agent.main:main"' in scripts and 'kassa-cloud = "cloud_api.main:main"' in scripts


def test_agent_runs_as_the_unit_says_notify_watchdog_reload_stop(tmp_path: Path) -> None:
    agent_unit = unit("kassa-agent.service")
    assert (agent_unit.get("Type"), agent_unit.get("NotifyAccess")) == ("notify", "main")
    watchdog_s = agent_unit.seconds("WatchdogSec")
    config = write_agent_config(tmp_path / "agent")
    run = ServiceRun(
        agent_unit,
        tmp_path / "service",
        {
            "/usr/bin/kassa-agent": str(venv_binary("kassa-agent")),
            str(DEFAULT_CONFIG_PATH): str(config),
        },
    )
    assert run.argv[1:] == ["--config", str(config)], run.argv
    try:
        started = time.monotonic()
        run.start()
        ready = run.wait_for("READY", 30)
        assert ready.fields["READY"] == "1" and ready.fields["STATUS"] == "running as pos-0001"
        pings = [n for n in run.notifications if "WATCHDOG" in n.fields]
        first_ping = pings[0] if pings else run.wait_for("WATCHDOG", 5)
        assert first_ping.at - started < 30, "the watchdog is fed from start-up on"

        # While waiting for the next ping: the sandbox settings we reproduce, and reload.
        settings = load_config(config)
        socket_mode = stat.S_IMODE(settings.paths.control_socket.stat().st_mode)
        assert socket_mode == 0o660, oct(socket_mode)
        store_mode = stat.S_IMODE(settings.paths.store_path.stat().st_mode)
        assert store_mode == 0o600, f"UMask={agent_unit.get('UMask')} keeps the store private, got {oct(store_mode)}"
        config.write_text(config.read_text() + '[log]\nlevel = "debug"\n')
        reload = run.reload()
        assert reload.returncode == 0, reload.stderr
        deadline = time.monotonic() + 10
        while "applied=log.level" not in run.log():
            assert time.monotonic() < deadline, "ExecReload (SIGHUP) did not reload the config:\n" + run.log()
            time.sleep(0.05)
        assert ControlClient(settings.paths.control_socket).call("status")["state"] == "running"

        second_ping = run.wait_for("WATCHDOG", watchdog_s)
        gap = second_ping.at - first_ping.at
        assert gap <= watchdog_s / 2 + 0.5, (
            f"pings {gap:.1f} s apart; WatchdogSec={watchdog_s:g} wants <= {watchdog_s / 2:g}"
        )

        code, took = run.stop()
        stopping = run.wait_for("STOPPING", 5)
        assert stopping.fields["STOPPING"] == "1"
        assert code == 0, f"exit {code} after SIGTERM; Restart=on-failure would restart it\n{run.log()}"
        assert took < agent_unit.seconds("TimeoutStopSec")
        assert {n.pid for n in run.notifications} == {run.main_pid}, (
            "NotifyAccess=main: every notification from the main pid"
        )
        prelude = re.search(r"prelude: umask=(\d+) no_new_privs=(\w+) mdwe=(\w+)", run.log())
        assert prelude and prelude.group(1) == str(int(agent_unit.get("UMask"), 8)) and prelude.group(2) == "True", (
            run.log()
        )
        # "unsupported" only on kernels before 6.3, which test_cpython_needs_no_writable_executable_memory reports
        assert prelude.group(3) in ("on", "unsupported"), run.log()
    finally:
        run.close()


def test_a_bad_config_exits_78_which_the_unit_does_not_restart(tmp_path: Path) -> None:
    agent_unit = unit("kassa-agent.service")
    config = write_agent_config(tmp_path / "agent", extra="[mqtt\n")
    run = ServiceRun(
        agent_unit,
        tmp_path / "service",
        {
            "/usr/bin/kassa-agent": str(venv_binary("kassa-agent")),
            str(DEFAULT_CONFIG_PATH): str(config),
        },
    )
    try:
        run.start()
        assert run.process is not None
        code = run.process.wait(30)
        assert code == 78, run.log()
        assert str(code) in agent_unit.get("RestartPreventExitStatus").split()
        assert not any("READY" in n.fields for n in run.notifications)
    finally:
        run.close()


def test_cpython_needs_no_writable_executable_memory(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes in all three units: everything the services load works under the
    kernel's equivalent rule (PR_SET_MDWE), including ctypes callbacks (libffi)."""
    probe = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE unsupported")
import agent.daemon, agent.main, cloud_api.app, cloud_api.ingest.worker
import uvicorn, sqlite3, ssl, usb.core, serial, escpos.printer
ssl.create_default_context()
sqlite3.connect(":memory:").execute("select 1")
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
assert callback(41) == 42
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    print("ok: W+X mapping refused, the rule is active")
"""
    result = subprocess.run(
        [str(venv_binary("python")), "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    if "PR_SET_MDWE unsupported" in result.stderr:
        pytest.fail(
            f"this kernel ({os.uname().release}) lacks PR_SET_MDWE (Linux >= 6.3), so MemoryDenyWriteExecute "
            "cannot be checked here; run on a newer kernel, or start the units under systemd and watch for SIGSYS/EPERM"
        )
    assert result.returncode == 0, result.stderr
    assert "ok: W+X mapping refused" in result.stdout
