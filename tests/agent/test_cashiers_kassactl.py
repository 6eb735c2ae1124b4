"""kassactl cashier verbs against a real agent process; the PIN goes in on stdin, never argv."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.agent.test_cashiers_support import DEVICE, cashier, roster, roster_envelope
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config
from tests.support.inprocess import InProcessAgent


def kassactl(socket: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.ctl", "--socket", str(socket), *args],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_kassactl_cashiers_list_login_and_load(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", device_id=DEVICE)
    # give the store a roster first (an in-process agent takes it through inbound), then run the real process
    seeded = InProcessAgent(config).start()
    doc = roster(
        cashier(
            "anna",
            "1001",
            ["cashier"],
            pin="4711",
            details=[("airport", "T-1", "2001", "SU direct"), ("station", "T-2", "2002")],
        )
    )
    seeded.call(lambda: seeded.cloud.inbound.handle_state(roster_envelope(7, doc)))
    seeded.stop()

    agent = AgentProcess(config).start()
    try:
        socket = agent.socket_path
        listed = kassactl(socket, "cashiers")
        assert listed.returncode == 0 and "roster v7, 1 cashier(s)" in listed.stdout and "anna" in listed.stdout
        assert "scrypt" not in listed.stdout and "scrypt" not in kassactl(socket, "--json", "cashiers", "list").stdout
        assert (
            "airport (SU direct, terminal T-1, operator 2001), station (terminal T-2, operator 2002)" in listed.stdout
        )

        ambiguous = kassactl(socket, "cashier", "login", "1001", stdin="4711\n")
        assert ambiguous.returncode == 1 and "choose one of: airport, station" in ambiguous.stderr
        login = kassactl(socket, "--json", "cashier", "login", "anna", "--point-of-sale", "station", stdin="4711\n")
        assert login.returncode == 0, login.stderr
        session = json.loads(login.stdout)
        assert (session["terminal_id"], session["operator_code"]) == ("T-2", "2002") and session["token"]
        labelled = kassactl(socket, "cashier", "login", "anna", "--point-of-sale", "airport", stdin="4711\n")
        assert "point of sale airport: SU direct, terminal T-1, operator 2001" in labelled.stdout, labelled.stderr
        wrong = kassactl(socket, "cashier", "login", "anna", stdin="0000\n")
        assert "wrong PIN" in wrong.stderr and "0000" not in wrong.stderr
        assert kassactl(socket, "cashier", "login", "anna").returncode == 1  # no PIN on stdin: refused before calling

        load = kassactl(socket, "cashiers", "load")
        assert load.returncode == 1 and "not connected to the cloud" in load.stderr and "v7 stays in use" in load.stderr
        status = kassactl(socket, "status")
        assert "roster v7, 1 cashiers, 2 session(s) open" in status.stdout
        # standing alone: a timestamp, a pid or an id in the log may hold the same four digits by chance
        assert not re.search(r"(?<![\w-])4711(?![\w-])", agent.log()) and session["token"] not in agent.log()
    finally:
        assert agent.stop() == 0
