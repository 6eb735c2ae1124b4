"""A real agent process pairing through a live cloud API (uvicorn): the stages kassactl shows,
the printed code, a restart before the claim that keeps keys and code, the config written after
the claim, and the cloud link started without a restart. (Over MQTT with the certificate:
tests/deploy/test_pairing_e2e.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.config import load_config
from cloud_api.pairing.models import AuditEvent, PairingAudit
from drivers.sim.printer import VirtualPrinter
from tests.deploy.paired import wait_for
from tests.support.agent_process import REPO_ROOT, AgentProcess, write_agent_config
from tests.support.cloud_http import LiveApi, live_pairing_api

DEVICE = "till-pair-1"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LiveApi]:
    with live_pairing_api(tmp_path) as api:
        yield api


def ctl(agent: AgentProcess, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "agent.ctl", "--socket", str(agent.socket_path), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def pairing_state(status: dict[str, Any]) -> str:
    return status["components"]["pairing"]["state"]


def test_a_terminal_pairs_through_the_cloud_api(tmp_path: Path, cloud: LiveApi) -> None:
    printer = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    extra = f"""
[cloud]
api_url = "{cloud.url}"
retry_min_s = 0.2
retry_max_s = 1.0

[[printers]]
name = "front"
url = "{printer.url}"
"""
    config_path = write_agent_config(tmp_path / "agent", device_id=DEVICE, extra=extra)
    agent = AgentProcess(config_path).start()
    try:
        status = wait_for(agent, lambda s: pairing_state(s) == "waiting", "waiting for claim")
        code = status["components"]["pairing"]["pairing_code"]
        assert "cloud" not in status["components"], "no broker certificate yet: no cloud link"
        assert f"waiting for claim (code {code})" in ctl(agent, "status")
        assert f"with the code  {code}" in ctl(agent, "pairing")
        # the code lets anyone claim the terminal: it never leaves in a support bundle
        bundle = json.dumps(agent.client().call("diagnostics"))
        assert code not in bundle and "waiting for claim (code (hidden))" in bundle
        assert "pairing code queued for printing" in ctl(agent, "pairing", "--print")
        assert code in printer.wait_for_receipts(1, timeout=10)[-1].text
        keys = {p.name: p.read_bytes() for p in (tmp_path / "agent" / "state" / "keys").iterdir()}

        assert agent.stop() == 0  # a restart before the claim: same keys, same code, same registration
        agent = AgentProcess(config_path).start()
        status = wait_for(agent, lambda s: pairing_state(s) == "waiting", "waiting again")
        assert status["components"]["pairing"]["pairing_code"] == code
        assert {p.name: p.read_bytes() for p in (tmp_path / "agent" / "state" / "keys").iterdir()} == keys

        cid, admin, pos = cloud.company_with_admin("Pairing Shop", "SHOP-1")
        cloud.call(
            "POST", f"/companies/{cid}/pairing/claims", admin, 201, json={"pairing_code": code, "point_of_sale_id": pos}
        )
        status = wait_for(
            agent, lambda s: pairing_state(s) == "paired" and "cloud" in s["components"], "paired with a cloud link"
        )
        assert status["restart_needed"] == [], "the link was started with the new settings, no restart"
        assert "paired: certificate for till-pair-1" in ctl(agent, "status")
        written = tomllib.loads(config_path.read_text())
        keys_dir = tmp_path / "agent" / "state" / "keys"
        assert {
            "tls": True,
            "host": "127.0.0.1",
            "cert_file": str(keys_dir / "broker.crt"),
            "key_file": str(keys_dir / "broker.key"),
            "ca_file": str(keys_dir / "broker-ca.crt"),
        }.items() <= written["mqtt"].items()
        assert written["site"]["point_of_sale"] == "SHOP-1" and written["cloud"]["api_url"] == cloud.url
        assert load_config(config_path).mqtt.tls is True
        with cloud.engine.connect() as conn:
            events = list(
                conn.execute(
                    select(PairingAudit.event).where(PairingAudit.device_id == DEVICE).order_by(PairingAudit.id)
                ).scalars()
            )
        assert events == [AuditEvent.REGISTERED, AuditEvent.CLAIMED, AuditEvent.CERTIFICATE_DELIVERED], (
            "one registration across the restart"
        )

        assert agent.stop() == 0  # and after a restart it simply is paired
        agent = AgentProcess(config_path).start()
        status = agent.client().call("status")
        assert pairing_state(status) == "paired" and "cloud" in status["components"]
        assert "paired" in ctl(agent, "pairing")
    finally:
        agent.kill()
        printer.stop()
