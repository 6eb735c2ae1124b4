"""Pairing by code, end to end, with every part real.

A `kassa-agent` process starts with no broker certificate, only `[cloud] api_url` (HTTPS, the
broker's CA). The cloud API runs in uvicorn; the broker is the production Mosquitto config
(client certificates, CN = username, production ACL); a `kassa-cloud worker` process logs in as
kassa-cloud. A company admin claims the code shown by the agent; the agent gets a certificate
signed by the broker's CA, connects over mutual TLS without a restart, and a sale from its
outbox lands in the cloud database and in the company's sales list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.paired import enqueue_sale, pairing_api, tls_worker, wait_for
from tests.deploy.tls_broker import ProductionBroker
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.cloud_http import LiveApi

DEVICE = "till-paired-e2e"
pytestmark = pytest.mark.slow


@pytest.fixture
def cloud(tmp_path: Path, production_broker: ProductionBroker) -> Iterator[Cloud]:
    with tls_worker(tmp_path / "cloud", production_broker) as running:
        yield running


@pytest.fixture
def api(cloud: Cloud, production_broker: ProductionBroker) -> Iterator[LiveApi]:
    with pairing_api(cloud, production_broker) as running:
        yield running


def test_an_unpaired_terminal_is_claimed_connects_with_its_certificate_and_its_sale_arrives(
    tmp_path: Path, production_broker: ProductionBroker, cloud: Cloud, api: LiveApi
) -> None:
    config = write_agent_config(
        tmp_path / "agent",
        device_id=DEVICE,
        ack_timeout_s=2.0,
        extra=f"""
[cloud]
api_url = "{api.url}"
ca_file = "{production_broker.pki / "cloud-ca.crt"}"
retry_min_s = 0.2
retry_max_s = 1.0
""",
    )
    agent = AgentProcess(config).start()
    try:
        status = wait_for(agent, lambda s: s["components"]["pairing"]["state"] == "waiting", "waiting for claim")
        code = status["components"]["pairing"]["pairing_code"]
        assert "cloud" not in status["components"] and f"u'{DEVICE}'" not in production_broker.log()

        cid, admin, pos = api.company_with_admin("E2E Shop", "E2E-MAIN")
        claimed = api.call(
            "POST", f"/companies/{cid}/pairing/claims", admin, 201, json={"pairing_code": code, "point_of_sale_id": pos}
        ).json()
        assert claimed["device_id"] == DEVICE

        status = wait_for(
            agent, lambda s: s.get("components", {}).get("cloud", {}).get("connected"), "connected over mTLS"
        )
        assert status["components"]["pairing"]["state"] == "paired" and status["restart_needed"] == []
        assert f"as {DEVICE} (p5, c0, k30, u'{DEVICE}')" in production_broker.log(), (
            "the certificate's CN is the username"
        )
        cloud.wait_applied(DEVICE, 1, timeout_s=30)  # the state report the agent sends on connect

        sale_id = enqueue_sale(tmp_path / "agent" / "state", DEVICE, receipt_no=1)
        cloud.wait_sales(DEVICE, 1, timeout_s=30)
        wait_for(agent, lambda s: s["components"]["cloud"]["outbox_depth"] == 0, "the cloud's ack emptied the outbox")
        sales = api.call("GET", f"/companies/{cid}/sales", admin, 200).json()["items"]
        assert [(s["sale_id"], s["device_id"]) for s in sales] == [(str(sale_id), DEVICE)], (
            "the sale belongs to the claiming company"
        )
        devices = api.call("GET", f"/companies/{cid}/devices", admin, 200).json()
        assert [(d["device_id"], d["paired"], d["point_of_sale_id"]) for d in devices] == [(DEVICE, True, pos)]
        assert agent.stop() == 0
    finally:
        agent.kill()
