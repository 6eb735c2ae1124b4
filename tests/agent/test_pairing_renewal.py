"""The agent's certificate renewal against a live cloud API (uvicorn): a paired terminal's keys and
files as pairing left them, the agent's own HTTP client, the real renewal loop. (With a broker
and a real agent process: tests/deploy/test_certificate_lifecycle.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from agent.pairing.client import PairingClient
from agent.pairing.install import check_credentials, install
from agent.pairing.keys import (
    BROKER_CERT,
    keys_dir,
    load_or_create_broker_key,
    load_or_create_csr,
    load_or_create_identity_key,
)
from agent.pairing.renewal import MAX_SLEEP, CertificateRenewal, RenewalSettings, next_check, renews
from broker.contract.pairing import new_pairing_code, poll_request, registration_request
from broker.launcher import free_port
from tests.support.cloud_http import LiveApi, live_pairing_api

DEVICE = "till-renewal"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LiveApi]:
    with live_pairing_api(tmp_path, device_cert_days=1, device_cert_renew_interval_s=0) as api:
        yield api


def pair(cloud: LiveApi, state_dir: Path) -> tuple[PairingClient, int, str]:
    """What the pairing component does, step by step: keys, register, claim, poll, install."""
    client = PairingClient(cloud.url, None, 10)
    identity, broker_key = load_or_create_identity_key(state_dir), load_or_create_broker_key(state_dir)
    code = new_pairing_code()
    client.register(
        registration_request(DEVICE, identity, load_or_create_csr(state_dir, DEVICE, broker_key), code, client.now())
    )
    cid, admin, pos = cloud.company_with_admin("Renewal Shop", "RS-1")
    cloud.call(
        "POST", f"/companies/{cid}/pairing/claims", admin, 201, json={"pairing_code": code, "point_of_sale_id": pos}
    )
    reply = client.poll(poll_request(DEVICE, identity, client.now()))
    assert reply.credentials is not None
    install(state_dir, check_credentials(reply.credentials, DEVICE, broker_key, client.now()))
    return client, cid, admin


def serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def until(predicate, what: str, timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


def test_when_to_renew() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    month = timedelta(days=30)
    assert next_check(now + timedelta(days=10), now, month) == timedelta(0), "inside the margin: now"
    assert next_check(now - timedelta(days=1), now, month) == timedelta(0), "already expired: now"
    assert next_check(now + month + timedelta(hours=2), now, month) == timedelta(hours=2)
    assert next_check(now + timedelta(days=800), now, month) == MAX_SLEEP, "look again later, never sleep for years"


def test_only_the_certificate_pairing_installed_is_renewed(tmp_path: Path) -> None:
    assert renews(tmp_path, keys_dir(tmp_path) / BROKER_CERT)
    assert not renews(tmp_path, tmp_path / "by-hand" / "pos-a.crt")
    assert not renews(tmp_path, None)


def test_a_paired_terminal_renews_once_and_a_revoked_one_stops_asking(tmp_path: Path, cloud: LiveApi) -> None:
    state_dir = tmp_path / "state"
    client, cid, admin = pair(cloud, state_dir)
    cert_file = keys_dir(state_dir) / BROKER_CERT
    paired_serial = serial(cert_file)
    settings = RenewalSettings(state_dir, DEVICE, cert_file, timedelta(days=2), retry_min_s=0.1, retry_max_s=1.0)
    reconnects: list[int] = []

    async def run() -> None:
        renewal = CertificateRenewal(settings, client, lambda certificate: reconnects.append(serial(cert_file)))
        renewal.start()
        try:
            # 1-day certificates, a 2-day margin: renew at once, then wait instead of looping.
            await until(lambda: renewal.renewals == 1, "one renewal")
            await until(lambda: renewal.status()["next_check_at"] is not None, "a wait until the next check")
            assert renewal.renewals == 1 and renewal.last_error is None
        finally:
            await renewal.stop()

    asyncio.run(run())
    assert serial(cert_file) != paired_serial and reconnects == [serial(cert_file)], "reconnected with the new file"
    listed = cloud.call("GET", f"/companies/{cid}/devices/{DEVICE}/certificates", admin, 200).json()
    assert [c["source"] for c in listed] == ["renewal", "pairing"] and listed[0]["serial"] == format(
        serial(cert_file), "x"
    )

    cloud.call("POST", f"/companies/{cid}/devices/{DEVICE}/certificates/revoke", admin, 200)
    installed = cert_file.read_bytes()

    async def refused() -> CertificateRenewal:
        renewal = CertificateRenewal(settings, client, lambda certificate: reconnects.append(-1))
        renewal.start()
        try:
            await until(lambda: renewal.stopped_reason is not None, "renewal stopped")
        finally:
            await renewal.stop()
        return renewal

    stopped = asyncio.run(refused())
    assert "revoked" in (stopped.stopped_reason or "") and stopped.renewals == 0
    assert cert_file.read_bytes() == installed and reconnects[-1] != -1, "nothing installed, no reconnect"


def test_a_cloud_that_cannot_be_reached_is_logged_once_and_its_return_once(
    tmp_path: Path, cloud: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    state_dir = tmp_path / "state"
    client, _cid, _admin = pair(cloud, state_dir)
    cert_file = keys_dir(state_dir) / BROKER_CERT
    settings = RenewalSettings(state_dir, DEVICE, cert_file, timedelta(days=2), retry_min_s=0.01, retry_max_s=0.05)
    client.api_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused

    async def run() -> None:
        renewal = CertificateRenewal(settings, client, lambda certificate: None)
        renewal.start()
        try:
            await until(lambda: renewal._cloud_http.attempts >= 4, "four refused requests")
            client.api_url = cloud.url  # the cloud is back
            await until(lambda: renewal.renewals == 1, "the renewal once the cloud answers")
        finally:
            await renewal.stop()

    with caplog.at_level(logging.INFO, logger="agent.pairing.renewal"):
        asyncio.run(run())
    connection = [r for r in caplog.records if r.getMessage().startswith("certificate renewal: cloud request")]
    assert [(r.levelname, r.getMessage()) for r in connection] == [
        ("WARNING", "certificate renewal: cloud request failed; retrying"),
        ("INFO", "certificate renewal: cloud request works again"),
    ]
    assert "refused" in connection[0].reason.lower() and connection[0].exc_info is None
    assert connection[1].failed_attempts >= 4
