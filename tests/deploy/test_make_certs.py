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


def test_makes_two_cas_server_cloud_and_device_certificates_and_an_empty_crl(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = make_certs(out, "pos-a", "till-0042", days=30)
    assert result.returncode == 0, result.stderr
    cloud_ca, device_ca = load(out / "cloud-ca.crt"), load(out / "device-ca.crt")
    for ca in (cloud_ca, device_ca):
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cloud_ca.public_key() != device_ca.public_key() and cloud_ca.subject != device_ca.subject
    server = load(out / "server.crt")
    verify(server, cloud_ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    for name, ca in (("kassa-cloud", cloud_ca), ("pos-a", device_ca), ("till-0042", device_ca)):
        cert = load(out / "clients" / f"{name}.crt")
        verify(cert, ca)
        other_ca = device_ca if ca is cloud_ca else cloud_ca
        assert cert.issuer != other_ca.subject, f"{name}: one CA never signs for the other's listener"
        assert cn(cert) == name, "the CN is the MQTT username (use_identity_as_username)"
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ]
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime.days == 30
    crl = x509.load_pem_x509_crl((out / "device-crl.pem").read_bytes())
    assert crl.issuer == device_ca.subject and len(crl) == 0
    assert crl.is_signature_valid(device_ca.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None and crl.next_update_utc > crl.last_update_utc
    keys = [out / "cloud-ca.key", out / "device-ca.key", out / "server.key", *sorted((out / "clients").glob("*.key"))]
    assert len(keys) == 6
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((out / "device-crl.pem").stat().st_mode) == 0o644


def test_is_idempotent_and_adds_only_new_devices(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert make_certs(out, "pos-a").returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = make_certs(out, "pos-a", "pos-b")
    assert again.returncode == 0, again.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before, "existing CAs, CRL, keys and certificates are kept"
    assert set(after) - set(before) == {out / "clients" / "pos-b.key", out / "clients" / "pos-b.crt"}
    verify(load(out / "clients" / "pos-b.crt"), load(out / "device-ca.crt"))


def test_a_single_ca_pki_from_before_the_split_is_not_mixed_in(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    out.mkdir()
    (out / "ca.key").write_text("an old single CA")
    result = make_certs(out, "pos-a")
    assert result.returncode == 1 and "single-CA" in result.stderr and "docs/deployment.md" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ca.key"], "nothing made beside it"


def test_server_names_go_into_the_subject_alt_name(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    subprocess.run(
        ["sh", str(MAKE_CERTS), "--out", str(out), "--server-name", "mqtt.example.com", "--server-name", "10.1.2.3"],
        check=True,
        capture_output=True,
    )
    server = load(out / "server.crt")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert cn(server) == "mqtt.example.com"


def test_refuses_ids_that_would_break_the_acl(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    for bad in ("pos/a", "+", "#", "$SYS", "_lead", "x" * 65, "kassa-cloud", "kassa-ingest-1", "Kassa-pushes-w1"):
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
