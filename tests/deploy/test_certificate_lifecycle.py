"""A paired terminal's broker certificate over its life, with every part real: renewed before it
runs out while the terminal keeps syncing, then revoked by one cloud call and refused by the
production broker.

The broker is the production Mosquitto config with its own copy of the device CRL; the cloud API
(uvicorn, HTTPS) writes the CRL there when a device is revoked (`device_crl_file`), and
broker/production/fetch-crl.sh, as kassa-broker-crl.timer runs it, fetches it from the API and
reloads the broker. A `kassa-cloud worker` logs in as kassa-cloud on the cloud listener.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.pairing.models import DeviceCertificate
from tests.deploy.paired import enqueue_sale, pairing_api, tls_worker, wait_for
from tests.deploy.tls_broker import ProductionBroker, fetch_crl, start_production_broker
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.cloud_http import LiveApi

DEVICE = "till-renews"
pytestmark = pytest.mark.slow


@pytest.fixture
def broker(tmp_path: Path, pki: Path) -> Iterator[ProductionBroker]:
    crl = tmp_path / "device-crl.pem"
    crl.write_bytes((pki / "device-crl.pem").read_bytes())
    running = start_production_broker(tmp_path / "broker", pki, crl=crl)
    try:
        yield running
    finally:
        running.broker.kill()


@pytest.fixture
def cloud(tmp_path: Path, broker: ProductionBroker) -> Iterator[Cloud]:
    with tls_worker(tmp_path / "cloud", broker) as running:
        yield running


@pytest.fixture
def api(tmp_path: Path, cloud: Cloud, broker: ProductionBroker) -> Iterator[LiveApi]:
    with pairing_api(
        cloud,
        broker,
        device_cert_days=1,
        device_cert_renew_interval_s=0,
        device_crl_file=tmp_path / "cloud-written-crl.pem",
    ) as running:
        yield running


def certificates(cloud: Cloud) -> list[DeviceCertificate]:
    with Session(cloud.engine) as session:
        return list(
            session.scalars(
                select(DeviceCertificate)
                .where(DeviceCertificate.device_id == DEVICE)
                .order_by(DeviceCertificate.issued_at)
            )
        )


def test_a_terminal_renews_its_certificate_keeps_syncing_and_is_shut_out_once_revoked(
    tmp_path: Path, broker: ProductionBroker, cloud: Cloud, api: LiveApi
) -> None:
    # The cloud issues 1-day certificates; the terminal renews with 2 days left: at once.
    config = write_agent_config(
        tmp_path / "agent",
        device_id=DEVICE,
        ack_timeout_s=2.0,
        extra=f"""
[cloud]
api_url = "{api.url}"
ca_file = "{broker.pki / "cloud-ca.crt"}"
retry_min_s = 0.2
retry_max_s = 2.0
certificate_renew_before_days = 2
""",
    )
    state_dir = tmp_path / "agent" / "state"
    agent = AgentProcess(config).start()
    try:
        code = wait_for(agent, lambda s: s["components"]["pairing"]["state"] == "waiting", "waiting for claim")[
            "components"
        ]["pairing"]["pairing_code"]
        cid, admin, pos = api.company_with_admin("Renewing Shop", "RS-MAIN")
        api.call(
            "POST", f"/companies/{cid}/pairing/claims", admin, 201, json={"pairing_code": code, "point_of_sale_id": pos}
        )
        first_sale = enqueue_sale(state_dir, DEVICE, receipt_no=1)

        status = wait_for(
            agent, lambda s: (s["components"]["pairing"].get("renewal") or {}).get("renewals") == 1, "one renewal"
        )
        issued = certificates(cloud)
        assert [c.source for c in issued] == ["pairing", "renewal"]
        assert status["components"]["pairing"]["certificate"]["serial"] == issued[1].serial, (
            "the renewed certificate is installed"
        )
        assert status["components"]["pairing"]["renewal"]["next_check_at"], (
            "and it waits, rather than renewing again and again"
        )
        second_sale = enqueue_sale(state_dir, DEVICE, receipt_no=2)
        cloud.wait_sales(DEVICE, 2, timeout_s=30)
        wait_for(
            agent,
            lambda s: s["components"]["cloud"]["connected"] and s["components"]["cloud"]["outbox_depth"] == 0,
            "both sales acked, connected with the renewed certificate",
        )
        log = broker.wait_for_log(f"as {DEVICE} (p5, c0, k30, u'{DEVICE}')", 2)  # a reconnect with the new certificate
        assert log.count("certificate verify failed") == 0
        sales = api.call("GET", f"/companies/{cid}/sales", admin, 200).json()["items"]
        assert {s["sale_id"] for s in sales} == {str(first_sale), str(second_sale)}

        # One call revokes every certificate of the terminal and writes the signed CRL.
        revoked = api.call(
            "POST", f"/companies/{cid}/devices/{DEVICE}/certificates/revoke", admin, 200, json={"reason": "stolen"}
        ).json()
        assert sorted(revoked["revoked"]) == sorted(c.serial for c in issued)
        assert all(c.revoked_at is not None for c in certificates(cloud))
        # The broker host's timer: fetch-crl.sh takes the CRL from the API and reloads the broker.
        crl_file = tmp_path / "device-crl.pem"  # the file the broker fixture's device listener reads
        before = broker.log().count("Reloading config.")
        fetched = fetch_crl(
            f"{api.url}/pki/device-crl.pem",
            broker.pki,
            crl_file,
            f"kill -HUP {broker.broker.process.pid}",
            cacert=broker.pki / "cloud-ca.crt",
        )
        assert fetched.returncode == 0, fetched.stderr
        assert crl_file.read_text() == (tmp_path / "cloud-written-crl.pem").read_text(), "the same CRL the API wrote"
        broker.wait_for_log("Reloading config.", before + 1)
        broker.wait_for_log(f"CRL {crl_file} loaded, 2 revoked certificate(s)")

        # Connected when the CRL arrived: the broker re-authenticates its clients on the reload and
        # disconnects the terminal; its reconnects then fail at the TLS handshake.
        broker.wait_for_log(f"kassa_device_acl: refused '{DEVICE}': its certificate is revoked")
        broker.wait_for_log("certificate verify failed")
        third_sale = enqueue_sale(state_dir, DEVICE, receipt_no=3)
        wait_for(
            agent,
            lambda s: not s["components"]["cloud"]["connected"] and s["components"]["cloud"]["outbox_depth"] >= 1,
            "disconnected, the sale kept in the outbox",
        )
        assert str(third_sale) not in {
            s["sale_id"] for s in api.call("GET", f"/companies/{cid}/sales", admin, 200).json()["items"]
        }
        assert agent.stop() == 0
        failures = broker.log().count("certificate verify failed")
        agent = AgentProcess(config).start()
        broker.wait_for_log("certificate verify failed", failures + 1)
        wait_for(
            agent,
            lambda s: not s["components"]["cloud"]["connected"] and s["components"]["cloud"]["outbox_depth"] >= 1,
            "after a restart the revoked terminal cannot connect; its sale stays in the outbox",
        )
        # The timer's next run finds the same CRL: nothing installed, no reload (the command would fail).
        again = fetch_crl(
            f"{api.url}/pki/device-crl.pem", broker.pki, crl_file, "false", cacert=broker.pki / "cloud-ca.crt"
        )
        assert again.returncode == 0 and again.stdout == "", again.stderr
    finally:
        agent.kill()
