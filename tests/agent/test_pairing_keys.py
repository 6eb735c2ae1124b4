"""The device's key files (made once, 0600, reused), its CSR, the checks on the certificate the
cloud sends back, and the [cloud] settings."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.config import ConfigError, load_config
from agent.pairing.install import InstallError, check_credentials, install
from agent.pairing.keys import (
    BROKER_CA,
    BROKER_CERT,
    KeyFileError,
    keys_dir,
    load_or_create_broker_key,
    load_or_create_csr,
    load_or_create_identity_key,
)
from broker.contract.pairing import BrokerCredentials
from cloud_api.pairing.certificates import certificate_pem, check_csr, issue_certificate, load_device_ca
from cloud_api.settings import CloudSettings
from tests.deploy.tls_broker import make_certs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw_public(key: object) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two CAs made by make-certs.sh: the device CA, and a stranger's."""
    out = []
    for name in ("ca", "other-ca"):
        directory = tmp_path_factory.mktemp(name)
        assert make_certs(directory).returncode == 0
        out.append(directory)
    return out[0], out[1]


def credentials(
    pki: Path, csr: str, device_id: str, *, cn: str | None = None, now: datetime | None = None
) -> BrokerCredentials:
    ca = load_device_ca(
        CloudSettings(
            device_ca_cert_file=pki / "device-ca.crt",
            device_ca_key_file=pki / "device-ca.key",
            pairing_broker_ca_file=pki / "cloud-ca.crt",
        )
    )
    cert = issue_certificate(ca, check_csr(csr, device_id), cn or device_id, 30, now or datetime.now(UTC))
    return BrokerCredentials(
        certificate=certificate_pem(cert),
        ca_certificate=ca.certificate_pem,
        broker_ca_certificates=ca.broker_ca_pem,
        broker_host="mqtt.example.com",
        broker_port=8883,
        point_of_sale="POS-1",
    )


def test_keys_are_made_once_private_and_reused(tmp_path: Path) -> None:
    identity = load_or_create_identity_key(tmp_path)
    broker = load_or_create_broker_key(tmp_path)
    directory = keys_dir(tmp_path)
    assert mode(directory) == 0o700
    for name in ("identity.key", "broker.key"):
        assert mode(directory / name) == 0o600, name
    assert raw_public(load_or_create_identity_key(tmp_path)) == raw_public(identity)
    assert raw_public(load_or_create_broker_key(tmp_path)) == raw_public(broker)
    csr = load_or_create_csr(tmp_path, "till-7", broker)
    assert load_or_create_csr(tmp_path, "till-7", broker) == csr, "the same CSR at every registration"
    parsed = x509.load_pem_x509_csr(csr.encode())
    assert parsed.is_signature_valid
    assert [a.value for a in parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["till-7"]
    assert load_or_create_csr(tmp_path, "till-8", broker) != csr, "a renamed device gets a CSR with its new id"
    assert b"PRIVATE KEY" not in (directory / "broker.csr").read_bytes()


def test_a_key_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    key = load_or_create_identity_key(tmp_path)
    path = keys_dir(tmp_path) / "identity.key"
    path.chmod(0o644)
    assert raw_public(load_or_create_identity_key(tmp_path)) == raw_public(key)
    assert mode(path) == 0o600


def test_a_damaged_or_foreign_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    path = keys_dir(tmp_path) / "identity.key"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_or_create_identity_key(tmp_path)
    assert path.read_bytes() == b"not a key", "never overwritten: the device's identity may be in it"
    broker = load_or_create_broker_key(tmp_path)
    (keys_dir(tmp_path) / "identity.key").write_bytes(
        broker.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_or_create_identity_key(tmp_path)


def test_the_certificate_must_be_for_this_device(tmp_path: Path, pkis: tuple[Path, Path]) -> None:
    pki, other = pkis
    key = load_or_create_broker_key(tmp_path)
    csr = load_or_create_csr(tmp_path, "till-7", key)
    now = datetime.now(UTC)
    good = credentials(pki, csr, "till-7")
    assert check_credentials(good, "till-7", key, now).not_after > now

    stranger_dir = tmp_path / "stranger"
    stranger_key = load_or_create_broker_key(stranger_dir)
    someone_elses = credentials(pki, load_or_create_csr(stranger_dir, "till-7", stranger_key), "till-7")
    with pytest.raises(InstallError, match="not for this device's key"):
        check_credentials(someone_elses, "till-7", key, now)
    with pytest.raises(InstallError, match="names"):
        check_credentials(credentials(pki, csr, "till-7", cn="till-9"), "till-7", key, now)
    forged_chain = good.model_copy(update={"ca_certificate": (other / "device-ca.crt").read_text()})
    with pytest.raises(InstallError, match="does not verify"):
        check_credentials(forged_chain, "till-7", key, now)
    with pytest.raises(InstallError, match="does not verify"):
        check_credentials(good, "till-7", key, now + timedelta(days=60))  # expired by then
    with pytest.raises(InstallError, match="not PEM"):
        check_credentials(good.model_copy(update={"certificate": "junk"}), "till-7", key, now)


def test_install_writes_the_files_and_names_them_for_the_config(tmp_path: Path, pkis: tuple[Path, Path]) -> None:
    key = load_or_create_broker_key(tmp_path)
    checked = check_credentials(
        credentials(pkis[0], load_or_create_csr(tmp_path, "till-7", key), "till-7"),
        "till-7",
        key,
        datetime.now(UTC),
    )
    changes = install(tmp_path, checked)
    directory = keys_dir(tmp_path)
    assert changes == {
        "mqtt.host": "mqtt.example.com",
        "mqtt.port": 8883,
        "mqtt.tls": True,
        "mqtt.ca_file": str(directory / BROKER_CA),
        "mqtt.cert_file": str(directory / BROKER_CERT),
        "mqtt.key_file": str(directory / "broker.key"),
        "site.point_of_sale": "POS-1",
    }
    assert (directory / BROKER_CERT).read_text() == checked.credentials.certificate
    assert (directory / BROKER_CA).read_bytes() == (pkis[0] / "cloud-ca.crt").read_bytes()
    assert mode(directory / BROKER_CERT) == 0o644 and mode(directory / "broker.key") == 0o600
    assert not [p for p in directory.iterdir() if p.name.startswith(".")], "no temp files left"


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://cloud.example.com", True),
        ("https://cloud.example.com:8443/api", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://[::1]:8080", True),
        ("http://cloud.example.com", False),
        ("http://127.example.com", False),
        ("ftp://cloud.example.com", False),
        ("cloud.example.com", False),
        ("https://cloud.example.com/?x=1", False),
    ],
)
def test_api_url_must_be_https_except_on_loopback(tmp_path: Path, url: str, ok: bool) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'device_id = "till-7"\n[cloud]\napi_url = "{url}"\n')
    if ok:
        assert load_config(path, environ={}).cloud.api_url == url
    else:
        with pytest.raises(ConfigError, match=r"cloud.api_url"):
            load_config(path, environ={})
