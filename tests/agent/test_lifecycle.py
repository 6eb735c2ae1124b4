from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config


def test_sigterm_exits_zero_with_store_closed(agent_process: AgentProcess, agent_config: Path) -> None:
    agent_process.start()
    assert agent_process.client().call("status")["state"] == "running"
    assert agent_process.stop() == 0
    log = agent_process.log()
    assert "store closed" in log and "agent stopped" in log
    db = agent_config.parent / "state" / "agent.db"
    wal = Path(str(db) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "WAL checkpointed into the main file at close"
    assert not agent_process.socket_path.exists(), "control socket removed"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT value FROM meta WHERE key = 'boot_count'").fetchone()[0] == "1"


def test_sigint_also_stops_cleanly(agent_process: AgentProcess) -> None:
    agent_process.start()
    agent_process.signal(signal.SIGINT)
    assert agent_process.process is not None
    assert agent_process.process.wait(20) == 0


def test_restart_counts_boots_and_keeps_the_store(agent_process: AgentProcess) -> None:
    agent_process.start()
    first = agent_process.client().call("status")
    assert agent_process.stop() == 0
    agent_process.start()
    second = agent_process.client().call("status")
    assert second["boot_count"] == first["boot_count"] + 1
    assert second["boot_id"] != first["boot_id"]
    assert agent_process.stop() == 0


def test_systemd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    config = write_agent_config(tmp_path / "agent")
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"})
    try:
        agent.start(wait=False)
        messages: list[str] = []
        deadline = time.monotonic() + 20
        # Watchdog pings may start before READY (systemd accepts them): read until both are seen.
        while time.monotonic() < deadline and not (
            any("READY=1" in m for m in messages) and sum("WATCHDOG=1" in m for m in messages) >= 2
        ):
            messages.append(listener.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 2, "pings at half of WATCHDOG_USEC"
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=running as pos-0001" in ready
        agent.wait_ready()
        agent.signal(signal.SIGTERM)
        while True:
            message = listener.recv(4096).decode()
            if "STOPPING=1" in message:
                break
        assert agent.process is not None and agent.process.wait(20) == 0
    finally:
        agent.kill()
        listener.close()


def test_sighup_applies_live_keys_and_flags_restart(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent")
    agent = AgentProcess(config).start()
    try:
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^port = \d+$", "port = 1999", text, count=1) + '[log]\nlevel = "debug"\n')
        agent.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not agent.client().call("status")["restart_needed"]:
            time.sleep(0.05)
        assert agent.client().call("status")["restart_needed"] == ["mqtt.port"]
        assert "applied=log.level" in agent.log()
        # a broken file on reload is rejected and the agent keeps running
        config.write_text(text + "[mqtt\n")
        result = agent.client().call("config.reload")
        assert "TOML syntax error" in result["error"]
        assert agent.client().call("status")["state"] == "running"
        assert agent.stop() == 0
    finally:
        agent.kill()


def test_unwritable_state_dir_exits_with_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    config = write_agent_config(tmp_path / "agent", extra="")
    config.write_text(config.read_text().replace(str(tmp_path / "agent" / "state"), str(blocker / "state")))
    result = subprocess.run(
        [sys.executable, "-m", "agent.main", "-c", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 73
    assert "cannot create the state directory" in result.stderr


def test_json_log_format(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", extra='[log]\nformat = "json"\n')
    agent = AgentProcess(config).start()
    assert agent.stop() == 0
    events = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    running = next(e for e in events if e["msg"] == "agent running")
    assert running["device_id"] == "pos-0001" and running["level"] == "info"


def test_printer_database_cached_in_the_state_dir(tmp_path: Path) -> None:
    """python-escpos pickles its printer database into a fresh temp dir of each process, so every
    start re-parsed it; the agent points it at one cache with its state, written once, then only read."""
    from tests.support.hardware import hardware_section

    config = write_agent_config(tmp_path / "agent", extra=hardware_section(f"file://{tmp_path / 'receipts.bin'}"))
    cache = tmp_path / "agent" / "state" / "cache" / "escpos"
    stamps = []
    for _ in range(2):
        process = AgentProcess(config).start()
        assert process.stop() == 0
        pickles = list(cache.iterdir())
        assert [p.name for p in pickles] == [f"{sys.version.split()[0]}.capabilities.pickle"]
        stamps.append(pickles[0].stat().st_mtime_ns)
    assert stamps[0] == stamps[1], "the second start rewrote the cache instead of reading it"
