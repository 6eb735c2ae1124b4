"""Licence migration end to end: real agent processes, a real `kassa-cloud worker` (ingest,
push publisher, licence sweeper) and the HTTP API, over a real Mosquitto.

- Both terminals online: the key entered on B makes the cloud order A to release; A refuses
  sales from then on, B sells after the grant; the cloud lists the licence under B with a
  complete audit trail.
- A offline: B is granted only once A's lease has run out (plus the clock margin); A, back
  online, learns it was released and refuses sales.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from broker.launcher import Mosquitto
from cloud_api import signing_keys
from cloud_api.app import create_app
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Device
from cloud_api.tenancy.tokens import create_owner
from tests.cloud.api_support import Api
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud

pytestmark = pytest.mark.slow

A, B = "lic-e2e-a", "lic-e2e-b"


class Fleet:
    """The cloud, its API as the owner / partner / company admin see it, and two terminals."""

    def __init__(self, tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud, api: Api, **licence: int) -> None:
        self.cloud, self.api = cloud, api
        key_file = tmp_path / "signing.pem"
        key = signing_keys.generate(key_file, "e2e-cloud-1")
        env = {"KASSA_CLOUD_SIGNING_KEY_FILE": str(key_file), "KASSA_CLOUD_SIGNING_KEY_ID": key.key_id}
        env.update({f"KASSA_CLOUD_LICENCE_{name.upper()}": str(value) for name, value in licence.items()})
        cloud.start_worker_process("lic", env=env)
        self.partner_id, self.partner_token = api.partner("Reseller")
        self.company_id, self.company_token = api.company("Shop")
        api.link(self.company_token, self.company_id, self.partner_token, self.partner_id)
        with Session(cloud.engine) as session:
            now = datetime.now(UTC)
            session.add_all([Device(device_id=device, company_id=self.company_id, created_at=now) for device in (A, B)])
            session.commit()
        trust = f'\n[trust]\ncloud_keys = {{ "{key.key_id}" = "{key.public_text}" }}\n'
        self.agents = {
            device: AgentProcess(
                write_agent_config(
                    tmp_path / device, device_id=device, host=mosquitto.host, port=mosquitto.port, extra=trust
                )
            )
            for device in (A, B)
        }

    def sealed_licence_for_the_company(self) -> dict[str, Any]:
        valid_until = (datetime.now(UTC) + timedelta(days=365)).isoformat()
        licence = self.api.call(
            "POST",
            f"/partners/{self.partner_id}/licences",
            self.api.owner_token,
            201,
            json={"count": 1, "entitlements": {"points_of_sale": 1}, "valid_until": valid_until},
        ).json()[0]
        assert licence["state"] == "sealed" and licence["key"] is None
        assigned = self.api.call(
            "POST", f"/licences/{licence['id']}/assign", self.partner_token, 200, json={"company_id": self.company_id}
        ).json()
        assert assigned["state"] == "assigned"
        # the company holds it now: its admin reads the key to type it in
        return self.api.call("GET", f"/licences/{licence['id']}", self.company_token, 200).json()

    def licence(self, licence_id: str) -> dict[str, Any]:
        return self.api.call("GET", f"/licences/{licence_id}", self.company_token, 200).json()

    def check(self, device: str) -> dict[str, Any]:
        return self.agents[device].client().call("licence.check")

    def enter(self, device: str, key: str) -> None:
        self.agents[device].client().call("licence.enter", key=key.lower())  # typed sloppily on purpose

    def logs(self) -> str:
        worker = (self.cloud.workdir / "worker-lic.log").read_text(errors="replace")[-3000:]
        agents = "\n".join(f"--- {device} ---\n{agent.log()[-2000:]}" for device, agent in self.agents.items())
        return f"--- worker ---\n{worker}\n{agents}"

    def wait(self, predicate: Callable[[], Any], what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{self.logs()}")

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.kill()


@pytest.fixture
def fleet_factory(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Callable[..., Fleet]]:
    cloud = Cloud(tmp_path / "cloud", mosquitto)
    with Session(cloud.engine, expire_on_commit=False) as session:
        _owner, _admin, owner_token = create_owner(session, "Owner")
    fleets: list[Fleet] = []
    with TestClient(
        create_app(CloudSettings(database_url=cloud.database_url), cloud.engine), raise_server_exceptions=False
    ) as client:
        api = Api(client, cloud.engine, owner_token)

        def make(**licence: int) -> Fleet:
            fleets.append(Fleet(tmp_path, mosquitto, cloud, api, **licence))
            return fleets[-1]

        try:
            yield make
        finally:
            for fleet in fleets:
                fleet.stop()
            cloud.stop()


def test_migration_with_both_terminals_online(fleet_factory: Callable[..., Fleet]) -> None:
    fleet = fleet_factory()
    for agent in fleet.agents.values():
        agent.start()
    licence = fleet.sealed_licence_for_the_company()
    assert fleet.check(A)["code"] == "licence.none"

    fleet.enter(A, licence["key"])
    fleet.wait(lambda: fleet.check(A)["ok"], "A to sell on its new lease")
    bound = fleet.licence(licence["id"])
    assert (bound["state"], bound["device_id"], bound["epoch"]) == ("bound", A, 1)
    assert fleet.check(B)["code"] == "licence.none"

    fleet.enter(B, licence["key"])
    fleet.wait(lambda: fleet.check(A)["code"] == "licence.released", "A to release on the cloud's order")
    fleet.wait(lambda: fleet.check(B)["ok"], "B to be granted after A's receipt")
    assert fleet.check(A)["ok"] is False
    moved = fleet.licence(licence["id"])
    assert (moved["state"], moved["device_id"], moved["epoch"], moved["company_id"]) == (
        "bound",
        B,
        2,
        fleet.company_id,
    )
    listed = fleet.api.call("GET", f"/companies/{fleet.company_id}/licences", fleet.company_token, 200).json()
    assert [(item["id"], item["device_id"]) for item in listed] == [(licence["id"], B)]

    events = fleet.api.call("GET", f"/licences/{licence['id']}/events", fleet.company_token, 200).json()
    trail = [
        (event["from_state"], event["to_state"], event["from_device_id"], event["to_device_id"]) for event in events
    ]
    # The company's part of the trail starts when the licence was assigned to it (the partner's
    # purchase before that is the partner's business).
    assert trail[0][:2] == ("sealed", "assigned")
    assert ("assigned", "bound", None, A) in trail
    assert ("bound", "releasing", A, B) in trail
    assert ("releasing", "bound", A, B) in trail
    assert all(event["at"] and event["actor"] for event in events)
    assert any(event["actor"] == f"device:{A}" for event in events)  # A's signed receipt moved it


def test_migration_while_the_old_terminal_is_offline(fleet_factory: Callable[..., Fleet]) -> None:
    lease_s, margin_s = 12, 2
    fleet = fleet_factory(lease_s=lease_s, renew_after_s=3, clock_margin_s=margin_s, sweep_s=1)
    for agent in fleet.agents.values():
        agent.start()
    licence = fleet.sealed_licence_for_the_company()
    fleet.enter(A, licence["key"])
    fleet.wait(lambda: fleet.check(A)["ok"], "A to sell on its lease")

    fleet.agents[A].kill()  # power cut: A never answers the release order
    fleet.enter(B, licence["key"])
    fleet.wait(lambda: fleet.licence(licence["id"])["state"] == "releasing", "the cloud to start the move")
    releasing = fleet.licence(licence["id"])
    deadline = datetime.fromisoformat(releasing["releasing"]["deadline"])
    old_expiry = datetime.fromisoformat(releasing["lease_expires_at"])
    assert deadline >= old_expiry + timedelta(seconds=margin_s)
    while datetime.now(UTC) < old_expiry:
        assert not fleet.check(B)["ok"], "B was granted while A's lease could still be in use"
        time.sleep(0.5)
    fleet.wait(lambda: fleet.check(B)["ok"], "B to be granted once A's lease ran out", timeout_s=lease_s + 20)
    granted = fleet.licence(licence["id"])
    assert (granted["state"], granted["device_id"], granted["epoch"]) == ("bound", B, 2)

    fleet.agents[A].start()  # back online: the retained licence document no longer lists its lease
    fleet.wait(lambda: fleet.check(A)["code"] == "licence.released", "A to learn it was released")
    assert fleet.check(B)["ok"]
