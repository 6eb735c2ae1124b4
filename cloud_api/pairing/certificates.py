"""Device CSRs in, broker client certificates out, signed by the device CA.

The CA is the one the broker's device listener trusts (`cafile` in mosquitto.conf; made by
broker/production/make-certs.sh); it signs devices only. The broker's own certificate comes
from the cloud CA, whose certificate (not key) devices receive to trust the broker. Only the
CSR's public key and its proof of possession are taken from the request: the subject (O=kassa,
CN=device id), validity and every extension are chosen here, exactly as make-certs.sh does for
the certificates it makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud_api.settings import CloudSettings
from cloud_api.signing_keys import load_private_pem

# Backdated so a device whose clock runs a little behind still accepts its new certificate.
NOT_BEFORE_MARGIN = timedelta(minutes=5)


class CsrError(ValueError):
    """The CSR cannot be signed; the message says why (for the device's log)."""


class CaUnavailable(Exception):
    """The cloud cannot sign device certificates (CA not configured or unreadable)."""


@dataclass(frozen=True)
class DeviceCa:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    broker_ca_pem: str  # what devices trust for the broker's server certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def check_csr(csr_pem: str, device_id: str) -> x509.CertificateSigningRequest:
    """The parsed CSR if it is one the cloud will sign for `device_id`, else CsrError."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CsrError("csr is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrError("the CSR's signature does not match its key (no proof the device holds the key)")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CsrError(f"the CSR's key must be EC P-256, got {_describe_key(key)}")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        shown = ", ".join(repr(n.value) for n in names) or "none"
        raise CsrError(f"the CSR's common name must be the device id {device_id!r}, got {shown}")
    return csr


def _describe_key(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__.removeprefix("_").replace("PublicKey", "")


def load_device_ca(settings: CloudSettings) -> DeviceCa:
    """The configured device CA, checked (private key 0600 and matching the certificate)."""
    if settings.device_ca_cert_file is None or settings.device_ca_key_file is None:
        raise CaUnavailable(
            "pairing is not set up on this cloud: set KASSA_CLOUD_DEVICE_CA_CERT_FILE and "
            "KASSA_CLOUD_DEVICE_CA_KEY_FILE"
        )
    certificate = _load_certificates(settings.device_ca_cert_file)[0]
    key_path = settings.device_ca_key_file
    try:
        private_key = load_private_pem(key_path, "device CA key")
    except ValueError as exc:
        raise CaUnavailable(str(exc)) from None
    if not isinstance(
        private_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        raise CaUnavailable(f"{key_path} holds a key type that cannot sign certificates")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != certificate.public_key().public_bytes(serialization.Encoding.DER, public):
        raise CaUnavailable(f"the device CA key {key_path} does not belong to {settings.device_ca_cert_file}")
    broker_ca_file = settings.pairing_broker_ca_file or settings.mqtt_ca_file
    if broker_ca_file is None:
        raise CaUnavailable(
            "set KASSA_CLOUD_PAIRING_BROKER_CA_FILE to the CA of the broker's server certificate "
            "(make-certs.sh's cloud-ca.crt): paired terminals trust it for the broker"
        )
    broker_cas = _load_certificates(broker_ca_file)
    if any(ca == certificate for ca in broker_cas):
        raise CaUnavailable(
            f"{broker_ca_file} holds the device CA: the broker's certificate must come from the cloud CA, "
            "never from the CA that signs devices (docs/deployment.md, 'Certificates')"
        )
    broker_ca_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in broker_cas)
    return DeviceCa(certificate, private_key, broker_ca_pem)


def _load_certificates(path: Path) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CaUnavailable(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CaUnavailable(f"{path} holds no PEM certificate") from None
    return certificates


def issue_certificate(
    ca: DeviceCa, csr: x509.CertificateSigningRequest, device_id: str, days: float, now: datetime
) -> x509.Certificate:
    """Sign a client certificate for `device_id` with the CSR's key, valid for `days` (at most
    as long as the CA itself)."""
    public_key = csr.public_key()
    not_after = min(now + timedelta(days=days), ca.certificate.not_valid_after_utc)
    if not_after <= now:
        raise CaUnavailable("the device CA certificate has expired; renew it (make-certs.sh) before pairing")
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kassa"),
                    x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NOT_BEFORE_MARGIN)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False)
    )
    algorithm = (
        None if isinstance(ca.private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    )
    return builder.sign(ca.private_key, algorithm)


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
