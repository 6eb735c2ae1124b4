"""Trust boundaries of the production broker: one stolen terminal must not touch the fleet.

On a real Mosquitto with broker/production/mosquitto.conf, its ACLs, the kassa_device_acl plugin
and certificates from make-certs.sh (a cloud CA and a separate device CA):
- a device certificate cannot join the cloud's shared ingest group nor subscribe outside its own
  down/ topics (MQTT 5 and 3.1.1), so every sale of another terminal reaches the worker;
- device certificates are refused on the cloud's listener, a device cannot take a worker's
  client id, and a device-CA certificate named like the cloud gets no rights anywhere;
- a revoked device certificate is refused at the TLS handshake, and one still connected when
  the broker re-reads the CRL is disconnected.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker import contract as kc
from tests.deploy.tls_broker import NOT_AUTHORIZED, PRODUCTION, Peer, ProductionBroker, dev, start_production_broker
from tests.support.agent_process import REPO_ROOT

INGEST = kc.CLOUD_INGEST_SUBSCRIPTION
SALES = 40  # a rogue taking every other message would pass with probability 2**-40


def connected(peers: list[Peer], peer: Peer) -> Peer:
    peers.append(peer)
    rc = peer.connect()
    assert not rc.is_failure, f"refused: {rc}"
    return peer


def worker(pb: ProductionBroker, peers: list[Peer], client_id: str = "kassa-ingest-w1") -> Peer:
    peer = connected(peers, Peer(pb.cloud_port, pb.pki, "kassa-cloud", client_id=client_id))
    assert [code.value for code in peer.subscribe(INGEST)] == [1]
    return peer


def refused_codes(peer: Peer, topic_filter: str) -> list[int]:
    return [code.value for code in peer.subscribe(topic_filter)]


def sales_reach_the_worker(pb: ProductionBroker, peers: list[Peer], cloud: Peer, sender: str = "pos-a") -> list[bytes]:
    """Publish SALES sales as `sender`; return what the worker received, in order."""
    a = connected(peers, Peer(pb.device_port, pb.pki, sender))
    for n in range(SALES):
        assert a.publish(dev(sender, "up/sale"), f"sale {n}".encode()).value == 0
    got = []
    for _ in range(SALES):
        try:
            got.append(bytes(cloud.next_message(timeout_s=5).payload))
        except AssertionError:
            break
    return got


def device_ca_certificate(pki: Path, cn: str, out: Path) -> Path:
    """A client certificate for `cn` signed with the device CA key: what a compromised pairing
    could make. Writes out/<cn>.crt and .key."""
    ca_key = serialization.load_pem_private_key((pki / "device-ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{cn}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (out / f"{cn}.key").chmod(0o600)
    return out


ROGUE_FILTERS = (
    INGEST,  # the cloud's shared group: joining it diverts other terminals' messages
    "$share/rogue/kassa/v1/dev/+/up/#",
    "$share/ingest/kassa/v1/dev/pos-b/down/#",  # even a share of its own topics
    "kassa/v1/dev/+/up/#",
    "#",
    dev("pos-a", "down/#"),  # another device's
    dev("pos-b", "up/#"),  # its own, but not down/
)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_a_device_cannot_join_the_ingest_share_and_every_sale_reaches_the_worker(
    production_broker: ProductionBroker, peers: list[Peer], protocol: int
) -> None:
    cloud = worker(production_broker, peers)
    rogue = connected(peers, Peer(production_broker.device_port, production_broker.pki, "pos-b", protocol=protocol))
    refused = 0x80 if protocol == mqtt.MQTTv311 else NOT_AUTHORIZED
    for topic_filter in ROGUE_FILTERS:
        assert refused_codes(rogue, topic_filter) == [refused], topic_filter
    assert refused_codes(rogue, dev("pos-b", "down/#")) == [1], "its own down/ topics: granted"
    got = sales_reach_the_worker(production_broker, peers, cloud)
    assert got == [f"sale {n}".encode() for n in range(SALES)], "every sale of pos-a, in order, to the worker"
    assert rogue.pending() == []
    assert (
        "kassa_device_acl: refused subscription of 'pos-b' to '$share/ingest/kassa/v1/dev/+/up/#'"
        in production_broker.log()
    )


def test_without_the_plugin_a_device_diverts_sales_from_the_worker(
    tmp_path: Path, pki: Path, peers: list[Peer]
) -> None:
    """Why the devices' listener loads kassa_device_acl: Mosquitto's acl_file grants the rogue's
    SUBACK, the broker hands the rogue its turn of the shared group, and the delivery check then
    drops those messages. Nothing reaches the worker for them (the outbox would resend)."""
    config = (PRODUCTION / "mosquitto.conf").read_text()
    # The devices' listener as it was before the plugin: the CN taken as username by Mosquitto.
    stripped = "\n".join(line for line in config.splitlines() if not line.startswith("plugin"))
    stripped = stripped.replace(
        "use_username_as_clientid true", "use_identity_as_username true\nuse_username_as_clientid true", 1
    )
    pb = start_production_broker(tmp_path / "variant", pki, config_text=stripped)
    try:
        cloud = worker(pb, peers)
        rogue = connected(peers, Peer(pb.device_port, pki, "pos-b"))
        assert refused_codes(rogue, INGEST) == [1], "granted without the plugin"
        got = sales_reach_the_worker(pb, peers, cloud)
        assert 0 < len(got) < SALES, f"round robin between worker and rogue: the worker got {len(got)} of {SALES}"
        assert rogue.pending() == [], "and the rogue's share is dropped, not delivered"
    finally:
        pb.broker.kill()


def test_device_certificates_are_refused_on_the_cloud_listener(production_broker: ProductionBroker) -> None:
    outcome = Peer(
        production_broker.cloud_port, production_broker.pki, "pos-a", client_id="kassa-ingest-w1"
    ).try_connect()
    assert outcome.startswith("refused"), outcome
    production_broker.wait_for_log("certificate verify failed")


def test_a_device_cannot_take_over_a_workers_client_id(production_broker: ProductionBroker, peers: list[Peer]) -> None:
    cloud = worker(production_broker, peers)
    impostor = connected(
        peers, Peer(production_broker.device_port, production_broker.pki, "pos-a", client_id="kassa-ingest-w1")
    )
    assert impostor.publish(dev("pos-a", "up/sale"), b"from pos-a").value == 0
    assert cloud.next_message().payload == b"from pos-a", "the worker is still connected and subscribed"
    assert cloud.disconnects.empty()
    assert "as pos-a (p5" in production_broker.log(), "the device listener replaced the client id with the CN"


@pytest.mark.parametrize("cn", ["kassa-cloud", "KASSA-CLOUD", "kassa-ingest-w1", "+"])
def test_a_device_ca_certificate_named_like_the_cloud_gets_no_rights_anywhere(
    production_broker: ProductionBroker, peers: list[Peer], tmp_path: Path, cn: str
) -> None:
    """What whoever holds the device CA key (the API host) could make: refused on both listeners,
    and, named like a worker's client id, unable to disconnect that worker."""
    rogue_dir = device_ca_certificate(production_broker.pki, cn, tmp_path / "rogue")
    on_cloud_listener = Peer(
        production_broker.cloud_port, production_broker.pki, cn, cert_dir=rogue_dir, client_id="x"
    ).try_connect()
    assert on_cloud_listener.startswith("refused"), "the cloud's listener trusts only the cloud CA"
    cloud = worker(production_broker, peers)  # client id kassa-ingest-w1
    rogue = Peer(production_broker.device_port, production_broker.pki, cn, cert_dir=rogue_dir)
    peers.append(rogue)
    refused = rogue.connect()
    assert refused.is_failure and refused.getName() == "Not authorized", (
        "refused at CONNECT, before its client id is looked at"
    )
    production_broker.wait_for_log("kassa_device_acl: refused a connection: the certificate's CN is not a device id")
    assert "already connected, closing old connection" not in production_broker.log()
    b = connected(peers, Peer(production_broker.device_port, production_broker.pki, "pos-b"))
    assert b.publish(dev("pos-b", "up/sale"), b"sale").value == 0
    assert cloud.next_message().payload == b"sale", "the worker is still connected"
    assert cloud.disconnects.empty()


