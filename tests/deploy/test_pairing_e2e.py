"""Pairing by code, end to end, with every part real.

A `kassa-agent` process starts with no broker certificate, only `[cloud] api_url` (HTTPS, the
broker's CA). The cloud API runs in uvicorn; the broker is the production Mosquitto config
(client certificates, CN = username, production ACL); a `kassa-cloud worker` process logs in as
kassa-cloud. A company admin claims the code shown by the agent; the agent gets a certificate
signed by the broker's CA, connects over mutual TLS without a restart, and a sale from its
outbox lands in the cloud database and in the company's sales list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cloud.outbox import Outbox
from agent.store import Store
from cloud_api.settings import CloudSettings
from tests.deploy.tls_broker import ProductionBroker
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.cloud_http import LiveApi, live_api
from tests.support.sales import make_sale

DEVICE = "till-paired-e2e"
pytestmark = pytest.mark.slow


@pytest.fixture
def cloud(tmp_path: Path, production_broker: ProductionBroker) -> Iterator[Cloud]:
    running = Cloud(tmp_path / "cloud", production_broker.broker)
    clients = production_broker.pki / "clients"
    running.start_worker_process("tls", port=production_broker.cloud_port, env={
        "KASSA_CLOUD_MQTT_CA_FILE": str(production_broker.pki / "ca.crt"),
        "KASSA_CLOUD_MQTT_CERT_FILE": str(clients / "kassa-cloud.crt"),
        "KASSA_CLOUD_MQTT_KEY_FILE": str(clients / "kassa-cloud.key"),
    })
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api(cloud: Cloud, production_broker: ProductionBroker) -> Iterator[LiveApi]:
    pki = production_broker.pki
    settings = CloudSettings(
        database_url=cloud.database_url, device_ca_cert_file=pki / "ca.crt", device_ca_key_file=pki / "ca.key",
        pairing_broker_host="127.0.0.1", pairing_broker_port=production_broker.device_port, pairing_poll_interval_s=1,
    )
    with live_api(settings, cloud.engine, tls=(pki / "server.crt", pki / "server.key", pki / "ca.crt")) as running:
        yield running


def wait_for(agent: AgentProcess, predicate: Any, what: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = agent.client().call("status")
        if predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout_s} s\n{agent.log()}")


def enqueue_sale(state_dir: Path, receipt_no: int) -> uuid.UUID:
    """A sale committed to the agent's outbox the way the sales module will (one transaction)."""
    store = Store.open(state_dir / "agent.db")
    try:
        sale = make_sale(receipt_no)
        Outbox(store, DEVICE, uuid.uuid4(), lambda: True).enqueue_one(sale)
        return sale.sale_id
    finally:
        store.close()


def test_an_unpaired_terminal_is_claimed_connects_with_its_certificate_and_its_sale_arrives(
        tmp_path: Path, production_broker: ProductionBroker, cloud: Cloud, api: LiveApi) -> None:
    config = write_agent_config(tmp_path / "agent", device_id=DEVICE, ack_timeout_s=2.0, extra=f"""
[cloud]
api_url = "{api.url}"
ca_file = "{production_broker.pki / 'ca.crt'}"
retry_min_s = 0.2
retry_max_s = 1.0
""")
    agent = AgentProcess(config).start()
    try:
        status = wait_for(agent, lambda s: s["components"]["pairing"]["state"] == "waiting", "waiting for claim")
        code = status["components"]["pairing"]["pairing_code"]
        assert "cloud" not in status["components"] and f"u'{DEVICE}'" not in production_broker.log()

        cid, admin, pos = api.company_with_admin("E2E Shop", "E2E-MAIN")
        claimed = api.call("POST", f"/companies/{cid}/pairing/claims", admin, 201,
                           json={"pairing_code": code, "point_of_sale_id": pos}).json()
        assert claimed["device_id"] == DEVICE

        status = wait_for(agent, lambda s: s.get("components", {}).get("cloud", {}).get("connected"), "connected over mTLS")
        assert status["components"]["pairing"]["state"] == "paired" and status["restart_needed"] == []
        assert f"as {DEVICE} (p5, c0, k30, u'{DEVICE}')" in production_broker.log(), "the certificate's CN is the username"
        cloud.wait_applied(DEVICE, 1, timeout_s=30)  # the state report the agent sends on connect

        sale_id = enqueue_sale(tmp_path / "agent" / "state", receipt_no=1)
        cloud.wait_sales(DEVICE, 1, timeout_s=30)
        wait_for(agent, lambda s: s["components"]["cloud"]["outbox_depth"] == 0, "the cloud's ack emptied the outbox")
        sales = api.call("GET", f"/companies/{cid}/sales", admin, 200).json()["items"]
        assert [(s["sale_id"], s["device_id"]) for s in sales] == [(str(sale_id), DEVICE)], "the sale belongs to the claiming company"
        devices = api.call("GET", f"/companies/{cid}/devices", admin, 200).json()
        assert [(d["device_id"], d["paired"], d["point_of_sale_id"]) for d in devices] == [(DEVICE, True, pos)]
        assert agent.stop() == 0
    finally:
        agent.kill()
