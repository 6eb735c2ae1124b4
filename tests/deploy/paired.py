"""What the end-to-end tests of a paired terminal share: a `kassa-cloud worker` logged in on the
production broker's cloud listener, the pairing API over HTTPS with the broker's certificate,
an agent config with a device certificate of the test PKI, and a way to wait on the agent and
to put a sale in its outbox."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.cloud.outbox import Outbox
from agent.store import Store
from cloud_api.settings import CloudSettings
from tests.deploy.tls_broker import ProductionBroker
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.cloud_http import LiveApi, live_api
from tests.support.sales import make_sale


@contextlib.contextmanager
def tls_worker(workdir: Path, broker: ProductionBroker) -> Iterator[Cloud]:
    """The cloud's database and one worker process, as kassa-cloud over mutual TLS."""
    running = Cloud(workdir, broker.broker)
    clients = broker.pki / "clients"
    running.start_worker_process(
        "tls",
        port=broker.cloud_port,
        env={
            "KASSA_CLOUD_MQTT_CA_FILE": str(broker.pki / "cloud-ca.crt"),
            "KASSA_CLOUD_MQTT_CERT_FILE": str(clients / "kassa-cloud.crt"),
            "KASSA_CLOUD_MQTT_KEY_FILE": str(clients / "kassa-cloud.key"),
        },
    )
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def pairing_api(cloud: Cloud, broker: ProductionBroker, **overrides: Any) -> Iterator[LiveApi]:
    """The API (uvicorn, HTTPS with the broker's server certificate) signing with the device CA."""
    pki = broker.pki
    settings = CloudSettings(
        database_url=cloud.database_url,
        device_ca_cert_file=pki / "device-ca.crt",
        device_ca_key_file=pki / "device-ca.key",
        pairing_broker_ca_file=pki / "cloud-ca.crt",
        pairing_broker_host="127.0.0.1",
        pairing_broker_port=broker.device_port,
        pairing_poll_interval_s=1,
        **overrides,
    )
    with live_api(
        settings, cloud.engine, tls=(pki / "server.crt", pki / "server.key", pki / "cloud-ca.crt")
    ) as running:
        yield running


def tls_agent_config(directory: Path, broker: ProductionBroker, device_id: str, **mqtt: Any) -> Path:
    """agent.toml for `device_id` logging in on the device listener over mutual TLS with its
    certificate from the broker's PKI (make-certs.sh's clients/); `mqtt`: more [mqtt] keys."""
    clients = broker.pki / "clients"
    return write_agent_config(
        directory,
        device_id=device_id,
        port=broker.device_port,
        extra="tls = true",  # still inside [mqtt], the last table written
        ca_file=str(broker.pki / "cloud-ca.crt"),
        cert_file=str(clients / f"{device_id}.crt"),
        key_file=str(clients / f"{device_id}.key"),
        **mqtt,
    )


def wait_for(
    agent: AgentProcess, predicate: Callable[[dict[str, Any]], Any], what: str, timeout_s: float = 30
) -> dict[str, Any]:
    """The agent's status once `predicate` holds for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = agent.client().call("status")
        if predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout_s} s\n{agent.log()}")


def enqueue_sale(state_dir: Path, device_id: str, receipt_no: int) -> uuid.UUID:
    """A sale committed to the agent's outbox the way the sales module does (one transaction)."""
    store = Store.open(state_dir / "agent.db")
    try:
        sale = make_sale(receipt_no)
        Outbox(store, device_id, uuid.uuid4(), lambda: True).enqueue_one(sale)
        return sale.sale_id
    finally:
        store.close()