def test_a_revoked_certificate_is_refused_at_tls_and_disconnected_if_connected(
    tmp_path: Path, pki: Path, peers: list[Peer]
) -> None:
    crl = tmp_path / "device-crl.pem"
    crl.write_bytes((pki / "device-crl.pem").read_bytes())
    pb = start_production_broker(tmp_path / "broker", pki, crl=crl)
    try:
        cloud = worker(pb, peers)
        b = connected(peers, Peer(pb.device_port, pki, "pos-b"))
        assert b.publish(dev("pos-b", "up/sale"), b"before").value == 0
        assert cloud.next_message().payload == b"before"
        # The certificate was made by make-certs.sh, not the cloud: named to the cloud's CRL by the CLI.
        revoke = subprocess.run(
            [
                sys.executable,
                "-m",
                "cloud_api.main",
                "pki",
                "revoke",
                "--certificate",
                str(pki / "clients" / "pos-b.crt"),
                "--reason",
                "stolen",
                "--out",
                str(crl),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "KASSA_CLOUD_DATABASE_URL": f"sqlite:///{tmp_path / 'cloud.db'}",
                "PATH": "/usr/bin:/bin",
                "KASSA_CLOUD_DEVICE_CA_CERT_FILE": str(pki / "device-ca.crt"),
                "KASSA_CLOUD_DEVICE_CA_KEY_FILE": str(pki / "device-ca.key"),
                "KASSA_CLOUD_PAIRING_BROKER_CA_FILE": str(pki / "cloud-ca.crt"),
            },
        )
        assert revoke.returncode == 0, revoke.stderr
        revoked = x509.load_pem_x509_crl(crl.read_bytes())
        serial = x509.load_pem_x509_certificate((pki / "clients" / "pos-b.crt").read_bytes()).serial_number
        assert revoked.get_revoked_certificate_by_serial_number(serial) is not None
        b.client.reconnect_delay_set(60, 60)  # paho must not come back on its own before we look
        pb.reload()
        # Connected when the broker re-read the CRL: Mosquitto re-authenticates every client on a
        # reload, and the plugin refuses the revoked certificate, so it is disconnected at once.
        b.disconnects.get(timeout=10)
        log = pb.wait_for_log("kassa_device_acl: refused 'pos-b': its certificate is revoked")
        assert "Client pos-b disconnected." in log.split("kassa_device_acl: refused 'pos-b'")[-1]
        a = connected(peers, Peer(pb.device_port, pki, "pos-a"))
        assert a.publish(dev("pos-a", "up/sale"), b"pos-a still sells").value == 0
        assert cloud.next_message().payload == b"pos-a still sells"
        # A new connection with the revoked certificate fails the TLS handshake (pos-a's new
        # handshake above, after the same reload, is the control). With TLS 1.3 the client only
        # sees the connection drop; the broker logs the verification failure, and OpenSSL says why.
        failures = pb.log().count("certificate verify failed")
        outcome = Peer(pb.device_port, pki, "pos-b", client_id="again").try_connect()
        assert outcome.startswith("refused"), outcome
        pb.wait_for_log("certificate verify failed", failures + 1)
        why = subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check",
                "-CRLfile",
                str(crl),
                "-CAfile",
                str(pki / "device-ca.crt"),
                str(pki / "clients" / "pos-b.crt"),
            ],
            capture_output=True,
            text=True,
        )
        assert why.returncode != 0 and "certificate revoked" in why.stdout + why.stderr
    finally:
        pb.broker.kill()
