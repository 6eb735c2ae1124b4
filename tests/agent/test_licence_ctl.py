"""kassactl licence verbs against a real agent process; technician paths work without a licence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.store import Store
from broker.contract import licence as kl
from broker.contract.signing import public_key_fingerprint
from drivers.sim.printer import VirtualPrinter
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config
from tests.support.licence import identity_public_key, lease_token, trust_section

DEVICE = "pos-0001"


class Site:
    def __init__(self, base: Path, printer: VirtualPrinter) -> None:
        extra = trust_section() + f'\n[[printers]]\nname = "front"\nurl = "{printer.url}"\n'
        self.config = write_agent_config(base / "agent", device_id=DEVICE, extra=extra)
        self.state_dir = load_config(self.config).paths.state_dir
        self.printer = printer
        self.agent = AgentProcess(self.config).start()

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(self.agent.socket_path), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        if check:
            assert result.returncode == 0, f"kassactl {' '.join(args)} failed: {result.stderr}"
        return result

    def ctl_json(self, *args: str, check: bool = True) -> dict:
        return json.loads(self.ctl("--json", *args, check=check).stdout)

    def grant_offline(self, licence_id: str = "LIC-1", epoch: int = 2) -> None:
        """Put a lease in the store while the agent is stopped, as a doc would have
        (the agent re-verifies it at start)."""
        self.agent.stop()
        device_key = public_key_fingerprint(identity_public_key(self.state_dir))
        token = lease_token(DEVICE, device_key, licence_id=licence_id, epoch=epoch, issued_at=time.time())
        with Store.open(load_config(self.config).paths.store_path) as store, store.transaction() as conn:
            conn.execute(
                "INSERT INTO licence_leases VALUES (?, ?, ?, ?, 'held')", (licence_id, epoch, token, time.time())
            )
            conn.execute("INSERT INTO licence_epochs VALUES (?, ?)", (licence_id, epoch))
        self.agent.start()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    printer = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    running = Site(tmp_path, printer)
    try:
        yield running
    finally:
        running.agent.kill()
        printer.stop()


def test_without_a_licence_sales_are_refused_but_technician_paths_work(site: Site) -> None:
    assert "no sales    licence.none" in site.ctl("licence").stdout
    verdict = site.ctl_json("licence", "check", check=False)  # exit code 3: sales refused
    assert (verdict["ok"], verdict["code"]) == (False, "licence.none")
    assert "refused (licence.none)" in site.ctl("licence", "check", check=False).stdout
    status = site.ctl("status").stdout
    assert "licence     no sales: licence.none" in status
    before = len(site.printer.receipts)
    assert "test page queued" in site.ctl("test-print").stdout
    site.printer.wait_for_receipts(before + 1, timeout=10)
    methods = {m["name"]: m["role"] for m in site.ctl_json("methods")}  # type: ignore[union-attr]
    assert (
        methods["licence.check"] == "read"
        and methods["licence.enter"] == "admin"
        and methods["licence.release_file"] == "admin"
    )


def test_enter_key_typo_and_pending_request(site: Site) -> None:
    typo = site.ctl("licence", "enter", "7KQ2-M9XD", check=False)
    assert typo.returncode != 0 and "licence key" in typo.stderr
    key = kl.format_licence_key(kl.new_licence_key())
    entered = site.ctl("licence", "enter", key).stdout
    assert f"...{key[-4:]}" in entered and "queued" in entered
    shown = site.ctl("licence").stdout
    assert f"...{key[-4:]}" in shown and "pending" in shown and key not in shown
    log = site.agent.log()
    assert key not in log and key.replace("-", "") not in log


def test_release_file_with_qr_and_print(site: Site) -> None:
    nothing = site.ctl("licence", "release-file", "--yes", check=False)
    assert nothing.returncode != 0 and "no licence" in nothing.stderr
    site.grant_offline()
    assert site.ctl_json("licence", "check")["ok"] is True
    assert "licensed    LIC-1 (epoch 2)" in site.ctl("licence").stdout
    before = len(site.printer.receipts)
    result = site.ctl_json("licence", "release-file", "--printer", "front", "--yes")
    path = Path(result["path"])
    assert path.stat().st_mode & 0o777 == 0o600
    record = kl.read_release_file(path.read_text())
    assert kl.read_release(record.receipt, identity_public_key(site.state_dir)).epoch == 2
    assert site.ctl_json("licence", "check", check=False)["code"] == "licence.released"
    site.printer.wait_for_receipts(before + 1, timeout=10)
    human = site.ctl("licence", "release-file", "--yes").stdout  # again: the same receipt, shown as a QR code
    assert "\u2588" in human and "released on this terminal for good" in human and str(path) in human
