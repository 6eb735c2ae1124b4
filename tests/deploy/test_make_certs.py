"""broker/production/make-certs.sh: the PKI the production broker config expects."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.deploy.tls_broker import MAKE_CERTS, make_certs


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore[return-value]


def verify(cert: x509.Certificate, ca: x509.Certificate) -> None:
    assert cert.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]


def test_makes_ca_server_cloud_and_device_certificates(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = make_certs(out, "pos-a", "till-0042", days=30)
    assert result.returncode == 0, result.stderr
    ca = load(out / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server = load(out / "server.crt")
    verify(server, ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    for name in ("kassa-cloud", "pos-a", "till-0042"):
        cert = load(out / "clients" / f"{name}.crt")
        verify(cert, ca)
        assert cn(cert) == name, "the CN is the MQTT username (use_identity_as_username)"
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime.days == 30
    keys = [out / "ca.key", out / "server.key", *sorted((out / "clients").glob("*.key"))]
    assert len(keys) == 5
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_is_idempotent_and_adds_only_new_devices(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert make_certs(out, "pos-a").returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = make_certs(out, "pos-a", "pos-b")
    assert again.returncode == 0, again.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before, "existing CA, keys and certificates are kept"
    assert set(after) - set(before) == {out / "clients" / "pos-b.key", out / "clients" / "pos-b.crt"}
    verify(load(out / "clients" / "pos-b.crt"), load(out / "ca.crt"))


def test_server_names_go_into_the_subject_alt_name(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    subprocess.run(["sh", str(MAKE_CERTS), "--out", str(out), "--server-name", "mqtt.example.com",
                    "--server-name", "10.1.2.3"], check=True, capture_output=True)
    server = load(out / "server.crt")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert cn(server) == "mqtt.example.com"


def test_refuses_ids_that_would_break_the_acl(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    for bad in ("pos/a", "+", "#", "$SYS", "_lead", "x" * 65, "kassa-cloud"):
        result = make_certs(out, bad)
        assert result.returncode == 2, bad
        assert bad in result.stderr
    assert not (out / "clients").exists() or not any((out / "clients").iterdir()), "nothing issued"


def test_refuses_to_keep_a_certificate_from_another_ca(tmp_path: Path) -> None:
    out, other = tmp_path / "pki", tmp_path / "other"
    assert make_certs(out, "pos-a").returncode == 0
    assert make_certs(other, "pos-a").returncode == 0
    for suffix in ("key", "crt"):
        (out / "clients" / f"pos-a.{suffix}").write_bytes((other / "clients" / f"pos-a.{suffix}").read_bytes())
    result = make_certs(out, "pos-a")
    assert result.returncode == 1
    assert "does not verify" in result.stderr
