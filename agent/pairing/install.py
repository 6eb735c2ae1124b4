"""Check the certificate the cloud issued and install it with the broker settings.

Nothing is written unless the certificate is for this device's own key and id, is a client
certificate, and chains to the CA sent with it. Files first (atomic), then the config file
(validated as a whole and written atomically by config_edit), so a power cut at any point
leaves a device that either still pairs again or is fully set up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from agent.pairing.keys import BROKER_CA, BROKER_CERT, BROKER_KEY, keys_dir, same_public_key, write_public_file
from broker.contract.pairing import BrokerCredentials

# Web PKI rules for the chain, except that a broker client certificate names its device in the
# CN (what Mosquitto reads) and needs no subjectAltName.
_CLIENT_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


class InstallError(Exception):
    """The cloud's certificate is not one this device may use; nothing was installed."""


@dataclass(frozen=True)
class CheckedCredentials:
    credentials: BrokerCredentials
    certificate: x509.Certificate

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def check_credentials(
    credentials: BrokerCredentials, device_id: str, key: ec.EllipticCurvePrivateKey, now: datetime
) -> CheckedCredentials:
    """The parsed certificate if it is this device's and chains to the CA sent, else InstallError."""
    try:
        certificate = x509.load_pem_x509_certificate(credentials.certificate.encode())
        issuers = x509.load_pem_x509_certificates(credentials.ca_certificate.encode())
        x509.load_pem_x509_certificates(credentials.broker_ca_certificates.encode())
    except ValueError as exc:
        raise InstallError(f"the cloud sent a certificate that is not PEM: {exc}") from None
    if not same_public_key(certificate.public_key(), key.public_key()):
        raise InstallError("the certificate is not for this device's key")
    names = [n.value for n in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [device_id]:
        raise InstallError(f"the certificate names {names}, not this device ({device_id})")
    try:
        PolicyBuilder().store(Store(issuers)).time(now).extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_CLIENT_POLICY
        ).build_client_verifier().verify(certificate, [])
    except VerificationError as exc:
        raise InstallError(f"the certificate does not verify against the CA sent with it: {exc}") from None
    return CheckedCredentials(credentials, certificate)


def write_credentials(state_dir: Path, checked: CheckedCredentials) -> None:
    """Write the broker's CA and the certificate (each file atomically): at pairing, before the
    config file names them; at a renewal, over the files in use."""
    directory = keys_dir(state_dir)
    # The broker's CA first: a power cut between the two leaves the old, still valid certificate.
    write_public_file(directory / BROKER_CA, checked.credentials.broker_ca_certificates.encode())
    write_public_file(directory / BROKER_CERT, checked.credentials.certificate.encode())


def install(state_dir: Path, checked: CheckedCredentials) -> dict[str, Any]:
    """Write the certificate and the broker CA; returns the config changes that use them."""
    write_credentials(state_dir, checked)
    directory = keys_dir(state_dir)
    changes: dict[str, Any] = {
        "mqtt.host": checked.credentials.broker_host,
        "mqtt.port": checked.credentials.broker_port,
        "mqtt.tls": True,
        "mqtt.ca_file": str(directory / BROKER_CA),
        "mqtt.cert_file": str(directory / BROKER_CERT),
        "mqtt.key_file": str(directory / BROKER_KEY),
    }
    if checked.credentials.point_of_sale is not None:
        changes["site.point_of_sale"] = checked.credentials.point_of_sale
    return changes
